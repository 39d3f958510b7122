"""Embedding cache: vectors on disk, keyed by the settings that shape an embedding and the exact model input.

Why: a 7B model needs GPU hours per suite. With the cache a killed run loses at most the last flush
interval of encoding (vectors are written during a long encode call, not only at its end), and a rerun
that changes only the instruction re-encodes only the texts whose model input changed (the queries of
a retrieval task), because the instruction is part of the model input, not of the settings key.

Layout, one folder per settings key and task; segments are append-only and never rewritten:

    <cache_dir>/<key>/settings.json                what the key stands for (read back only by --allow_code_change)
    <cache_dir>/<key>/<task>/<segment>.npy         float32 (n, dim), exactly as the embedder returned them
    <cache_dir>/<key>/<task>/<segment>.idx         n lines: sha256 (hex) of each row's model input

Each file is written under a temp name and renamed; the `.idx` goes last, so a segment counts only once
both files exist and agree (n rows, float32, 2-D). A torn or foreign file is ignored, never trusted.
Segment names are unique per process (pid, time, random), so shard jobs can share one cache folder.
No pickle anywhere: `.npy` is loaded with `allow_pickle=False`, the index is plain text.

The settings a key stands for come from each task's plan (`evaluate/plan.py`): the same object that the
manifest records and the resume fingerprint hashes, so the cache cannot key vectors by one batch size while
the encoder used another. They include the harness's embedding code identity: after an upgrade that changes
how vectors are computed, old vectors are not served, unless `--allow_code_change` asks to read the folders
whose settings differ from this run's in the code identity alone (read only; new vectors go to this run's key).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..files import write_atomic, write_json_atomic
from ..model.embedder import EncodeStats
from ..provenance import CODE_SETTING

FLUSH_ENV = "QZHOU_EVAL_CACHE_FLUSH_S"
DEFAULT_FLUSH_S = 60.0
CACHE_FOLDER = "embedding_cache"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:20]


def input_digest(model_input: str) -> str:
    """sha256 of the exact string the tokenizer gets (lone surrogates kept, not dropped)."""
    return hashlib.sha256(model_input.encode("utf-8", "surrogatepass")).hexdigest()


def flush_interval() -> float:
    """Seconds between flushes inside one encode call (QZHOU_EVAL_CACHE_FLUSH_S, default 60; 0 = every batch)."""
    raw = os.environ.get(FLUSH_ENV)
    if raw is None:
        return DEFAULT_FLUSH_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UserError(f"{FLUSH_ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


KEEP_SUFFIX = "-keep"  # a segment written by a --cache keep run
MMAP_ABOVE = 64 << 20  # segments larger than this are memory-mapped, smaller ones read whole


def default_cache_dir(output_dir: str) -> Path:
    return Path(output_dir) / CACHE_FOLDER


class TaskStore:
    """The committed segments of one task folder: an index digest -> (segment, row) over memory-mapped vectors.

    Only segments this store did not write itself are served: a run computes exactly what it would compute
    without a cache (a text mteb passes twice is encoded twice), and `texts_from_cache` counts vectors made
    by earlier runs (a killed one, or the run an ablation starts from), never the run's own.
    """

    def __init__(self, folder: Path, keep: bool = False, also_read: tuple[Path, ...] = ()) -> None:
        self.folder = folder
        self.also_read = also_read  # task folders of compatible keys (--allow_code_change), read only
        self.keep = keep  # segments of a --cache keep run are named so and outlive --cache task runs
        self.write_error: str | None = None  # after a failed write (disk full, read-only): no more writes
        self.index: dict[str, tuple[int, int]] = {}
        self.segments: list[np.ndarray] = []
        self.seen: set[str] = set()
        self.ignored: list[str] = []  # segment files that could not be used (torn, foreign)
        self.refresh()

    def refresh(self) -> None:
        """Pick up segments written since the last look by other processes (a shard job beside this one)."""
        for folder in (self.folder, *self.also_read):
            if not folder.is_dir():
                continue
            for idx in sorted(folder.glob("*.idx")):
                key = idx.name if folder == self.folder else str(idx)
                if key not in self.seen:
                    self.seen.add(key)
                    self._load(idx)

    def _load(self, idx: Path) -> None:
        npy = idx.with_suffix(".npy")
        try:
            digests = idx.read_text(encoding="ascii").split()
            # small segments are read whole (an open memory map costs a file descriptor each); large ones mapped
            mmap = "r" if npy.stat().st_size > MMAP_ABOVE else None
            vectors = np.load(npy, mmap_mode=mmap, allow_pickle=False)
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                raise  # out of resources is not a torn segment: never serve a partial view silently
            self.ignored.append(idx.stem)
            return
        except (ValueError, UnicodeDecodeError, EOFError):
            self.ignored.append(idx.stem)
            return
        ok = vectors.dtype == np.float32 and vectors.ndim == 2 and len(vectors) == len(digests)
        if not ok or any(len(d) != 64 for d in digests):
            self.ignored.append(idx.stem)
            return
        self._add(digests, vectors)

    def _add(self, digests: list[str], vectors: np.ndarray) -> None:
        segment = len(self.segments)
        self.segments.append(vectors)
        for row, digest in enumerate(digests):
            self.index.setdefault(digest, (segment, row))

    def lookup(self, digests: list[str], dim: int) -> dict[int, np.ndarray]:
        """Position -> cached vector, for the digests found (vectors of another width are not matches)."""
        found = {}
        for pos, digest in enumerate(digests):
            hit = self.index.get(digest)
            if hit is not None and self.segments[hit[0]].shape[1] == dim:
                found[pos] = self.segments[hit[0]][hit[1]]
        return found

    def append(self, digests: list[str], vectors: np.ndarray) -> None:
        """Write one segment (vectors first, index last, each under a temp name, then renamed).

        A failed write (disk full, quota, a read-only shared cache) is said once and ends writing for this
        task; the vectors already computed still go to mteb: a cache must never fail an evaluation."""
        if self.write_error is not None:
            return
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}" + (KEEP_SUFFIX if self.keep else "")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.folder / f"{name}.npy", lambda fh: np.save(fh, vectors, allow_pickle=False))
            idx_text = "".join(d + "\n" for d in digests).encode()
            write_atomic(self.folder / f"{name}.idx", lambda fh: fh.write(idx_text))
        except OSError as exc:
            self.write_error = f"{type(exc).__name__}: {exc}"
            try:
                (self.folder / f"{name}.npy").unlink(missing_ok=True)  # no index points to it: harmless if left
            except OSError:
                pass
            print(
                f"warning: embedding cache write failed ({self.write_error}); this task goes on without saving vectors",
                file=sys.stderr,
            )
            return
        self.seen.add(f"{name}.idx")  # not served back to this run: see `TaskStore`


class _Pending:
    """Finished batches of one encode call, written as a segment at least every `flush_s` seconds."""

    def __init__(self, store: TaskStore, digests: list[str], flush_s: float) -> None:
        self.store, self.digests, self.flush_s = store, digests, flush_s
        self.rows: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self.last = time.monotonic()

    def add(self, positions: np.ndarray, vectors: np.ndarray) -> None:
        finite = np.isfinite(vectors).all(axis=1)  # a NaN row must never be served again
        self.rows.append(np.asarray(positions)[finite])
        self.vectors.append(vectors[finite])
        if time.monotonic() - self.last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=np.int64)
        if len(rows):
            self.store.append([self.digests[i] for i in rows], np.concatenate(self.vectors))
        self.rows, self.vectors, self.last = [], [], time.monotonic()


class EmbeddingCache:
    """The vectors of one settings key: look up before encoding, save while encoding, drop per task."""

    def __init__(
        self,
        root: str | Path,
        settings: dict[str, Any],
        flush_s: float | None = None,
        keep: bool = False,
        remove_root: bool = False,
        allow_code_change: bool = False,
    ) -> None:
        self.root = Path(root)
        self.keep = keep
        self.remove_root = remove_root  # the default <output_dir>/embedding_cache, never a --cache_dir
        self.settings = settings
        self.key = settings_key(settings)
        self.folder = self.root / self.key
        self.flush_s = flush_interval() if flush_s is None else flush_s
        self.stores: dict[str, TaskStore] = {}
        self.compatible = self._same_but_code() if allow_code_change else []

    def _same_but_code(self) -> list[Path]:
        """Key folders whose recorded settings equal this key's except the harness code identity."""
        mine = {k: v for k, v in self.settings.items() if k != CODE_SETTING}
        found = []
        for file in sorted(self.root.glob("*/settings.json")) if self.root.is_dir() else ():
            if file.parent == self.folder:
                continue
            try:
                theirs = json.loads(file.read_text(encoding="utf-8"))["settings"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if isinstance(theirs, dict) and {k: v for k, v in theirs.items() if k != CODE_SETTING} == mine:
                found.append(file.parent)
        return found

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dir": str(self.root.resolve()), "key": self.key, "flush_s": self.flush_s}
        if self.compatible:
            out["also_read_keys"] = [p.name for p in self.compatible]  # --allow_code_change
        return out

    def task_folder(self, task: str) -> Path:
        return self.folder / (_SAFE.sub("_", task).lstrip(".") or "_")

    def store(self, task: str) -> TaskStore:
        if task not in self.stores:
            if not (self.folder / "settings.json").exists():
                write_json_atomic(self.folder / "settings.json", {"key": self.key, "settings": self.settings})
            others = tuple(folder / self.task_folder(task).name for folder in self.compatible)
            self.stores[task] = TaskStore(self.task_folder(task), keep=self.keep, also_read=others)
        return self.stores[task]

    def encode(
        self, embedder: Any, task: str, texts: list[str], prefix: str, stats: EncodeStats, **kwargs: Any
    ) -> np.ndarray:
        """The embedder's `encode`, with every vector already cached taken from disk.

        Only the missing texts go to the embedder, in one call, in their order; the output is the same
        float32 array in input order. Counted in `stats`: texts_from_cache + texts_encoded = texts.
        `kwargs` go to the embedder (the plan's batch size, which the key's settings already hold; `where`).
        Under sort_by="reference" a call's batches depend on all of its texts, so a call is served from the
        cache only when every text is cached, else encoded whole (and saved).
        """
        store = self.store(task)
        store.refresh()
        inputs, _ = embedder.model_inputs(texts, prefix, kwargs.get("strip_texts", False))
        keyed = {}
        if getattr(embedder, "prompt_length", None) is not None and prefix:
            # a Pooling that leaves the prompt out: the vector depends on where the prompt ends, not only on
            # the whole string (model/st_runner.py)
            keyed["prompt_tokens"] = embedder.prompt_length(prefix)
        context = json.dumps(keyed, sort_keys=True) + "\0" if keyed else ""
        digests = [input_digest(context + s) for s in inputs]
        found = store.lookup(digests, embedder.dim)
        if getattr(embedder, "sort_by", None) == "reference" and len(found) < len(texts):
            found = {}
        out = np.empty((len(texts), embedder.dim), dtype=np.float32)
        if found:
            hits = sorted(found)
            out[hits] = np.stack([found[i] for i in hits])
            stats.merge(
                self._cached_stats(embedder, [texts[i] for i in hits], prefix, kwargs.get("strip_texts", False))
            )
        missing = [i for i in range(len(texts)) if i not in found]
        if missing:
            pending = _Pending(store, [digests[i] for i in missing], self.flush_s)
            try:
                out[missing] = embedder.encode(
                    [texts[i] for i in missing], prefix, stats=stats, on_batch=pending.add, **kwargs
                )
            finally:
                pending.flush()  # what finished is kept, also when the call failed or was interrupted
        return out

    @staticmethod
    def _cached_stats(embedder: Any, texts: list[str], prefix: str, strip_texts: bool = False) -> EncodeStats:
        """Input statistics of cached texts, as if encoded now: tokenizing is cheap next to the model."""
        inputs, empty = embedder.model_inputs(texts, prefix, strip_texts)
        ids, truncated = embedder.tokenize(inputs)
        return EncodeStats(
            texts=len(texts),
            texts_from_cache=len(texts),
            empty_replaced=empty,
            truncated=truncated,
            longest_tokens=max(len(r) for r in ids),
        )

    def drop_task(self, task: str) -> None:
        """Delete a task's vectors once its result file is written (--cache task): the segments of task-mode
        runs (this one's, and a killed one's it resumed from), never those a --cache keep run kept. Folders
        left empty go too, except a --cache_dir the user named."""
        self.stores.pop(task, None)
        folder = self.task_folder(task)
        for idx in folder.glob("*.idx") if folder.is_dir() else ():
            if not idx.stem.endswith(KEEP_SUFFIX):
                idx.unlink(missing_ok=True)  # the index first: a half-deleted segment is then unreachable
                idx.with_suffix(".npy").unlink(missing_ok=True)
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            tmp.unlink(missing_ok=True)  # torn writes of a killed run
        for empty in (folder, self.folder):
            if empty.is_dir() and [p.name for p in empty.iterdir()] in ([], ["settings.json"]):
                shutil.rmtree(empty, ignore_errors=True)
        if self.remove_root:
            try:
                self.root.rmdir()
            except OSError:
                pass  # not empty: another run or shard is using it
