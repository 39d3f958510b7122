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

EMBEDDING_SETTINGS = (  # resolved values: max_length after the model's cap, padding side after `auto`
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
    "empty_text",
    "text_suffix",
    "trust_remote_code",
)
# every library a score depends on: the model's numerics, data loading, and the metrics (logistic regression,
# k-means, ranking) computed by scikit-learn, scipy, numpy and pytrec-eval
VERSIONED = (
    "mteb",
    "transformers",
    "sentence-transformers",
    "torch",
    "datasets",
    "tokenizers",
    "numpy",
    "scipy",
    "scikit-learn",
    "pytrec-eval-terrier",
)


def run_settings(config: Any, model_name: str, revision: str, content: str) -> dict[str, Any]:
    """What every task of a run shares and its scores depend on: model, revision, the checkpoint's content
    (the hub commit, or a hash of every file of a local directory: a `--revision` label cannot hide a changed
    checkpoint), every resolved embedding setting, library versions."""
    versions = package_versions()
    return {
        "model": model_name,
        "revision": revision,
        "content": content,
        **{key: getattr(config, key) for key in EMBEDDING_SETTINGS},
        **{f"version:{name}": versions.get(name) for name in VERSIONED},
    }


def task_fingerprint_settings(settings: dict[str, Any], source: str, prefixes: dict[str, str]) -> dict[str, Any]:
    """One task's settings: the run's, its data (source and, for local data, a hash of the files' content)
    and the exact prefixes its texts get (so an edited instruction table or preset redoes only what changed)."""
    prompt = json.dumps(prefixes, sort_keys=True, ensure_ascii=False).encode()
    return {
        **settings,
        "data_source": source,
        "data_sha256": "hub" if source == "hub" else data_hash(source),
        "prefixes_sha256": hashlib.sha256(prompt).hexdigest()[:16],
    }


def data_hash(local: str) -> str:
    """sha256 over every file of a local dataset copy (and its `-qrels` sibling): names and content."""
    digest = hashlib.sha256()
    for root in (Path(local), Path(local + "-qrels")):
        if not root.is_dir():
            continue
        for file in sorted(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts):
            digest.update(f"{file.relative_to(root.parent).as_posix()}\0".encode())
            with file.open("rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def plan(folder: Path, specs: list[BenchmarkTask], settings: dict[str, dict[str, Any]], overwrite: bool) -> Plan:
    """Sort the selected tasks into skip / run, and find results made with other settings.

    A complete result file counts as done when the manifest records it as done with the same settings and
    (for entries that carry it) the same sha256: a file the manifest does not vouch for was left by a kill
    between the two writes, or by an interrupted --overwrite, and is redone rather than refused.
    """
    recorded = read_manifest(folder).get("tasks", {})
    out = Plan()
    for spec in specs:
        path = folder / f"{spec.name}.json"
        if not path.exists():
            out.run.append(spec.name)
            continue
        problem = result_problem(path, spec)
        entry = recorded.get(spec.name) or {}
        done = entry.get("status") == "done"
        if not problem and done and entry.get("result_sha256") not in (None, file_sha256(path)):
            problem = "it is not the file the manifest records (a run was stopped between writing the two)"
        if problem:
            out.redo[spec.name] = problem
            out.run.append(spec.name)
            continue
        wanted = settings[spec.name]
        old = entry.get("settings") if done else None
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
