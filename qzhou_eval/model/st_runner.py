"""sentence-transformers models embedded through their own modules, with this project's batching.

The module chain (`recipe/st_config.py` read and checked it) runs as `SentenceTransformer.forward` runs it:
sentence_transformers' own classes, loaded from their folders, on the batches the `Embedder` plans, so the
output equals `encode` up to float noise, while tokenizing once, sorting, batching, out-of-memory halving and
worker processes stay the project's. Rebuilding only Transformer + Pooling + Normalize would embed a model
with a Dense head, `include_prompt: false` or lower-casing differently from its authors.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from ..recipe.st_config import StDir, StModule
from .hf_runner import LocalRunner
from .weights import attention_error, check_loaded_keys


def _checked_transformer_class() -> type:
    """sentence_transformers' Transformer, except that its weights must fit the model class
    (`weights.check_loaded_keys`): transformers would fill missing tensors with random values."""
    from sentence_transformers.models import Transformer

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


def _load_transformer(st: StDir, dtype: str, attn_implementation: str, trust_remote_code: bool) -> Any:
    """sentence_transformers' Transformer module, built as SentenceTransformer builds it (saved config <
    hub kwargs < caller kwargs), with this run's dtype and attention implementation."""
    Transformer = _checked_transformer_class()  # noqa: N806 - a class

    args = copy.deepcopy(st.transformer_args)
    for key in ("model_args", "tokenizer_args", "config_args"):
        args.setdefault(key, {})
        args[key] = dict(args[key] or {}, trust_remote_code=trust_remote_code)
    args["model_args"].update(torch_dtype=getattr(torch, dtype), attn_implementation=attn_implementation)
    if st.tokenizer_folder is not None:  # checked to lie inside the model folder; never resolved from the cwd
        args["tokenizer_name_or_path"] = str(st.tokenizer_folder)
    try:
        return Transformer(str(st.transformer_folder), **args)
    except TypeError as exc:
        raise UserError(f"{st.root.name}: its Transformer module config does not load: {exc}") from None
    except (ValueError, ImportError) as exc:
        raise attention_error(st.root.name, attn_implementation, exc) from None


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


def load_modules(st: StDir, dtype: str, attn_implementation: str, trust_remote_code: bool) -> list[Any]:
    """Every module of modules.json in order, all in the Transformer's dtype (as SentenceTransformer
    casts itself to its first parameter's dtype)."""
    modules = [_load_transformer(st, dtype, attn_implementation, trust_remote_code)]
    modules += [_load_module(m) for m in st.modules[1:]]
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
        self, modules: list[Any], tokenizer: Any, device: str, st: StDir, truncate_dim: int | None = None
    ) -> None:
        # LocalRunner's __init__ reads a bare transformers model; the attributes it sets are set here
        self.model = SentenceTransformerModules(modules).to(device).eval()
        self.st = st
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

    def run(
        self,
        batches: list[list[np.ndarray]],
        stats: Any,
        *args: Any,
        prompt_length: int | None = None,
        normalize: bool | None = None,
    ) -> Any:
        """LocalRunner.run, with the call's prompt length (`encode`'s `prompt_length` feature) for every batch.
        Normalisation is the modules' own (a Normalize module or none): a call cannot ask for another."""
        if normalize is not None and normalize != any(m.kind == "Normalize" for m in self.st.modules):
            raise RuntimeError(
                f"{self.st.root.name}: its modules decide normalisation; a call asked normalize={normalize}"
            )
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


def build_runner(st: StDir, config: Any, tokenizer: Any, device: str) -> SentenceTransformerRunner:
    """Load the modules onto `device` and wrap them (what `build.RunnerFactory` calls for this preset)."""
    modules = load_modules(st, config.dtype, config.attn_implementation, config.trust_remote_code)
    return SentenceTransformerRunner(modules, tokenizer, device, st, config.truncate_dim)
