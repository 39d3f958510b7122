"""The sidecar manifest beside mteb's result files: how every result in the folder was made.

mteb's JSON looks the same for a hub run and a local-data run, for bf16 and fp32, with and without
instructions; the manifest is what tells them apart. It is written before the model loads and
rewritten (atomically) after each task, so a crash never leaves it half-written.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST_NAME = "qzhou_eval_manifest.json"
TRACKED_PACKAGES = (
    "mteb",
    "transformers",
    "sentence-transformers",
    "torch",
    "datasets",
    "tokenizers",
    "accelerate",
    "numpy",
    "scikit-learn",
    "scipy",
    "pytrec-eval-terrier",
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | Path, path: Path) -> None:
    """Give a finished temp file normal permissions (mkstemp makes it 0600) and rename it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def write_atomic(path: Path, write: Callable[[Any], Any]) -> None:
    """`write(binary file)` into a temp file in the same folder, fsync, then rename: readers see the old file
    or the new one, never half of one (manifests, summaries, cache segments)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    write_atomic(path, lambda fh: fh.write(text))


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest in `folder`, or {} when there is none or it cannot be read."""
    try:
        return json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the folder that holds `path`, so shard jobs sharing one folder do not drop
    each other's tasks. The lock is taken on the folder's own descriptor, so no lock file is left behind;
    closing the descriptor releases it (also when the process dies)."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Manifest:
    """A dict with a home on disk; every `save` merges this run's task entries into the file on disk
    (under a lock) and writes it atomically."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {**header, "tasks": {}}
        self.own: dict[str, Any] = {}

    def record_task(self, task: str, entry: dict[str, Any]) -> None:
        self.own[task] = entry
        self.save()

    def save(self) -> None:
        self.data["updated"] = now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path):
            old = read_manifest(self.path.parent)
            self.data["tasks"] = {**old.get("tasks", {}), **self.own}
            write_json_atomic(self.path, self.data)
