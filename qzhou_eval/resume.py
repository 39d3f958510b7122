"""What a rerun may reuse: complete result files made with the same settings.

Each finished task's manifest entry keeps the settings it was made with (model, revision, every
embedding-relevant flag, instruction table, data source, library versions). A rerun skips a task
only when its result file is complete and those settings match; a file made with other settings
stops the run before the model loads, unless the user asks to `--overwrite`. A result file we
cannot read (truncated by a crash outside this harness, edited by hand) is reported and redone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .manifest import package_versions, read_manifest
from .tasks import BenchmarkTask

EMBEDDING_SETTINGS = (
    "pooling_mode",
    "normalize",
    "use_instruction",
    "max_length",
    "batch_size",
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
)
VERSIONED = ("mteb", "transformers", "sentence-transformers", "torch", "datasets", "tokenizers")


def run_settings(config: Any, model_name: str, revision: str, rule: Any) -> dict[str, Any]:
    """Everything that can change a task's scores, except the per-task data source.

    The prompt rule counts by content (template, sides, instruction table bytes, model prompts), so
    editing a preset or an instruction file is a settings change, not a silent reuse.
    """
    versions = package_versions()
    prompt = json.dumps({**rule.describe(), "model_prompts": rule.model_prompts}, sort_keys=True).encode()
    return {
        "model": model_name,
        "revision": revision,
        **{key: getattr(config, key) for key in EMBEDDING_SETTINGS},
        "prompts_sha256": hashlib.sha256(prompt + rule.table.path.read_bytes()).hexdigest()[:16],
        **{f"version:{name}": versions.get(name) for name in VERSIONED},
    }


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def result_problem(path: Path, spec: BenchmarkTask) -> str | None:
    """Why a result file cannot count as done, or None when it holds every cell the task needs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scores = data["scores"]
        if data.get("task_name") != spec.name:
            return f"it is for task {data.get('task_name')!r}"
        for split in spec.splits:
            have = {entry["hf_subset"] for entry in scores.get(split, []) if entry.get("main_score") is not None}
            missing = set(spec.subsets) - have
            if missing:
                return f"split {split!r} lacks subsets {sorted(missing)}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__})"
    return None


@dataclass
class Plan:
    run: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    redo: dict[str, str] = field(default_factory=dict)  # task -> why its file is not usable
    conflicts: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)


def plan(
    folder: Path, specs: list[BenchmarkTask], settings: dict[str, Any], sources: dict[str, str], overwrite: bool
) -> Plan:
    """Sort the selected tasks into skip / run, and find results made with other settings."""
    recorded = read_manifest(folder).get("tasks", {})
    out = Plan()
    for spec in specs:
        path = folder / f"{spec.name}.json"
        if not path.exists():
            out.run.append(spec.name)
            continue
        problem = result_problem(path, spec)
        if problem:
            out.redo[spec.name] = problem
            out.run.append(spec.name)
            continue
        wanted = {**settings, "data_source": sources[spec.name]}
        entry = recorded.get(spec.name) or {}
        old = entry.get("settings") if entry.get("status") == "done" else None
        if old is None:
            diff = {"provenance": ("unknown (no manifest record)", "this run")}
        else:
            diff = {k: (old.get(k), v) for k, v in wanted.items() if old.get(k) != v}
        if not diff:
            out.skip.append(spec.name)
            continue
        out.run.append(spec.name)
        if not overwrite:
            out.conflicts[spec.name] = diff
    return out


def conflict_message(folder: Path, conflicts: dict[str, dict[str, tuple[Any, Any]]]) -> UserError:
    keys: dict[str, tuple[Any, Any]] = {}
    for diff in conflicts.values():
        keys.update(diff)
    changes = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in keys.items())
    tasks = ", ".join(list(conflicts)[:5]) + (" ..." if len(conflicts) > 5 else "")
    return UserError(
        f"{folder} holds results made with different settings ({changes}) for {len(conflicts)} task(s): {tasks}. "
        "Rerun with --overwrite to recompute them, or choose another --output_dir"
    )
