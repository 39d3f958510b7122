"""Files written whole or not at all, and content hashes remembered across runs.

Every file the harness writes (manifests, result files, cache segments, records, summaries, the hash memo,
download markers) goes through `staged`: a temp file with a unique name beside the target, flushed and
fsynced, then renamed. A reader sees the old file or the new one, never half of one, and two processes
writing the same target never share a temp file.

`file_sha256` is the one content hash of a file (checkpoint weights, tokenizer files, local task data), each
remembered by (path, size, mtime, inode) so a 15 GB checkpoint or a 1 GB corpus is read once, not at every
start, dry run or shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent  # presets/, instructions/, data/, results/reference/
MEMO_ABOVE = 1 << 20  # smaller files are hashed again faster than the memo is rewritten
_memo: dict[str, str] | None = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StagedFile:
    """A file written under a unique temp name beside `path`, not yet in place.

    The result writer stages a file, records its sha256 in the manifest, then publishes it: a kill in
    between leaves a file the manifest does not vouch for, never a half-written one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)

    def sha256(self) -> str:
        return _stream_sha256(self.tmp)

    def publish(self) -> Path:
        """fsync the temp file, give it normal permissions (mkstemp makes it 0600), rename it into place."""
        with self.tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(self.tmp, 0o666 & ~_umask())
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A temp path to write; renamed onto `path` when the block succeeds, removed when it fails."""
    stage = StagedFile(path)
    try:
        yield stage.tmp
        stage.publish()
    finally:
        stage.discard()


def write_atomic(path: Path, write: Callable[[Any], Any]) -> None:
    """`write(binary file)` into a staged temp file, then rename it onto `path`."""
    with staged(path) as tmp, tmp.open("wb") as fh:
        write(fh)


def write_json_atomic(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    write_atomic(Path(path), lambda fh: fh.write(text))


def read_json(path: Path) -> Any:
    """A JSON file's content; OSError and ValueError (bad JSON, bad UTF-8) pass to the caller."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _memo_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qzhou_eval" / "file_sha256.json"


def _load_memo() -> dict[str, str]:
    global _memo
    if _memo is None:
        try:
            loaded = read_json(_memo_path())
            _memo = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            _memo = {}
    return _memo


def _stream_sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with Path(file).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(file: Path) -> str:
    """sha256 of a file's content, remembered by its path, size, mtime and inode (in this process and on disk)."""
    st = file.stat()
    key = f"{Path(file).resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo = _load_memo()
    if key in memo:
        return memo[key]
    if st.st_size > 1 << 30:
        print(f"hashing {file.name} ({st.st_size / 2**30:.1f} GiB) once, to tell it apart", file=sys.stderr)
    memo[key] = _stream_sha256(file)
    if st.st_size > MEMO_ABOVE:  # small files are cheaper to hash again than to remember on disk
        try:
            on_disk = {}
            try:
                loaded = read_json(_memo_path())
                on_disk = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                pass
            write_json_atomic(_memo_path(), {**on_disk, key: memo[key]})
        except OSError:
            pass  # no writable cache folder: hash again next time
    return memo[key]


def hidden(rel: Path) -> bool:
    """Caches and VCS folders (.git, .cache, __pycache__) say nothing about a model's or a dataset's content."""
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def tree_sha256(roots: list[Path], relative_to: Path) -> str:
    """One sha256 over every visible file under `roots`: each file's path (relative) and content hash."""
    digest = hashlib.sha256()
    for root in roots:
        if not root.is_dir():
            continue
        for file in sorted(p for p in root.rglob("*") if p.is_file() and not hidden(p.relative_to(root))):
            digest.update(f"{file.relative_to(relative_to).as_posix()}:{file_sha256(file)}\n".encode())
    return digest.hexdigest()
