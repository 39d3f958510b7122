"""Persistent data-parallel workers: one process per device, the model loaded once per run.

The reference scripts re-spawn a process per GPU and pickle the whole model on every encode call.
Here each worker loads the checkpoint once, then takes batches of token ids from one shared queue
(whoever is free takes the next batch) and sends back embeddings; the parent keeps tokenization,
ordering and the result order. A batch is computed exactly as a single-process run computes it, so
the embeddings are the same.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from .embedder import EncodeStats

READY_TIMEOUT_S = 1800  # a 7B checkpoint from a slow disk can take minutes
POLL_S = 2.0


def _worker(device: str, spec: dict[str, Any], jobs: Any, results: Any) -> None:
    import torch

    from .embedder import LocalRunner
    from .loading import load_model, load_tokenizer, resolve_checkpoint

    try:
        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        ckpt = resolve_checkpoint(
            spec["path"], trust_remote_code=spec["trust_remote_code"], attention=spec["attention"]
        )
        tokenizer = load_tokenizer(ckpt, spec["padding_side"], spec["trust_remote_code"])
        model = load_model(ckpt, spec["dtype"], spec["attn_implementation"], device, spec["trust_remote_code"])
        runner = LocalRunner(
            model, tokenizer, pooling=spec["pooling"], normalize=spec["normalize"], truncate_dim=spec["truncate_dim"]
        )
        results.put(("ready", device, (runner.dim, sum(p.numel() for p in model.parameters()), type(model).__name__)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        results.put(("failed", device, f"{type(exc).__name__}: {exc}"))
        return
    while True:
        job = jobs.get()
        if job is None:
            return
        key, rows = job
        stats = EncodeStats()
        try:
            results.put(("ok", key, (runner.forward_fitting(rows, stats), stats.oom_splits)))
        except Exception as exc:  # noqa: BLE001 - the parent fails the task with this message
            results.put(("error", key, f"{device}: {type(exc).__name__}: {exc}"))


class WorkerPool:
    """The `runner` interface of the Embedder (`run`, `dim`) over several devices."""

    def __init__(self, devices: list[str], spec: dict[str, Any]) -> None:
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")  # CUDA cannot be forked
        self.devices = devices
        self.jobs = ctx.Queue()
        self.results = ctx.Queue()
        self.procs = [
            ctx.Process(target=_worker, args=(d, spec, self.jobs, self.results), daemon=True) for d in devices
        ]
        for p in self.procs:
            p.start()
        ready = []
        try:
            while len(ready) < len(devices):
                kind, device, payload = self._get(READY_TIMEOUT_S)
                if kind == "failed":
                    raise RuntimeError(f"worker on {device} could not load the model: {payload}")
                ready.append(payload)
        except BaseException:
            self.close()
            raise
        self.dim, self.n_parameters, self.model_class = ready[0]

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

    def run(self, batches: list[list[np.ndarray]], stats: EncodeStats) -> list[np.ndarray]:
        for key, rows in enumerate(batches):
            self.jobs.put((key, rows))
        out: list[np.ndarray | None] = [None] * len(batches)
        errors = []
        for _ in batches:
            kind, key, payload = self._get(READY_TIMEOUT_S)
            if kind == "ok":
                out[key], splits = payload
                stats.oom_splits += splits
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
