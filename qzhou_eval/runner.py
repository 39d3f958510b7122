"""Run a benchmark: check everything, plan the resume, load the model once, evaluate task by task.

`run(config)` is what the scripts and the tests call; it never reads argv. Everything that needs no
weights (task names, paths, flags, earlier results and their settings) is checked before the model
loads, and nothing is written before those checks pass. One failing task is recorded and the suite
goes on; a crash or kill loses at most the task in flight, since every file is written atomically.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import tasks as task_registry
from .config import EvalConfig
from .data import use_local_data
from .embedder import Embedder
from .errors import UserError
from .instructions import PromptRule, load_table, make_rule
from .loading import Checkpoint, load_model, load_tokenizer, resolve_checkpoint, resolve_max_length
from .manifest import MANIFEST_NAME, Manifest, device_name, git_hash, now, package_versions
from .mteb_adapter import MtebEncoder, model_meta
from .presets import get_preset, resolve_values
from .results import model_folder, write_model_meta, write_task_result
from .resume import conflict_message, fingerprint, plan, run_settings
from .shard import shard_tasks, task_cost


@dataclass
class RunReport:
    folder: Path
    done: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> {split/subset: main_score}
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def table(self) -> str:
        """done / skipped / failed, with the input hygiene numbers of the tasks run now."""
        lines = [f"{'task':40s} {'status':8s} {'texts':>8s} {'empty':>6s} {'truncated':>9s} {'longest':>8s}"]
        for task, stats in self.inputs.items():
            status = "done" if task in self.done else "failed"
            lines.append(
                f"{task:40s} {status:8s} {stats['texts']:8d} {stats['empty_replaced']:6d} "
                f"{stats['truncated']:9d} {stats['longest_tokens']:8d}"
            )
        lines += [f"{task:40s} failed   {msg}" for task, msg in self.failed.items() if task not in self.inputs]
        lines += [f"{task:40s} skipped  (done earlier, same settings)" for task in self.skipped]
        lines.append(f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed")
        return "\n".join(lines)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_prefixes_fit(tokenizer: Any, prefixes: dict[str, str], max_length: int) -> None:
    """A prefix as long as max_length would truncate every text away: all embeddings equal."""
    for task, prefix in prefixes.items():
        n = len(tokenizer(prefix)["input_ids"]) if prefix else 0
        if n >= max_length:
            raise UserError(
                f"--max_length {max_length} leaves no room for text: the instruction prefix of {task} "
                f"alone is {n} tokens"
            )


def build_embedder(
    config: EvalConfig, checkpoint: Checkpoint, prefixes: dict[str, str] | None = None
) -> tuple[Embedder, dict[str, Any]]:
    """Load tokenizer and model (here, or once per device in worker processes) and wrap them.

    `prefixes` (task or label -> prefix) are checked against max_length before the weights load.
    Returns the embedder and the values resolved on the way, for the manifest.
    """
    tokenizer = load_tokenizer(checkpoint, config.padding_side, config.trust_remote_code)
    max_length = resolve_max_length(config.max_length, checkpoint, tokenizer)
    check_prefixes_fit(tokenizer, prefixes or {}, max_length)
    if config.batch_tokens is not None and config.batch_tokens < max_length:
        raise UserError(
            f"--batch_tokens {config.batch_tokens} is below --max_length {max_length}: a long text cannot fit"
        )
    devices = list(config.devices) or [config.device]
    runner = None
    if len(devices) > 1:
        from .workers import WorkerPool

        threads = max(1, (os.cpu_count() or 1) // len(devices)) if all(d == "cpu" for d in devices) else None
        runner = WorkerPool(
            devices,
            {
                "path": str(checkpoint.path),
                "trust_remote_code": config.trust_remote_code,
                "padding_side": tokenizer.padding_side,
                "dtype": config.dtype,
                "attn_implementation": config.attn_implementation,
                "pooling": config.pooling_mode,
                "normalize": config.normalize,
                "truncate_dim": config.truncate_dim,
                "attention": config.attention,
                "threads": threads,
            },
        )
        model, n_parameters, model_class = None, runner.n_parameters, runner.model_class
    else:
        model = load_model(checkpoint, config.dtype, config.attn_implementation, devices[0], config.trust_remote_code)
        n_parameters, model_class = sum(p.numel() for p in model.parameters()), type(model).__name__
    embedder = Embedder(
        model,
        tokenizer,
        pooling=config.pooling_mode,
        normalize=config.normalize,
        max_length=max_length,
        batch_size=config.batch_size,
        batch_tokens=config.batch_tokens,
        max_padding=config.max_padding,
        sort_by=config.sort_by,
        truncate_dim=config.truncate_dim,
        append_eos=config.append_eos,
        runner=runner,
    )
    resolved = {
        "max_length": max_length,
        "padding_side": tokenizer.padding_side,
        "model_class": model_class,
        "checkpoint_kind": checkpoint.kind,
        "n_parameters": n_parameters,
        "embed_dim": embedder.dim,
        "devices": devices,
    }
    return embedder, resolved


def _scores(result: Any) -> dict[str, float]:
    return {
        f"{split}/{entry['hf_subset']}": float(entry["main_score"])
        for split, entries in result.scores.items()
        for entry in entries
    }


def _check_writable(output_dir: str) -> None:
    """The output folder (or its nearest existing parent) must be a writable directory."""
    path = Path(output_dir).resolve()
    while not path.exists():
        path = path.parent
    if not path.is_dir():
        raise UserError(f"--output_dir is not a directory: {output_dir} ({path} is a file)")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"--output_dir is not writable: {output_dir}")


def prompt_rule(config: EvalConfig, table: Any, checkpoint_path: Path) -> PromptRule:
    """The config's preset rule over the benchmark's table (with the model's own prompts if it has any)."""
    preset = get_preset(config.preset)
    _, model_prompts = resolve_values(preset, checkpoint_path)
    return make_rule(table, preset.prompt, config.use_instruction, config.instruction, model_prompts)


def data_source(config: EvalConfig, spec: task_registry.BenchmarkTask) -> str:
    return str(Path(config.data_dir).resolve() / spec.dataset_path) if config.data_dir else "hub"


def run(config: EvalConfig) -> RunReport:
    table = load_table(config.benchmark)
    selected = task_registry.select(config.benchmark, config.tasks, table)
    checkpoint = resolve_checkpoint(
        config.model_name_or_path, config.model_name, config.revision, config.trust_remote_code, config.attention
    )
    rule = prompt_rule(config, table, checkpoint.path)
    _check_writable(config.output_dir)
    folder = model_folder(config.output_dir, checkpoint.name, checkpoint.revision)
    specs = [task_registry.benchmark_tasks(config.benchmark)[name] for name in selected]
    costs = {spec.name: task_cost(spec.name, spec.dataset_path, config.data_dir) for spec in specs}
    if config.shard:
        k, n = config.shard
        mine = set(shard_tasks(costs, k, n))
        specs = [spec for spec in specs if spec.name in mine]
        _say(f"shard {k}/{n}: {len(specs)} of {len(selected)} tasks")
    sources = {spec.name: data_source(config, spec) for spec in specs}
    settings = run_settings(config, checkpoint.name, checkpoint.revision, rule)
    todo = plan(folder, specs, settings, sources, config.overwrite)
    if todo.conflicts:
        raise conflict_message(folder, todo.conflicts)

    report = RunReport(folder, skipped=list(todo.skip))
    for name in todo.skip:
        _say(f"skip {name} (done)")
    for name, why in todo.redo.items():
        _say(f"redo {name}: its result file cannot be used ({why})")
    if config.dry_run:
        for name in todo.run:
            print(name, flush=True)
        _say(f"dry run: {len(todo.run)} to run, {len(todo.skip)} done, output {folder}")
        return report
    if not todo.run:
        _say(f"nothing to run: all {len(selected)} task(s) are done in {folder}")
        return report

    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        folder / MANIFEST_NAME,
        {
            "harness": "qzhou-eval",
            "git_hash": git_hash(),
            "started": now(),
            "benchmark": config.benchmark,
            "config": config.to_dict(),
            "settings": settings,
            "model": {
                "name": checkpoint.name,
                "revision": checkpoint.revision,
                "path": str(checkpoint.path),
                "source": checkpoint.source,
            },
            "preset": {
                "name": config.preset,
                "reason": config.preset_reason,
                "source": get_preset(config.preset).source,
            },
            "instructions": rule.describe(),
            "versions": package_versions(),
            "device_name": device_name(config.device),
        },
    )
    manifest.save()

    _say(f"loading {checkpoint.name} ({checkpoint.kind}) from {checkpoint.path} on {config.device} as {config.dtype}")
    longest = {name: max(rule.prefixes(name).values(), key=len) for name in todo.run}
    embedder, resolved = build_embedder(config, checkpoint, longest)
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
    encoder = MtebEncoder(embedder, rule, meta)
    suite = Suite(config, rule, settings, sources, costs, encoder, manifest, report)
    try:
        suite.run_all(todo.run)
    finally:
        embedder.close()
    return report


@dataclass
class Suite:
    """What every task of one run shares: settings, sources, the encoder, the manifest, the report."""

    config: EvalConfig
    rule: PromptRule
    settings: dict[str, Any]
    sources: dict[str, str]
    costs: dict[str, float]
    encoder: MtebEncoder
    manifest: Manifest
    report: RunReport

    def run_all(self, names: list[str]) -> None:
        """Evaluate each task in turn under one progress bar weighted by estimated cost."""
        from tqdm import tqdm

        texts_done, started = 0, time.perf_counter()
        bar_format = "{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
        total = sum(self.costs[n] for n in names)
        with tqdm(total=total, file=sys.stderr, dynamic_ncols=True, bar_format=bar_format) as bar:
            for i, name in enumerate(names, 1):
                bar.set_description_str(f"tasks {i - 1}/{len(names)}")
                _say(f"[{i}/{len(names)}] {name}")
                texts_done += self.run_one(name)
                rate = texts_done / max(time.perf_counter() - started, 1e-9)
                bar.set_description_str(f"tasks {i}/{len(names)}")
                bar.set_postfix_str(f"{rate:.0f} texts/s")
                bar.update(self.costs[name])

    def run_one(self, name: str) -> int:
        """Evaluate one task, record it in the manifest whatever happens; returns texts encoded."""
        config, report = self.config, self.report
        task_settings = {**self.settings, "data_source": self.sources[name]}
        entry: dict[str, Any] = {
            "prefixes": self.rule.prefixes(name),
            "started": now(),
            "settings": task_settings,
            "fingerprint": fingerprint(task_settings),
            "data_source": self.sources[name],
        }
        start = time.perf_counter()
        try:
            task = task_registry.task_object(config.benchmark, name)
            entry["splits"] = list(task.eval_splits)
            if config.data_dir:
                use_local_data(task, config.data_dir)
            result = _evaluate(task, self.encoder)
            write_task_result(self.manifest.path.parent, result)
            report.done[name] = _scores(result)
            entry.update(status="done", scores=report.done[name])
            _say(f"    {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in report.done[name].items()))
        except Exception as exc:  # one bad task must not stop the suite; KeyboardInterrupt still does
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            entry.update(status="failed", error=report.failed[name], traceback=traceback.format_exc())
            _say(f"    {name} FAILED: {report.failed[name]}")
        entry["wall_time_s"] = round(time.perf_counter() - start, 3)
        stats = self.encoder.stats.pop(name, None)
        entry["inputs"] = stats.to_dict() if stats else None
        if stats:
            report.inputs[name] = stats.to_dict()
        self.manifest.record_task(name, entry)
        return stats.texts if stats else 0


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
