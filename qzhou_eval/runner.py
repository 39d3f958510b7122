"""Run a benchmark: check everything, write the manifest, load the model once, evaluate task by task.

`run(config)` is what the scripts and the tests call; it never reads argv. Checks that need no
weights (task names, paths, flags, instruction coverage) happen before the model loads.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from . import tasks as task_registry
from .config import EvalConfig
from .data import TaskDataMissing, use_local_data
from .embedder import Embedder
from .errors import UserError
from .instructions import load_table
from .loading import Checkpoint, load_model, load_tokenizer, resolve_checkpoint, resolve_max_length
from .manifest import MANIFEST_NAME, Manifest, device_name, git_hash, now, package_versions
from .mteb_adapter import MtebEncoder, model_meta
from .results import model_folder, write_model_meta, write_task_result

log = logging.getLogger("qzhou_eval")


@dataclass
class RunReport:
    folder: Any
    done: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> {split/subset: main_score}
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_embedder(config: EvalConfig, checkpoint: Checkpoint) -> tuple[Embedder, dict[str, Any]]:
    """Load tokenizer and model and wrap them; returns the values resolved on the way."""
    tokenizer = load_tokenizer(checkpoint, config.padding_side, config.trust_remote_code)
    max_length = resolve_max_length(config.max_length, checkpoint, tokenizer)
    model = load_model(checkpoint, config.dtype, config.attn_implementation, config.device, config.trust_remote_code)
    embedder = Embedder(
        model,
        tokenizer,
        pooling=config.pooling_mode,
        normalize=config.normalize,
        max_length=max_length,
        batch_size=config.batch_size,
        sort_by=config.sort_by,
    )
    resolved = {
        "max_length": max_length,
        "padding_side": tokenizer.padding_side,
        "model_class": type(model).__name__,
        "checkpoint_kind": checkpoint.kind,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "embed_dim": embedder.dim,
    }
    return embedder, resolved


def _scores(result: Any) -> dict[str, float]:
    return {
        f"{split}/{entry['hf_subset']}": float(entry["main_score"])
        for split, entries in result.scores.items()
        for entry in entries
    }


def run(config: EvalConfig) -> RunReport:
    table = load_table(config.benchmark)
    selected = task_registry.select(config.benchmark, config.tasks, table)
    missing_instr = [t for t in selected if t not in table.instructions]
    if missing_instr:
        raise UserError(f"no instruction for {', '.join(missing_instr)} in {table.path.name}")
    checkpoint = resolve_checkpoint(
        config.model_name_or_path, config.model_name, config.revision, config.trust_remote_code
    )
    folder = model_folder(config.output_dir, checkpoint.name, checkpoint.revision)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to --output_dir {config.output_dir}: {exc.strerror}") from None

    manifest = Manifest(
        folder / MANIFEST_NAME,
        {
            "harness": "qzhou-eval",
            "git_hash": git_hash(),
            "started": now(),
            "benchmark": config.benchmark,
            "config": config.to_dict(),
            "model": {
                "name": checkpoint.name,
                "revision": checkpoint.revision,
                "path": str(checkpoint.path),
                "source": checkpoint.source,
            },
            "instructions": {"file": table.path.name, "source": table.source, "template": table.template},
            "versions": package_versions(),
            "device_name": device_name(config.device),
        },
    )
    manifest.save()

    _say(f"loading {checkpoint.name} ({checkpoint.kind}) from {checkpoint.path} on {config.device} as {config.dtype}")
    embedder, resolved = build_embedder(config, checkpoint)
    manifest.data["resolved"] = resolved
    manifest.save()
    meta = model_meta(
        checkpoint.name,
        checkpoint.revision,
        resolved["embed_dim"],
        resolved["max_length"],
        resolved["n_parameters"],
        config.use_instruction,
    )
    write_model_meta(folder, meta)
    encoder = MtebEncoder(embedder, table, config.use_instruction, meta)

    report = RunReport(folder)
    for i, name in enumerate(selected, 1):
        _say(f"[{i}/{len(selected)}] {name}")
        entry: dict[str, Any] = {"prefixes": table.prefixes(name, config.use_instruction), "started": now()}
        start = time.perf_counter()
        try:
            task = task_registry.task_object(config.benchmark, name)
            entry["splits"] = list(task.eval_splits)
            entry["data_source"] = use_local_data(task, config.data_dir) if config.data_dir else "hub"
            result = _evaluate(task, encoder)
            write_task_result(folder, result)
            report.done[name] = _scores(result)
            entry.update(status="done", scores=report.done[name])
            _say(f"    {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in report.done[name].items()))
        except (TaskDataMissing, Exception) as exc:  # one bad task must not stop the suite
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            entry.update(status="failed", error=report.failed[name], traceback=traceback.format_exc())
            _say(f"    {name} FAILED: {report.failed[name]}")
        entry["wall_time_s"] = round(time.perf_counter() - start, 3)
        entry["inputs"] = encoder.stats.pop(name, None).to_dict() if name in encoder.stats else None
        manifest.record_task(name, entry)
    return report


def _evaluate(task: Any, encoder: MtebEncoder) -> Any:
    import mteb

    # A fresh encode_kwargs per task: mteb's evaluators write defaults into the dict they get.
    results = mteb.MTEB(tasks=[task]).run(
        encoder,
        output_folder=None,
        overwrite_results=True,
        raise_error=True,
        verbosity=0,
        encode_kwargs={"batch_size": encoder.embedder.batch_size},
    )
    return results[0]
