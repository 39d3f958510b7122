"""What a sentence-transformers directory asks for, read from its files alone (no weights, no code).

`SentenceTransformer.encode` is: prepend the prompt, strip (and lower-case, if the Transformer module says
so), tokenize with truncation at `max_seq_length`, run every module of `modules.json` in order, take
`sentence_embedding`. This module checks and reads that chain (`read_st_dir`); the model layer
(`model/st_runner.py`) loads the same module classes and runs them.

Nothing named in `modules.json` is imported: a type must be one of `MODULE_CLASSES`, every module folder and
the tokenizer folder must lie inside the model folder, a Dense activation must be a torch.nn activation,
and loader keys that would reach outside the folder (`cache_dir`, a non-torch `backend`, `trust_remote_code`)
are refused or dropped, so everything that runs is inside the folder whose files the revision hashes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

# the sentence_transformers.models classes that take token ids from a Transformer module; the others need their
# own tokenizer (BoW, WordEmbeddings, StaticEmbedding), dict inputs (Asym), images (CLIPModel) or features a
# Transformer does not give (LSTM's sentence_lengths)
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
REFUSED_KEYS = ("cache_dir",)  # a Transformer config key that would load files from elsewhere
ST_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_weightedmean_tokens": "weighted_mean",
    "pooling_mode_lasttoken": "last_token",
}


@dataclass(frozen=True)
class StModule:
    name: str
    kind: str  # one of MODULE_CLASSES
    folder: Path  # inside the model folder ("" in modules.json = the model folder itself)


@dataclass(frozen=True)
class StDir:
    """A sentence-transformers directory's module chain and Transformer settings, checked."""

    root: Path
    modules: tuple[StModule, ...]
    transformer_args: dict[str, Any] = field(default_factory=dict)  # its sentence_*_config.json
    include_prompt: bool = True  # False if a Pooling module leaves the prompt tokens out
    tokenizer_folder: Path | None = None  # inside root; None = the Transformer module's folder

    @property
    def transformer_folder(self) -> Path:
        return self.modules[0].folder

    @property
    def do_lower_case(self) -> bool:
        return bool(self.transformer_args.get("do_lower_case", False))

    def describe(self) -> list[str]:
        """For the manifest and the model class: the module chain, in order."""
        return [f"{m.kind}({m.folder.relative_to(self.root).as_posix() or '.'})" for m in self.modules]


def read_json_file(path: Path, what: str = "") -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what or path}: {exc}") from None


def _inside(root: Path, raw: Any, what: str) -> Path:
    """A folder named in a config, which must stay inside the model folder (no absolute paths, no `..`)."""
    if not isinstance(raw, str):
        raise UserError(f"{root.name}: {what} has no path string")
    rel = Path(raw)
    folder = (root / rel).resolve()
    if rel.is_absolute() or ".." in rel.parts or raw.startswith(("/", "\\")) or not folder.is_relative_to(root):
        raise UserError(f"{root.name}: {what} path {raw!r} leaves the model folder")
    return folder


def _transformer_args(root: Path, folder: Path) -> dict[str, Any]:
    """Its sentence_*_config.json, checked: `trust_remote_code` dropped (a file may not turn it on, as in
    sentence-transformers), keys that load from elsewhere refused."""
    args: dict[str, Any] = {}
    for config_name in TRANSFORMER_CONFIGS:
        if (folder / config_name).is_file():
            args = read_json_file(folder / config_name)
            if not isinstance(args, dict):
                raise UserError(f"{root.name}/{config_name} is not a JSON object")
            break
    for key in REFUSED_KEYS:
        if args.get(key) is not None:
            raise UserError(f"{root.name}: its Transformer config sets {key!r}, which would load files from elsewhere")
    max_seq = args.get("max_seq_length")
    if max_seq is not None and (not isinstance(max_seq, int) or isinstance(max_seq, bool) or max_seq <= 0):
        raise UserError(f"{root.name}: max_seq_length {max_seq!r} in its Transformer config is not a positive integer")
    if args.get("backend", "torch") != "torch":
        raise UserError(f"{root.name}: Transformer backend {args['backend']!r} is not run here (torch only)")
    for key in ("model_args", "tokenizer_args", "config_args"):
        if key in args and args[key] is not None and not isinstance(args[key], dict):
            raise UserError(f"{root.name}: Transformer config {key!r} is not an object")
        if isinstance(args.get(key), dict):
            for refused in REFUSED_KEYS:
                if refused in args[key]:
                    raise UserError(f"{root.name}: Transformer config {key}.{refused} would load files from elsewhere")
            args[key].pop("trust_remote_code", None)
    return args


def _module(root: Path, i: int, entry: Any) -> StModule:
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
    folder = _inside(root, entry.get("path", ""), f"modules.json: module {name!r}")
    kind = match["cls"]
    if kind != "Normalize" and not folder.is_dir():
        raise UserError(f"{root.name}/modules.json: module {name!r} folder {entry.get('path')!r} is missing")
    if (i == 0) != (kind == "Transformer"):
        raise UserError(
            f"{root.name}/modules.json: the first module must be the one Transformer (module {name!r} is {kind})"
        )
    return StModule(name, kind, folder)


def read_st_dir(root: Path) -> StDir:
    """Check a directory's modules.json and read what the modules need, before any weights load."""
    root = Path(root).resolve()
    entries = read_json_file(root / "modules.json", f"{root.name}/modules.json")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{root.name}/modules.json: expected a list of modules")
    modules = [_module(root, i, entry) for i, entry in enumerate(entries)]
    include_prompt = True
    for m in modules:
        cfg = read_json_file(m.folder / "config.json") if m.kind in ("Pooling", "Dense") else {}
        if not isinstance(cfg, dict):
            raise UserError(f"{root.name}: {m.folder.name}/config.json is not a JSON object")
        if m.kind == "Pooling":
            include_prompt &= bool(cfg.get("include_prompt", True))
        if m.kind == "Dense":
            activation = str(cfg.get("activation_function", ""))
            if not activation.startswith(ACTIVATION_PREFIXES):
                raise UserError(
                    f"{root.name}/modules.json: module {m.name!r} (Dense) names activation {activation!r}; "
                    "only torch.nn activations are loaded"
                )
    args = _transformer_args(root, modules[0].folder)
    tokenizer_folder = None
    if args.get("tokenizer_name_or_path") is not None:
        tokenizer_folder = _inside(root, args["tokenizer_name_or_path"], "tokenizer_name_or_path")
        if not tokenizer_folder.is_dir():
            raise UserError(f"{root.name}: tokenizer_name_or_path {args['tokenizer_name_or_path']!r} is not a folder")
    return StDir(root, tuple(modules), args, include_prompt, tokenizer_folder)


def model_prompts(root: Path) -> dict[str, str]:
    """The `prompts` of config_sentence_transformers.json: prompt name -> text (none: {})."""
    file = Path(root) / "config_sentence_transformers.json"
    if not file.is_file():
        return {}
    cfg = read_json_file(file, f"{Path(root).name}/config_sentence_transformers.json")
    if not isinstance(cfg, dict):
        raise UserError(f"{Path(root).name}/config_sentence_transformers.json is not a JSON object")
    prompts = cfg.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise UserError(
            f"{Path(root).name}/config_sentence_transformers.json: 'prompts' must map prompt names to texts, "
            f"got {type(prompts).__name__}"
        )
    return prompts


def default_prompt(root: Path) -> str | None:
    """The prompt `default_prompt_name` names in config_sentence_transformers.json: what `encode` prepends when it
    is given no prompt (mteb's wrapper passes none where no prompt name matches a task). An unknown name is an
    error, as in sentence-transformers."""
    file = Path(root) / "config_sentence_transformers.json"
    cfg = read_json_file(file) if file.is_file() else {}
    name = cfg.get("default_prompt_name") if isinstance(cfg, dict) else None
    if name is None:
        return None
    prompts = model_prompts(root)
    if name not in prompts:
        raise UserError(
            f"{Path(root).name}/config_sentence_transformers.json: default_prompt_name {name!r} is not one of its "
            f"prompts ({', '.join(prompts) or 'none'})"
        )
    return prompts[name]


def st_settings(root: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length from a sentence-transformers directory: the record of its recipe
    (the `sentence-transformers` preset embeds through the modules themselves)."""
    st = read_st_dir(root)
    out: dict[str, Any] = {"normalize": any(m.kind == "Normalize" for m in st.modules)}
    pooling = next((m for m in st.modules if m.kind == "Pooling"), None)
    if pooling is not None:
        cfg = read_json_file(pooling.folder / "config.json")
        modes = [ST_POOLING.get(k, k) for k, on in cfg.items() if k.startswith("pooling_mode") and on]
        if len(modes) != 1 or modes[0] not in ST_POOLING.values():
            raise UserError(
                f"{st.root.name}: sentence-transformers pooling {modes} is not supported (one of "
                f"{', '.join(ST_POOLING.values())})"
            )
        out["pooling"] = modes[0]
    out["max_length"] = st.transformer_args.get("max_seq_length") or _inferred_max_seq_length(st.transformer_folder)
    return out


def _inferred_max_seq_length(folder: Path) -> int | None:
    """sentence-transformers' rule when its config sets no max_seq_length: the smaller of the model's
    positions and the tokenizer's model_max_length (Transformer.__init__)."""
    limits = []
    for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
        file = folder / name
        raw = read_json_file(file) if file.is_file() else {}
        value = raw.get(key) if isinstance(raw, dict) else None
        limits.append(value if isinstance(value, int) and 0 < value < 1_000_000 else None)
    known = [n for n in limits if n is not None]
    return min(known) if known else None
