"""What a rerun may reuse: complete result files made with the same settings.

Each finished task's manifest entry keeps the settings its plan was made of (model, revision and content,
the resolved recipe, the batch size, the devices, the exact prefixes, the data and its hash, library
versions, the harness's code identity). A rerun skips a task only when its result file is complete and those
settings match; a file made with other settings stops the run before the model loads, unless the user asks
to `--overwrite`. After an upgrade of the harness that changes the code identity, old results are redone
the same way, or kept with `--allow_code_change` (the manifest then records that they were accepted). A
result file we cannot read (truncated by a crash outside this harness, edited by hand) is reported and redone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import file_sha256
from ..provenance import CODE_SETTING
from ..recipe.benchmarks import BenchmarkTask
from .manifest import MANIFEST_NAME, read_for_update
from .records import records_path


def result_problem(path: Path, spec: BenchmarkTask) -> str | None:
    """Why a result file cannot count as done, or None when it holds every cell the task needs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        scores = data["scores"]
        if data.get("task_name") != spec.name:
            return f"it is for task {data.get('task_name')!r}"
        for split in spec.splits:
            entries = scores.get(split, [])
            have = {entry["hf_subset"] for entry in entries if isinstance(entry.get("main_score"), (int, float))}
            missing = set(spec.subsets) - have
            if missing:
                return f"split {split!r} lacks subsets {sorted(missing)}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__})"
    return None


@dataclass
class Resume:
    run: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    redo: dict[str, str] = field(default_factory=dict)  # task -> why its file is not usable
    conflicts: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    accepted: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)  # --allow_code_change


def sort_tasks(
    folder: Path,
    specs: list[BenchmarkTask],
    settings: dict[str, dict[str, Any]],
    overwrite: bool,
    allow_code_change: bool = False,
) -> Resume:
    """Sort the selected tasks into skip / run, and find results made with other settings.

    A complete result file counts as done when the manifest records it as done with the same settings and
    (for entries that carry it) the same sha256: a file the manifest does not vouch for was left by a kill
    between the two writes, or by an interrupted --overwrite, and is redone rather than refused.
    """
    tasks = read_for_update(Path(folder) / MANIFEST_NAME).get("tasks", {})  # unreadable: retried, then an error
    recorded = tasks if isinstance(tasks, dict) else {}
    out = Resume()
    for spec in specs:
        path = folder / f"{spec.name}.json"
        if not path.exists():
            out.run.append(spec.name)
            continue
        problem = result_problem(path, spec)
        entry = recorded.get(spec.name)
        entry = entry if isinstance(entry, dict) else {}  # a hand-edited entry that is not an object: no record
        done = entry.get("status") == "done"
        if not problem and done and entry.get("result_sha256") not in (None, file_sha256(path)):
            problem = "it is not the file the manifest records (a run was stopped between writing the two)"
        if not problem and done and not records_vouched(folder, spec.name, entry.get("records")):
            problem = "its per-example records are missing or not the ones the manifest records"
        if problem:
            out.redo[spec.name] = problem
            out.run.append(spec.name)
            continue
        wanted = settings[spec.name]
        old = entry.get("settings") if done else None
        if not isinstance(old, dict):
            diff = {"provenance": ("unknown (no manifest record)", "this run")}
        else:
            diff = {k: (old.get(k), v) for k, v in wanted.items() if old.get(k) != v}
        code_only = {k: v for k, v in diff.items() if k == CODE_SETTING}
        if allow_code_change and code_only and len(code_only) == len(diff):
            out.accepted[spec.name] = code_only
            diff = {}
        if not diff:
            out.skip.append(spec.name)
            continue
        out.run.append(spec.name)
        if not overwrite:
            out.conflicts[spec.name] = diff
    return out


def records_vouched(folder: Path, task: str, recorded: Any) -> bool:
    """A task whose manifest entry says records were kept needs exactly those records (older entries have none)."""
    if not isinstance(recorded, dict) or not recorded.get("kept"):
        return True
    path = records_path(folder, task)
    return path.is_file() and file_sha256(path) == recorded.get("sha256")


def conflict_message(folder: Path, conflicts: dict[str, dict[str, tuple[Any, Any]]]) -> UserError:
    keys: dict[str, tuple[Any, Any]] = {}
    for diff in conflicts.values():
        keys.update(diff)
    changes = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in keys.items())
    tasks = ", ".join(list(conflicts)[:5]) + (" ..." if len(conflicts) > 5 else "")
    only_code = any(set(diff) <= {CODE_SETTING} for diff in conflicts.values())
    code = " (where only the harness code identity differs, --allow_code_change keeps them)" if only_code else ""
    return UserError(
        f"{folder} holds results made with different settings ({changes}) for {len(conflicts)} task(s): {tasks}. "
        f"Rerun with --overwrite to recompute them, or choose another --output_dir{code}"
    )
