"""The one writer of result files, in mteb's own layout and schema.

`OUTPUT/<org__name>/<revision>/<Task>.json` + `model_meta.json`, so mteb's tools and the public
results repository read them. Every file goes through a temp file and a rename: a crash leaves the
previous file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import publish, write_json_atomic


def model_folder(output_dir: str | Path, name: str, revision: str) -> Path:
    return Path(output_dir) / name.replace("/", "__") / revision


@dataclass
class StagedResult:
    """A result file written under a temp name, not yet in place: the manifest records its sha256 first."""

    tmp: Path
    path: Path
    sha256: str

    def publish(self) -> Path:
        publish(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def stage_task_result(folder: Path, result: Any) -> StagedResult:
    """Serialise an mteb TaskResult with mteb's own code (scores rounded to 6 places) beside its final name."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.task_name}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        result.to_disk(Path(tmp))
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return StagedResult(Path(tmp), path, digest)


def write_task_result(folder: Path, result: Any) -> Path:
    """Save an mteb TaskResult atomically (temp file, then rename)."""
    return stage_task_result(folder, result).publish()


def write_model_meta(folder: Path, meta: Any) -> None:
    write_json_atomic(folder / "model_meta.json", meta.to_dict())
