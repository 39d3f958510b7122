"""The one writer of result files, in mteb's own layout and schema.

`OUTPUT/<org__name>/<revision>/<Task>.json` + `model_meta.json`, so mteb's tools and the public
results repository read them. Every file goes through a temp file and a rename: a crash leaves the
previous file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .manifest import publish, write_json_atomic


def model_folder(output_dir: str | Path, name: str, revision: str) -> Path:
    return Path(output_dir) / name.replace("/", "__") / revision


def write_task_result(folder: Path, result: Any) -> Path:
    """Save an mteb TaskResult atomically, with mteb's own serialisation (scores rounded to 6 places)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.task_name}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        result.to_disk(Path(tmp))
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_model_meta(folder: Path, meta: Any) -> None:
    write_json_atomic(folder / "model_meta.json", meta.to_dict())
