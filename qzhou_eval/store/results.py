"""The one writer of result files, in mteb's own layout and schema.

`OUTPUT/<org__name>/<revision>/<Task>.json` + `model_meta.json`, so mteb's tools and the public results
repository read them. Every file goes through `files.staged` (a temp file, fsync, a rename): a crash leaves the
previous file or the new one, never half of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..files import StagedFile, write_json_atomic


def model_folder(output_dir: str | Path, name: str, revision: str) -> Path:
    return Path(output_dir) / name.replace("/", "__") / revision


def stage_task_result(folder: Path, result: Any) -> StagedFile:
    """Serialise an mteb TaskResult with mteb's own code (scores rounded to 6 places) beside its final name;
    the caller records its sha256 in the manifest, then publishes it."""
    stage = StagedFile(Path(folder) / f"{result.task_name}.json")
    try:
        result.to_disk(stage.tmp)
    except BaseException:
        stage.discard()
        raise
    return stage


def write_model_meta(folder: Path, meta: Any) -> None:
    write_json_atomic(Path(folder) / "model_meta.json", meta.to_dict())
