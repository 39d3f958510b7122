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
from .cache import flush_interval, open_cache
from .config import EvalConfig
from .data import use_local_data
from .errors import UserError
from .instructions import PromptRule, prompt_rule
from .loading import build_embedder, fetch_weights, prepare
from .manifest import MANIFEST_NAME, Manifest, device_name, git_hash, now, package_versions
from .mteb_adapter import MtebEncoder, model_meta
from .presets import get_preset
from .reference_batch import batch_size_for
from .results import model_folder, stage_task_result, write_model_meta
from .resume import conflict_message, fingerprint, plan, run_settings, task_fingerprint_settings
from .shard import shard_tasks
from .sizes import size_table, spec_size


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
        lines = [
            f"{'task':40s} {'status':8s} {'texts':>8s} {'cached':>8s} {'encoded':>8s} {'empty':>6s} "
            f"{'truncated':>9s} {'longest':>8s}"
        ]
        for task, stats in self.inputs.items():
            status = "done" if task in self.done else "failed"
            lines.append(
                f"{task:40s} {status:8s} {stats['texts']:8d} {stats.get('texts_from_cache', 0):8d} "
                f"{stats.get('texts_encoded', stats['texts']):8d} {stats['empty_replaced']:6d} "
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


def data_source(config: EvalConfig, spec: task_registry.BenchmarkTask) -> str:
    return str(Path(config.data_dir).resolve() / spec.dataset_path) if config.data_dir else "hub"


def run(config: EvalConfig) -> RunReport:
    """Check everything that needs no weights, plan the resume, then load once and evaluate task by task.

    Order matters: names, paths, devices, flags, the preset's recipe, the tokenizer-resolved values and the
    earlier results are all checked before any weight is downloaded or loaded, and before anything is written.
    """
    specs = task_registry.select_specs(config.benchmark, config.tasks)
    _check_writable(config.output_dir)
    if config.cache != "off":
        flush_interval()  # a bad QZHOU_EVAL_CACHE_FLUSH_S stops here, before anything loads
    config, checkpoint, tokenizer = prepare(config)
    rule = prompt_rule(config, checkpoint.path)
    prefixes = {spec.name: rule.prefixes(spec.name) for spec in specs}
    check_prefixes_fit(tokenizer, {n: max(p.values(), key=len) for n, p in prefixes.items()}, config.max_length)
    folder = model_folder(config.output_dir, checkpoint.name, checkpoint.revision)
    sizes = {spec.name: spec_size(spec, config.data_dir) for spec in specs}  # mteb's measured sizes
    costs = {name: size.cost for name, size in sizes.items()}
    selected = len(specs)
    if config.shard:
        k, n = config.shard
        mine = set(shard_tasks(costs, k, n))
        specs = [spec for spec in specs if spec.name in mine]
        _say(f"shard {k}/{n}: {len(specs)} of {selected} tasks")
    settings = run_settings(config, checkpoint.name, checkpoint.revision, checkpoint.content)
    task_settings = {
        spec.name: task_fingerprint_settings(settings, data_source(config, spec), prefixes[spec.name]) for spec in specs
    }
    todo = plan(folder, specs, task_settings, config.overwrite)
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
        _say(size_table({name: sizes[name] for name in todo.run}))
        _say(f"dry run: {len(todo.run)} to run, {len(todo.skip)} done, output {folder}")
        return report
    if not todo.run:
        mine = f"this shard's {len(specs)} of {selected}" if config.shard else f"all {selected}"
        _say(
            f"nothing to run: {mine} task(s) are done in {folder}" if specs else "nothing to run: no task in this shard"
        )
        return report

    checkpoint = fetch_weights(checkpoint)
    # the weights load before anything is written: a checkpoint that does not fit leaves no trace
    _say(f"loading {checkpoint.name} ({checkpoint.kind}) from {checkpoint.path} on {config.device} as {config.dtype}")
    embedder, found = build_embedder(config, checkpoint, tokenizer)
    try:
        _evaluate_all(config, checkpoint, rule, task_settings, specs, costs, embedder, found, todo.run, report)
    finally:
        embedder.close()
    return report


def _evaluate_all(
    config: EvalConfig,
    checkpoint: Any,
    rule: PromptRule,
    task_settings: dict[str, dict[str, Any]],
    specs: list[task_registry.BenchmarkTask],
    costs: dict[str, float],
    embedder: Any,
    found: dict[str, Any],
    names: list[str],
    report: RunReport,
) -> None:
    """Manifest, model_meta.json, then each task in turn."""
    folder = report.folder
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(
        folder / MANIFEST_NAME,
        {
            "harness": "qzhou-eval",
            "git_hash": git_hash(),
            "started": now(),
            "benchmark": config.benchmark,
            "config": config.to_dict(),
            "settings": run_settings(config, checkpoint.name, checkpoint.revision, checkpoint.content),
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
            "device_name": device_name(config.all_devices[0]),
        },
    )
    manifest.data["resolved"] = {"max_length": config.max_length, "padding_side": config.padding_side, **found}
    manifest.save()
    meta = model_meta(
        checkpoint.name,
        checkpoint.revision,
        found["embed_dim"],
        config.max_length,
        found["n_parameters"],
        config.use_instruction,
    )
    write_model_meta(folder, meta)
    encoder = MtebEncoder(embedder, rule, meta)
    encoder.cache = open_cache(config, {"model": checkpoint.name, "revision": checkpoint.content, **found})
    if encoder.cache is not None:
        manifest.data["cache"] = {"mode": config.cache, **encoder.cache.describe()}
        manifest.save()
    by_name = {spec.name: spec for spec in specs}
    Suite(config, rule, task_settings, by_name, costs, encoder, manifest, report).run_all(names)


@dataclass
class Suite:
    """What every task of one run shares: settings, sources, the encoder, the manifest, the report."""

    config: EvalConfig
    rule: PromptRule
    settings: dict[str, dict[str, Any]]  # task -> everything its result depends on (resume.task_fingerprint_settings)
    specs: dict[str, task_registry.BenchmarkTask]
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
        task_settings = self.settings[name]
        entry: dict[str, Any] = {
            "prefixes": self.rule.prefixes(name),
            "prefix_sources": self.rule.sources(name),  # table / task_metadata / fixed / model_prompts / ... / none
            "started": now(),
            "settings": task_settings,
            "fingerprint": fingerprint(task_settings),
            "data_source": task_settings["data_source"],
        }
        start = time.perf_counter()
        staged = None
        try:
            task = task_registry.task_object(self.specs[name])
            entry["splits"] = list(task.eval_splits)
            if config.data_dir:
                use_local_data(task, config.data_dir)
            result = _evaluate(task, self.encoder, batch_size_for(config, name))
            staged = stage_task_result(self.manifest.path.parent, result)
            report.done[name] = _scores(result)
            entry.update(status="done", scores=report.done[name], result_sha256=staged.sha256)
            _say(f"    {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in report.done[name].items()))
        except Exception as exc:  # one bad task must not stop the suite; KeyboardInterrupt still does
            if staged is not None:
                staged.discard()
                staged = None
            report.done.pop(name, None)
            report.failed[name] = f"{type(exc).__name__}: {exc}"
            entry.update(status="failed", error=report.failed[name], traceback=traceback.format_exc())
            _say(f"    {name} FAILED: {report.failed[name]}")
        entry["wall_time_s"] = round(time.perf_counter() - start, 3)
        stats = self.encoder.stats.pop(name, None)
        entry["inputs"] = stats.to_dict() if stats else None
        if stats:
            report.inputs[name] = stats.to_dict()
        # the manifest first, then the result file: a kill in between leaves a file the manifest does not
        # vouch for (its sha256 differs, or it is missing), which the next run redoes instead of refusing
        self.manifest.record_task(name, entry)
        if staged is not None:
            staged.publish()
            if self.encoder.cache is not None and config.cache == "task":
                self.encoder.cache.drop_task(name)  # the result is safe: its vectors are not needed again
        return stats.texts if stats else 0


def _evaluate(task: Any, encoder: MtebEncoder, batch_size: int) -> Any:
    import mteb

    # A fresh encode_kwargs per task: mteb's evaluators write defaults into the dict they get.
    results = mteb.MTEB(tasks=[task]).run(
        encoder,
        output_folder=None,
        overwrite_results=True,
        raise_error=True,
        verbosity=0,
        encode_kwargs={"batch_size": batch_size},  # reference_batch.batch_size_for
    )
    return results[0]
