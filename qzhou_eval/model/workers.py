"""Persistent data-parallel workers: one process per device, the model loaded once per run.

The reference scripts re-spawn a process per GPU and pickle the whole model on every encode call.
Here each worker loads the checkpoint once, then takes batches of token ids from one shared queue
(whoever is free takes the next batch) and sends back embeddings; the parent keeps tokenization,
ordering and the result order. A batch is computed exactly as a single-process run computes it, so
the embeddings are the same.
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UserError
from .embedder import EncodeStats

READY_TIMEOUT_S = 1800  # a 7B checkpoint from a slow disk can take minutes
POLL_S = 2.0


def _worker(device: str, factory: Callable[[str], Any], threads: int | None, jobs: Any, results: Any) -> None:
    """One device: the runner factory the single-process path uses too (`build.RunnerFactory`), so a worker
    builds exactly what one process would, from the same recipe, tokenizer loader included."""
    import torch

    try:
        if threads:
            torch.set_num_threads(threads)
        runner = factory(device)
        model = runner.model
        results.put(("ready", device, (runner.dim, sum(p.numel() for p in model.parameters()), type(model).__name__)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        # a user mistake (weights that do not fit, ...) stays one `error:` line
        kind = "refused" if isinstance(exc, UserError) else "failed"
        results.put((kind, device, str(exc) if kind == "refused" else f"{type(exc).__name__}: {exc}"))
        return
    while True:
        job = jobs.get()
        if job is None:
            return
        key, rows, extra = job  # extra: per-call features (a prompt length, st_runner.py)
        stats = EncodeStats()
        try:
            results.put(("ok", key, (runner.run([rows], stats, **extra)[0], stats.oom_splits)))
        except Exception as exc:  # noqa: BLE001 - the parent fails the task with this message
            results.put(("error", key, f"{device}: {type(exc).__name__}: {exc}"))


class WorkerPool:
    """The `runner` interface of the Embedder (`run`, `dim`) over several devices.

    It is handed a picklable runner factory (`factory(device) -> runner`), never a loader to import."""

    def __init__(self, devices: list[str], factory: Callable[[str], Any], threads: int | None = None) -> None:
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        self.devices = devices
        self.jobs = ctx.Queue()
        self.results = ctx.Queue()
        self.procs = [
            ctx.Process(target=_worker, args=(d, factory, threads, self.jobs, self.results), daemon=True)
            for d in devices
        ]
        for p in self.procs:
            p.start()
        ready = []
        try:
            while len(ready) < len(devices):
                kind, device, payload = self._get(READY_TIMEOUT_S)
                if kind == "refused":
                    raise UserError(payload)
                if kind == "failed":
                    raise RuntimeError(f"worker on {device} could not load the model: {payload}")
                ready.append(payload)
        except BaseException:
            self.close()
            raise
        self.dim, self.n_parameters, self.model_class = ready[0]
        self.calls = itertools.count()  # every run() gets its own id: results are keyed (call, job)

    def _get(self, timeout: float) -> tuple[str, Any, Any]:
        waited = 0.0
        while True:
            try:
                return self.results.get(timeout=POLL_S)
            except queue.Empty:
                waited += POLL_S
                dead = [d for d, p in zip(self.devices, self.procs, strict=True) if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"worker process on {', '.join(dead)} died") from None
                if waited >= timeout:
                    raise TimeoutError("workers did not answer") from None

    def run(
        self,
        batches: list[list[np.ndarray]],
        stats: EncodeStats,
        on_result: Callable[[int, np.ndarray], None] | None = None,
        **extra: Any,
    ) -> list[np.ndarray]:
        """Queue every batch, collect results as they arrive; `on_result(job, embeddings)` hears of each.
        `extra` (e.g. `prompt_length`) goes with every job to the workers' runners.

        Jobs and results carry (call id, job id): a result left over from an earlier call that failed
        half-way (its jobs still queued or running) is dropped, never taken as this call's.
        """
        call = next(self.calls)
        for job, rows in enumerate(batches):
            self.jobs.put(((call, job), rows, extra))
        out: list[np.ndarray | None] = [None] * len(batches)
        errors = []
        pending = len(batches)
        while pending:
            kind, key, payload = self._get(READY_TIMEOUT_S)
            if not isinstance(key, tuple) or key[0] != call:
                continue  # a late result of an earlier call
            pending -= 1
            if kind == "ok":
                out[key[1]], splits = payload
                stats.oom_splits += splits
                if on_result is not None:
                    on_result(key[1], out[key[1]])
            else:
                errors.append(payload)
        if errors:
            raise RuntimeError(errors[0])
        return out  # type: ignore[return-value]

    def close(self) -> None:
        for _ in self.procs:
            self.jobs.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
