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
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import UserError

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
DEFAULT_PRESET = "qzhou"
MODEL_VALUES = ("pooling", "normalize", "padding_side", "max_length", "dtype", "attn_implementation")
ST_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_weightedmean_tokens": "weighted_mean",
    "pooling_mode_lasttoken": "last_token",
}


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
        )
    return out


def get_preset(name: str) -> Preset:
    presets = all_presets()
    if name not in presets:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(presets)}")
    return presets[name]


def st_settings(path: Path) -> dict[str, Any]:
    """Pooling, normalisation, max length and prompts from a sentence-transformers directory."""
    modules = json.loads((path / "modules.json").read_text())
    out: dict[str, Any] = {"normalize": any(m.get("type", "").endswith("Normalize") for m in modules)}
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is not None:
        cfg = json.loads((path / pooling["path"] / "config.json").read_text())
        modes = [ST_POOLING.get(k, k) for k, on in cfg.items() if k.startswith("pooling_mode") and on]
        if len(modes) != 1 or modes[0] not in ST_POOLING.values():
            raise UserError(
                f"{path.name}: sentence-transformers pooling {modes} is not supported (one of "
                f"{', '.join(ST_POOLING.values())})"
            )
        out["pooling"] = modes[0]
    bert_cfg = path / "sentence_bert_config.json"
    if bert_cfg.is_file():
        out["max_length"] = json.loads(bert_cfg.read_text()).get("max_seq_length")
    st_cfg = path / "config_sentence_transformers.json"
    out["prompts"] = json.loads(st_cfg.read_text()).get("prompts", {}) if st_cfg.is_file() else {}
    return out


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
        prompts = st.pop("prompts")
        for key, value in values.items():
            if value == "from_model":
                if st.get(key) is None:
                    raise UserError(f"preset {preset.name}: {path.name} does not say its {key}")
                values[key] = st[key]
    return values, prompts
