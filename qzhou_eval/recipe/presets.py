"""Presets: how a model family is evaluated by its authors, as data (`presets/<name>.json`).

A preset sets attention (bidirectional / causal / the model's own), pooling, normalisation, padding
side, max length, dtype, attention backend, and the prompt rule, and names its source. Resolution:
EvalConfig defaults < preset < explicit flags. Without `--preset` the checkpoint picks one (its
architecture, then its name, then a sentence-transformers config) and the choice and reason are
printed and recorded; a model nothing matches gets `qzhou`, said so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from ..config import _UNSET
from ..errors import UserError
from ..files import REPO_ROOT
from .st_config import model_prompts, st_settings

PRESETS_DIR = REPO_ROOT / "presets"
DEFAULT_PRESET = "qzhou"
MODEL_VALUES = ("pooling", "normalize", "padding_side", "max_length", "dtype", "attn_implementation")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    source: str
    detect: dict[str, Any]
    attention: str  # bidirectional | causal | model
    values: dict[str, Any]  # pooling, normalize, padding_side, max_length, dtype, attn_implementation
    prompt: dict[str, Any]
    append_eos: bool = False  # add the EOS id after truncation, when the tokenizer does not (e5-mistral)
    # what an empty text becomes before the prefix: "Null" is QZhou's reference scripts' rule; None keeps ""
    # (every other family's own code passes empty texts through)
    empty_text: str | None = "Null"
    text_suffix: str = ""  # appended to every text before tokenizing (gte-Qwen2 in mteb: "<|endoftext|>")
    sources: dict[str, str] | None = None  # decision -> the repository, file and commit (or revision) it follows
    normalize_by_type: tuple[tuple[str, bool], ...] = ()  # task type -> normalise, where the source decides per type
    strip_documents: bool = False  # retrieval documents stripped of leading/trailing space (mteb gives " text")


@cache
def all_presets() -> dict[str, Preset]:
    out = {}
    for path in sorted(PRESETS_DIR.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        out[raw["name"]] = Preset(
            raw["name"],
            raw["description"],
            raw["source"],
            raw.get("detect", {}),
            raw["attention"],
            {k: raw[k] for k in MODEL_VALUES},
            raw["prompt"],
            bool(raw.get("append_eos", False)),
            raw["empty_text"] if "empty_text" in raw else "Null",
            raw.get("text_suffix", ""),
            raw.get("sources"),
            tuple(sorted((raw.get("normalize_by_type") or {}).items())),
            bool(raw.get("strip_documents", False)),
        )
    return out


def get_preset(name: str) -> Preset:
    presets = all_presets()
    if name not in presets:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(presets)}")
    return presets[name]


def detect(path: Path, config: dict[str, Any], name: str) -> tuple[Preset, str]:
    """The preset a checkpoint asks for, and why."""
    presets = all_presets()
    archs = set(config.get("architectures") or [])
    for p in presets.values():
        hit = archs & set(p.detect.get("architectures", []))
        if hit:
            return p, f"architecture {sorted(hit)[0]}"
    label = f"{name} {path.name}".lower()
    for p in presets.values():
        for pattern in p.detect.get("name_patterns", []):
            if re.search(re.escape(pattern.lower()), label):
                return p, f"model name matches {pattern!r}"
    for p in presets.values():
        files = p.detect.get("files", [])
        if files and all((path / f).is_file() for f in files):
            return p, f"directory has {', '.join(files)}"
    return presets[DEFAULT_PRESET], "no preset matched its architecture, name or files: the harness default"


def resolve_values(preset: Preset, path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The preset's model values with `from_model` filled from the directory, and its model prompts."""
    values = dict(preset.values)
    prompts: dict[str, str] = {}
    if any(v == "from_model" for v in values.values()) or preset.prompt.get("instructions") == "model_prompts":
        if not (path / "modules.json").is_file():
            raise UserError(f"preset {preset.name} needs a sentence-transformers directory (modules.json): {path}")
        st = st_settings(path)
        prompts = model_prompts(path)
        for key, value in values.items():
            if value == "from_model":
                if st.get(key) is None:
                    raise UserError(f"preset {preset.name}: {path.name} does not say its {key}")
                values[key] = st[key]
    return values, prompts


# preset key -> EvalConfig field, for the values a preset decides
PRESET_KEYS = {
    "pooling": "pooling_mode",
    "normalize": "normalize",
    "padding_side": "padding_side",
    "max_length": "max_length",
    "dtype": "dtype",
    "attn_implementation": "attn_implementation",
}


def resolve_config(config: Any, path: Path, model_config: dict[str, Any], name: str) -> Any:
    """defaults < preset < flags, once: every field the user left to the preset gets the preset's value.

    `config` is an EvalConfig whose preset-driven fields are None where the user gave no flag; the result
    has all of them set (and `resolved=True`). The preset is `config.preset`, else detected from the
    checkpoint. Nothing here loads weights or a tokenizer.
    """
    if config.resolved:
        return config
    if config.preset:
        preset, reason = get_preset(config.preset), config.preset_reason or "--preset"
    else:
        preset, reason = detect(path, model_config, name)
    values, _ = resolve_values(preset, path)
    updates: dict[str, Any] = {"preset": preset.name, "preset_reason": reason, "resolved": True}
    for key, field_name in PRESET_KEYS.items():
        if getattr(config, field_name) is None:
            updates[field_name] = values[key]
    if config.normalize_by_type is None:  # a --normalize flag applies to every task type
        updates["normalize_by_type"] = preset.normalize_by_type if config.normalize is None else ()
    if config.attention is None:
        updates["attention"] = preset.attention
    if config.append_eos is None:
        updates["append_eos"] = preset.append_eos
    if config.empty_text == _UNSET:
        updates["empty_text"] = preset.empty_text
    if config.text_suffix is None:
        updates["text_suffix"] = preset.text_suffix
    if config.strip_documents is None:
        updates["strip_documents"] = preset.strip_documents
    return replace(config, **updates)
