"""sentence-transformers models embedded through their own modules, with this project's batching.

`SentenceTransformer.encode` is: prepend the prompt, strip (and lower-case, if the Transformer module
says so), tokenize with truncation at `max_seq_length`, run every module of `modules.json` in order,
take `sentence_embedding`. Here the same module objects (sentence_transformers' own classes, loaded
from their folders) run the batches the `Embedder` plans, so the output equals `encode` up to float
noise, while tokenizing once, sorting, batching, out-of-memory halving and worker processes stay the
project's. Rebuilding only Transformer + Pooling + Normalize, as before, embeds a model with a Dense
head, `include_prompt: false` or lower-casing differently from its authors.

Nothing named in `modules.json` is imported: a type must be one of `MODULE_CLASSES`, every module
folder must lie inside the model folder, and a Dense activation must be a torch.nn activation.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .embedder import LocalRunner
from .errors import UserError

# the sentence_transformers.models classes that take token ids from a Transformer module; the others
# need their own tokenizer (BoW, WordEmbeddings, StaticEmbedding), dict inputs (Asym), images (CLIPModel)
# or features a Transformer does not give (LSTM's sentence_lengths)
MODULE_CLASSES = (
    "Transformer",
    "Pooling",
    "Dense",
    "Normalize",
    "LayerNorm",
    "WeightedLayerPooling",
    "Dropout",
    "WordWeights",
    "CNN",
)
TYPE_PATTERN = re.compile(r"^sentence_transformers\.models\.(?P<cls>\w+)(?:\.(?P=cls))?$")
ACTIVATION_PREFIXES = ("torch.nn.modules.activation.", "torch.nn.modules.linear.Identity")
# the names sentence_transformers 3.4.1 looks for, in its order (SentenceTransformer._load_sbert_model)
TRANSFORMER_CONFIGS = (
    "sentence_bert_config.json",
    "sentence_roberta_config.json",
    "sentence_distilbert_config.json",
    "sentence_camembert_config.json",
    "sentence_albert_config.json",
    "sentence_xlm-roberta_config.json",
    "sentence_xlnet_config.json",
)


@dataclass(frozen=True)
class StModule:
    name: str
    kind: str  # one of MODULE_CLASSES
    folder: Path  # inside the model folder ("" in modules.json = the model folder itself)


@dataclass(frozen=True)
class StPlan:
    """What a sentence-transformers directory asks for, read from its files alone (no weights)."""

    root: Path
    modules: tuple[StModule, ...]
    transformer_args: dict[str, Any] = field(default_factory=dict)  # its sentence_*_config.json
    include_prompt: bool = True  # False if a Pooling module leaves the prompt tokens out

    @property
    def transformer_folder(self) -> Path:
        return self.modules[0].folder

    @property
    def do_lower_case(self) -> bool:
        return bool(self.transformer_args.get("do_lower_case", False))

    def describe(self) -> list[str]:
        """For the manifest and the model class: the module chain, in order."""
        return [f"{m.kind}({m.folder.relative_to(self.root).as_posix() or '.'})" for m in self.modules]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None


def _module_folder(root: Path, raw: Any, name: str) -> Path:
    """The module's folder, which must stay inside the model folder (no absolute paths, no `..`)."""
    if not isinstance(raw, str):
        raise UserError(f"{root.name}/modules.json: module {name!r} has no path string")
    rel = Path(raw)
    if rel.is_absolute() or ".." in rel.parts or raw.startswith(("/", "\\")):
        raise UserError(f"{root.name}/modules.json: module {name!r} path {raw!r} leaves the model folder")
    folder = (root / rel).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise UserError(f"{root.name}/modules.json: module {name!r} path {raw!r} leaves the model folder")
    return folder


def _transformer_args(folder: Path) -> dict[str, Any]:
    """Its sentence_*_config.json, without `trust_remote_code` (a file may not turn that on, as in ST)."""
    args: dict[str, Any] = {}
    for config_name in TRANSFORMER_CONFIGS:
        if (folder / config_name).is_file():
            args = _read_json(folder / config_name)
            break
    for key in ("model_args", "tokenizer_args", "config_args"):
        if isinstance(args.get(key), dict):
            args[key].pop("trust_remote_code", None)
    return args


def read_plan(root: Path) -> StPlan:
    """Check a directory's modules.json and read what the modules need, before any weights load."""
    entries = _read_json(root / "modules.json")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{root.name}/modules.json: expected a list of modules")
    modules = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"{root.name}/modules.json: entry {i} is not an object")
        name = str(entry.get("name", i))
        type_ref = str(entry.get("type", ""))
        match = TYPE_PATTERN.match(type_ref)
        if match is None or match["cls"] not in MODULE_CLASSES:
            raise UserError(
                f"{root.name}/modules.json: module {name!r} has type {type_ref!r}, which cannot be run here; "
                f"runnable: sentence_transformers.models {', '.join(MODULE_CLASSES)} (code from the model "
                "folder is never imported)"
            )
        if entry.get("kwargs"):
            raise UserError(f"{root.name}/modules.json: module {name!r} takes call kwargs {entry['kwargs']}")
        folder = _module_folder(root, entry.get("path", ""), name)
        kind = match["cls"]
        if kind != "Normalize" and not folder.is_dir():
            raise UserError(f"{root.name}/modules.json: module {name!r} folder {entry.get('path')!r} is missing")
        if (i == 0) != (kind == "Transformer"):
            raise UserError(
                f"{root.name}/modules.json: the first module must be the one Transformer (module {name!r} is {kind})"
            )
        modules.append(StModule(name, kind, folder))
    include_prompt = True
    for m in modules:
        if m.kind == "Pooling":
            include_prompt &= bool(_read_json(m.folder / "config.json").get("include_prompt", True))
        if m.kind == "Dense":
            activation = str(_read_json(m.folder / "config.json").get("activation_function", ""))
            if not activation.startswith(ACTIVATION_PREFIXES):
                raise UserError(
                    f"{root.name}/modules.json: module {m.name!r} (Dense) names activation {activation!r}; "
                    "only torch.nn activations are loaded"
                )
    return StPlan(root, tuple(modules), _transformer_args(modules[0].folder), include_prompt)


def load_tokenizer(plan: StPlan, padding_side: str, trust_remote_code: bool) -> Any:
    """The tokenizer exactly as the Transformer module loads it (its tokenizer_args, model_max_length).

    `padding_side` "auto" keeps the tokenizer's own side, as `SentenceTransformer.encode` does.
    """
    from transformers import AutoTokenizer

    args = dict(plan.transformer_args.get("tokenizer_args") or {})
    if plan.transformer_args.get("max_seq_length") is not None and "model_max_length" not in args:
        args["model_max_length"] = plan.transformer_args["max_seq_length"]
    args["trust_remote_code"] = trust_remote_code
    folder = plan.transformer_args.get("tokenizer_name_or_path") or plan.transformer_folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **args)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {folder}: {str(exc).splitlines()[0]}") from None
    if padding_side in ("left", "right"):
        tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        raise UserError(f"tokenizer of {plan.root.name} has no pad token (SentenceTransformer.encode cannot pad it)")
    return tokenizer


def tokenizer_for(config: Any, path: Path) -> Any:
    """What `loading.prepare` loads for this preset: the modules checked, flags that the modules would
    override refused, then the Transformer module's own tokenizer."""
    from .presets import st_settings

    plan = read_plan(path)
    own = st_settings(path)
    for field_name, key, flag in (
        ("pooling_mode", "pooling", "--pooling_mode"),
        ("normalize", "normalize", "--normalize"),
    ):
        wanted = getattr(config, field_name)
        if key in own and wanted is not None and wanted != own[key]:
            raise UserError(
                f"the sentence-transformers preset runs {path.name}'s own modules ({', '.join(plan.describe())}), "
                f"which give {key} {own[key]!r}; {flag} {wanted!r} cannot apply: drop it, or choose another --preset"
            )
    return load_tokenizer(plan, config.padding_side, config.trust_remote_code)


def text_transform(plan: StPlan) -> Callable[[str], str]:
    """The Transformer module's text step before its tokenizer: strip, then lower-case if configured."""
    if plan.do_lower_case:
        return lambda text: text.strip().lower()
    return str.strip


def prompt_length(plan: StPlan, tokenizer: Any, max_seq_length: int | None) -> Callable[[str], int] | None:
    """How many leading tokens a prompt covers, as `encode` counts them (its tokens, specials, minus the
    last one); only needed when a Pooling module leaves the prompt out (`include_prompt: false`)."""
    if plan.include_prompt:
        return None
    prepare = text_transform(plan)

    def count(prompt: str) -> int:
        ids = tokenizer([prepare(prompt)], truncation=True, max_length=max_seq_length)["input_ids"][0]
        return len(ids) - 1

    return count


def embedder_hooks(plan: StPlan, tokenizer: Any) -> dict[str, Any]:
    """Keyword arguments for `Embedder`: the module's text step and the prompt length, if pooling needs it."""
    max_seq_length = plan.transformer_args.get("max_seq_length")
    return {"text_transform": text_transform(plan), "prompt_length": prompt_length(plan, tokenizer, max_seq_length)}


def _checked_transformer_class() -> type:
    """sentence_transformers' Transformer, except that its weights must fit the model class
    (`loading.check_loaded_keys`): transformers would fill missing tensors with random values."""
    from sentence_transformers.models import Transformer

    from .loading import check_loaded_keys

    class CheckedTransformer(Transformer):
        def _load_model(
            self,
            model_name_or_path: str,
            config: Any,
            cache_dir: Any,
            backend: str,
            is_peft_model: bool,
            **model_args: Any,
        ) -> None:
            if backend != "torch" or is_peft_model:  # PEFT adapters load their own way: not checked
                return super()._load_model(model_name_or_path, config, cache_dir, backend, is_peft_model, **model_args)
            super()._load_model(
                model_name_or_path, config, cache_dir, backend, is_peft_model, output_loading_info=True, **model_args
            )
            model, info = self.auto_model  # from_pretrained(..., output_loading_info=True) gives both
            self.auto_model = model
            check_loaded_keys(model, info, Path(model_name_or_path).name)

    return CheckedTransformer


def _load_transformer(plan: StPlan, dtype: str, attn_implementation: str, trust_remote_code: bool) -> Any:
    """sentence_transformers' Transformer module, built as SentenceTransformer builds it (saved config <
    hub kwargs < caller kwargs), with this run's dtype and attention implementation."""
    Transformer = _checked_transformer_class()  # noqa: N806 - a class

    args = copy.deepcopy(plan.transformer_args)
    for key in ("model_args", "tokenizer_args", "config_args"):
        args.setdefault(key, {})
        args[key] = dict(args[key] or {}, trust_remote_code=trust_remote_code)
    args["model_args"].update(torch_dtype=getattr(torch, dtype), attn_implementation=attn_implementation)
    try:
        return Transformer(str(plan.transformer_folder), **args)
    except TypeError as exc:
        raise UserError(f"{plan.root.name}: its Transformer module config does not load: {exc}") from None
    except (ValueError, ImportError) as exc:
        from .loading import attention_error

        raise attention_error(plan.root.name, attn_implementation, exc) from None


def _load_module(module: StModule) -> Any:
    from sentence_transformers import models

    cls = getattr(models, module.kind)
    if module.kind == "Normalize":
        return cls()
    try:
        return cls.load(str(module.folder))  # strict: a missing or unexpected tensor raises, never random weights
    except (RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
        first = " ".join(str(exc).split())[:300] or type(exc).__name__  # one line, the keys included
        raise UserError(
            f"sentence-transformers module {module.kind} in {module.folder.name}/ does not load: {first}"
        ) from None


def load_modules(plan: StPlan, dtype: str, attn_implementation: str, trust_remote_code: bool) -> list[Any]:
    """Every module of modules.json in order, all in the Transformer's dtype (as SentenceTransformer
    casts itself to its first parameter's dtype)."""
    modules = [_load_transformer(plan, dtype, attn_implementation, trust_remote_code)]
    modules += [_load_module(m) for m in plan.modules[1:]]
    first = next(modules[0].parameters())
    return [m.to(first.dtype) for m in modules]


class SentenceTransformerModules(torch.nn.ModuleList):
    """The module chain, in modules.json order: `runner.model`, whose class name the manifest and the
    embedding cache record as the model class (in one process and in workers alike)."""


class SentenceTransformerRunner(LocalRunner):
    """The Embedder's runner interface (`run`, `forward`, `forward_fitting`, `dim`, `pad_id`) over a
    model's own sentence-transformers modules on one device.

    Batches are padded as LocalRunner pads them (same side, same token types); the modules then do
    everything `SentenceTransformer.forward` does. `truncate_dim` cuts the final embedding as
    `encode(truncate_dim=...)` does: after the modules, so after any Normalize (no second normalisation).
    """

    def __init__(
        self, modules: list[Any], tokenizer: Any, device: str, plan: StPlan, truncate_dim: int | None = None
    ) -> None:
        # LocalRunner's __init__ reads a bare transformers model; the attributes it sets are set here
        self.model = SentenceTransformerModules(modules).to(device).eval()
        self.plan = plan
        self.device = torch.device(device)
        full = self._sentence_dim(modules)
        if truncate_dim is not None and truncate_dim > full:
            raise UserError(f"--truncate_dim {truncate_dim} exceeds the model's {full} dimensions")
        self.truncate_dim = truncate_dim
        self.dim = truncate_dim or full
        self._take_padding(tokenizer)
        self.prompt_length: int | None = None  # set for one `run` call when a prompt was prepended

    @staticmethod
    def _sentence_dim(modules: list[Any]) -> int:
        """The last module that states a sentence embedding size (SentenceTransformer's own rule)."""
        for module in reversed(modules):
            dim = getattr(module, "get_sentence_embedding_dimension", lambda: None)()
            if dim is not None:
                return int(dim)
        return int(modules[0].get_word_embedding_dimension())

    def run(self, batches: list[list[np.ndarray]], stats: Any, *args: Any, prompt_length: int | None = None) -> Any:
        """LocalRunner.run, with the call's prompt length (`encode`'s `prompt_length` feature) for every batch."""
        self.prompt_length = prompt_length
        try:
            return super().run(batches, stats, *args)
        finally:
            self.prompt_length = None

    def forward(self, rows: list[np.ndarray], width: int | None = None) -> np.ndarray:
        """One batch of token ids through every module -> float32 sentence embeddings."""
        with torch.inference_mode():
            features: dict[str, Any] = self._batch_tensors(rows, width or max(len(r) for r in rows))
            if self.prompt_length is not None:
                features["prompt_length"] = self.prompt_length
            for module in self.model:
                features = module(features)
            emb = features["sentence_embedding"]
            if self.truncate_dim is not None:
                emb = emb[:, : self.truncate_dim]
            return emb.float().cpu().numpy()


def build_runner(plan: StPlan, config: Any, tokenizer: Any, device: str) -> SentenceTransformerRunner:
    """Load the modules onto `device` and wrap them (what `loading.local_runner` calls for this preset)."""
    modules = load_modules(plan, config.dtype, config.attn_implementation, config.trust_remote_code)
    return SentenceTransformerRunner(modules, tokenizer, device, plan, config.truncate_dim)
