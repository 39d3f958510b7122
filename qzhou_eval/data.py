"""Offline data: point a registered mteb task at a local copy of its dataset repository.

`DATA_DIR/<dataset path of the task>` laid out like the hub repo replaces hub access for that task.
The task keeps its name, splits and upstream revision; only its (deep-copied) metadata's path
changes. The metadata is copied because mteb shares one metadata object between every instance of
a task class and the benchmark objects.

No code from data: mteb asks `datasets` to trust remote code for a few script-based repositories
(MTOPDomain, AmazonCounterfactual); a hub snapshot of such a repo holds its loading script, which
`datasets` would run. Local copies are always loaded with `trust_remote_code=False`, and a copy that
holds a loading script fails its task with a message instead of reaching `datasets` at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class TaskDataMissing(Exception):
    """The task's data is not under --data_dir; the runner reports it per task."""


class TaskDataNeedsScript(Exception):
    """The local copy is a script-based dataset repo; its script is never run."""


def hub_path(task: Any) -> str:
    return task.metadata.dataset["path"]


def loading_script(local: Path) -> Path | None:
    """The script `datasets` would run for this folder: `<folder name>.py` inside it (its rule for local dirs)."""
    script = local / f"{local.name}.py"
    return script if local.is_dir() and script.is_file() else None


def use_local_data(task: Any, data_dir: str | Path) -> str:
    """Redirect `task` to `data_dir`; returns the local path, for the manifest."""
    local = Path(data_dir).resolve() / hub_path(task)
    if not local.is_dir():
        raise TaskDataMissing(
            f"{task.metadata.name}: no data at {local} (expected a copy of hub dataset {hub_path(task)})"
        )
    script = loading_script(local) or loading_script(Path(f"{local}-qrels"))
    if script is not None:
        raise TaskDataNeedsScript(
            f"{task.metadata.name}: {local} holds a dataset loading script ({script.name}); code from data is never "
            "run. Replace the copy with data files (e.g. the repo's parquet conversion, refs/convert/parquet)"
        )
    task.metadata = task.metadata.model_copy(deep=True)
    task.metadata.dataset["path"] = str(local)
    task.metadata.dataset["trust_remote_code"] = False
    return str(local)
