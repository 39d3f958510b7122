"""The one resolution step: flags + preset + the checkpoint's own files -> a `Recipe`, decided once.

defaults < preset < flags, then what only the checkpoint can tell: `padding_side` auto -> left/right,
`max_length` capped at the model's limit, flash-attention -> SDPA where it cannot run, the prompt rule with
the model's own prompts, the text rule (empty text, suffix, a sentence-transformers module's strip and
lower-case). Every later stage (the model layer, each task's plan, the manifest, the fingerprint, the cache
key) reads the Recipe; none re-derives a setting. Reads configs and tokenizer files; never loads weights.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import EvalConfig
from ..errors import UserError
from .checkpoint import Checkpoint, fetch_weights, locate, output_dim, resolve_checkpoint, resolve_max_length
from .instructions import PromptRule, prompt_rule
from .presets import get_preset, resolve_config
from .st_config import StDir, read_st_dir
from .texts import TextRule
from .tokenizer import load_tokenizer

ST_PRESET = "sentence-transformers"  # embedded through its own modules (model/st_runner.py)
# resolved EvalConfig fields that shape what a model computes for a given input, recorded in every
# fingerprint; batch size, devices and the exact prefixes are per task (evaluate/plan.py)
RECIPE_FIELDS = (
    "pooling_mode",
    "normalize",
    "normalize_by_type",
    "use_instruction",
    "max_length",
    "dtype",
    "attn_implementation",
    "padding_side",
    "sort_by",
    "batch_tokens",
    "max_padding",
    "preset",
    "attention",
    "instruction",
    "truncate_dim",
    "append_eos",
    "empty_text",
    "text_suffix",
    "strip_documents",
    "trust_remote_code",
)


@dataclass(frozen=True)
class Recipe:
    """Everything decided about how a model embeds, before any weight loads."""

    config: EvalConfig  # resolved: no field left to the preset
    checkpoint: Checkpoint
    rule: PromptRule
    texts: TextRule
    st: StDir | None  # the sentence-transformers preset: the module chain that runs
    tokenizer: Any = field(compare=False, repr=False)

    @property
    def preset_source(self) -> str:
        return get_preset(self.config.preset).source

    def settings(self) -> dict[str, Any]:
        """What every task's embeddings depend on: the model, its revision label and content (the hub commit,
        or a hash of every file: a `--revision` label cannot hide a changed checkpoint), the resolved recipe."""
        return {
            "model": self.checkpoint.name,
            "revision": self.checkpoint.revision,
            "content": self.checkpoint.content,
            # which code embeds: the model's own sentence-transformers modules, or the transformers model + pooling
            "runner": "sentence-transformers: " + " ".join(self.st.describe()) if self.st else "transformers",
            **{key: getattr(self.config, key) for key in RECIPE_FIELDS},
        }

    def prompt_length(self, prefix: str) -> int | None:
        """How many leading tokens a prefix covers, as `SentenceTransformer.encode` counts them (its tokens,
        specials included, minus the last one); only for a Pooling module that leaves the prompt out."""
        if self.st is None or self.st.include_prompt or not prefix:
            return None
        ids = self.tokenizer(
            [self.texts.prompt_text(prefix)], truncation=True, max_length=self.st.transformer_args.get("max_seq_length")
        )["input_ids"][0]
        return len(ids) - 1

    def check_prefixes_fit(self, prefixes: dict[str, str]) -> None:
        """A prefix as long as max_length would truncate every text away: all embeddings equal."""
        for where, prefix in prefixes.items():
            n = len(self.tokenizer(prefix)["input_ids"]) if prefix else 0
            if n >= self.config.max_length:
                raise UserError(
                    f"--max_length {self.config.max_length} leaves no room for text: the instruction prefix of "
                    f"{where} alone is {n} tokens"
                )


def flash_attention_available() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def _refuse_overridden_flags(config: EvalConfig, st: StDir) -> None:
    """The sentence-transformers preset runs the model's own modules: a flag they would override is refused."""
    from .st_config import st_settings

    own = st_settings(st.root)
    for field_name, key, flag in (
        ("pooling_mode", "pooling", "--pooling_mode"),
        ("normalize", "normalize", "--normalize"),
    ):
        wanted = getattr(config, field_name)
        if key in own and wanted is not None and wanted != own[key]:
            raise UserError(
                f"the sentence-transformers preset runs {st.root.name}'s own modules ({', '.join(st.describe())}), "
                f"which give {key} {own[key]!r}; {flag} {wanted!r} cannot apply: drop it, or choose another --preset"
            )


def prepare(config: EvalConfig, quiet: bool = False, weights: bool = False) -> Recipe:
    """Resolve a config against its checkpoint (no weights; `weights=True` also fetches hub weights)."""
    path, model_config, _ = locate(config.model_name_or_path, config.revision, weights=False)
    name = config.model_name or config.model_name_or_path
    explicit = config
    config = resolve_config(config, path, model_config, name)
    if not quiet:
        print(f"preset: {config.preset} ({config.preset_reason}; {get_preset(config.preset).source})", file=sys.stderr)
    checkpoint = resolve_checkpoint(
        config.model_name_or_path,
        config.model_name,
        config.revision,
        config.trust_remote_code,
        config.attention,
        weights=False,
    )
    st = None
    if config.preset == ST_PRESET:
        st = read_st_dir(checkpoint.path)
        _refuse_overridden_flags(explicit, st)
    tokenizer = load_tokenizer(checkpoint, config.padding_side, config.trust_remote_code, st)
    updates: dict[str, Any] = {
        "padding_side": tokenizer.padding_side,
        "max_length": resolve_max_length(config.max_length, checkpoint, tokenizer),
    }
    if config.attn_implementation == "flash_attention_2" and not flash_attention_available():
        updates["attn_implementation"] = "sdpa"
        if not quiet:
            print("flash_attention_2 is not available here (needs CUDA and flash-attn): using sdpa", file=sys.stderr)
    config = replace(config, **updates)
    dim = output_dim(checkpoint)
    if config.truncate_dim is not None and dim is not None and config.truncate_dim > dim:
        raise UserError(f"--truncate_dim {config.truncate_dim} exceeds the model's {dim} dimensions")
    if config.batch_tokens is not None and config.batch_tokens < config.max_length:
        raise UserError(
            f"--batch_tokens {config.batch_tokens} is below --max_length {config.max_length}: a long text cannot fit"
        )
    texts = TextRule(
        empty_text=config.empty_text,
        suffix=config.text_suffix or "",
        strip=st is not None,
        lower_case=st is not None and st.do_lower_case,
    )
    rule = prompt_rule(config, checkpoint.path)
    if weights:
        checkpoint = fetch_weights(checkpoint)
    return Recipe(config, checkpoint, rule, texts, st, tokenizer)
