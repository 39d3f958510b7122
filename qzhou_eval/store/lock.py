"""An exclusive lock on a folder, so shard jobs sharing one result folder never drop each other's records.

The lock is `flock` on the folder's own descriptor (no lock file is left behind; closing the descriptor
releases it, also when the process dies). Some shared file systems refuse `flock` (Lustre mounted without
`-o flock`, some NFS setups): there the lock falls back to a POSIX record lock (`fcntl.lockf`) on a hidden
file in the folder, said once. Where neither works, `check_locking` says so before any model loads, instead
of failing after hours of encoding.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

LOCK_FILE = ".qzhou_eval.lock"
UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.EBADF, errno.ENOSYS}
_fallback_said: list[bool] = []  # the fallback is said once per process


def _flock_dir(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _record_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unsupported(folder: Path, flock_error: OSError, record_error: OSError) -> UserError:
    return UserError(
        f"file locks do not work in {folder} (flock: {flock_error.strerror}; fcntl: {record_error.strerror}); "
        "shard jobs could overwrite each other's records there. Mount it with -o flock (Lustre) or use a local "
        "--output_dir"
    )


def _say_fallback(folder: Path, exc: OSError) -> None:
    if not _fallback_said:
        _fallback_said.append(True)
        print(f"note: flock is not supported in {folder} ({exc.strerror}); using fcntl record locks", file=sys.stderr)


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` for the block."""
    try:
        fd = _flock_dir(folder)
    except OSError as exc:
        if exc.errno not in UNSUPPORTED:
            raise
        try:
            fd = _record_lock(folder / LOCK_FILE)
        except OSError as record_exc:
            if record_exc.errno not in UNSUPPORTED:
                raise
            raise _unsupported(folder, exc, record_exc) from None
        _say_fallback(folder, exc)
    try:
        yield
    finally:
        os.close(fd)


def check_locking(path: Path) -> None:
    """Before anything loads: can folders at `path` (or its nearest existing parent) be locked? Leaves nothing."""
    folder = Path(path).resolve()
    while not folder.exists():
        folder = folder.parent
    try:
        os.close(_flock_dir(folder))
        return
    except OSError as exc:
        if exc.errno not in UNSUPPORTED:
            raise UserError(f"cannot lock {folder}: {exc.strerror}") from None
        flock_error = exc
    fd, name = tempfile.mkstemp(prefix=".qzhou_eval.lockprobe.", dir=folder)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except OSError as exc:
        raise _unsupported(folder, flock_error, exc) from None
    finally:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
    _say_fallback(folder, flock_error)
