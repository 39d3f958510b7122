"""The sidecar manifest beside mteb's result files: how every result in the folder was made.

mteb's JSON looks the same for a hub run and a local-data run, for bf16 and fp32, with and without
instructions; the manifest is what tells them apart. Each task's entry is its plan as executed (settings,
fingerprint, prefixes per subtask, batch size and why, devices, data hash, code identity) plus its outcome.
It is written before the first task runs and rewritten (atomically, under a folder lock) after each task.

Several shard jobs may share one folder, so every save merges this run's entries into the file on disk.
A manifest that exists but cannot be read (a transient ESTALE on a shared file system, a corrupt file) is
retried, then an error: writing back only this run's entries would erase every other shard's records.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import write_json_atomic
from ..provenance import now
from .lock import folder_lock

MANIFEST_NAME = "qzhou_eval_manifest.json"
READ_TRIES = 5
READ_BACKOFF_S = 0.2


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest in `folder` for readers (resume, summaries): {} when it is missing or cannot be read,
    which they treat as "no provenance" (never as "same settings")."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_for_update(path: Path, tries: int = READ_TRIES, backoff_s: float = READ_BACKOFF_S) -> dict[str, Any]:
    """The manifest before a merge: {} only when there is no file; anything else unreadable is retried, then
    an error (so no merge is ever written from a failed read)."""
    last = ""
    for attempt in range(tries):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("tasks", {}), dict):
                return data
            last = "it is not a manifest object"
        except FileNotFoundError:
            return {}
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc.strerror or exc}"
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            last = f"not valid JSON ({exc})"
        if attempt + 1 < tries:
            time.sleep(backoff_s * 2**attempt)
    raise UserError(
        f"cannot read {path} ({last}) after {tries} tries; it is left as it is, since rewriting it would erase the "
        "records of every other run in that folder. Fix or move the file, then rerun (finished tasks are kept)"
    )


class Manifest:
    """A dict with a home on disk; every `save` merges this run's task entries into the file on disk (under a
    lock) and writes it atomically."""

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
        with folder_lock(self.path.parent):
            old = read_for_update(self.path)
            self.data["tasks"] = {**old.get("tasks", {}), **self.own}
            write_json_atomic(self.path, self.data)


def annotate_tasks(folder: Path, notes: dict[str, dict[str, Any]]) -> None:
    """Add keys to existing task entries (e.g. that a result was kept under --allow_code_change), under the lock."""
    path = Path(folder) / MANIFEST_NAME
    with folder_lock(path.parent):
        data = read_for_update(path)
        for task, note in notes.items():
            if isinstance(data.get("tasks", {}).get(task), dict):
                data["tasks"][task].update(note)
        write_json_atomic(path, data)
