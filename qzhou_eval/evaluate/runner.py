"""Run a benchmark: check everything, plan each task, load the model once, execute the plans one by one.

`run(config)` is what the scripts and the tests call; it never reads argv. The path of a task:

    select_specs (names, splits, subsets) -> prepare (the Recipe) -> build_plan (per task) -> sort_tasks (resume)
    -> build_embedder (weights, once) -> per task: manifest entry from the plan, mteb evaluates with the
    MtebEncoder executing the plan, result staged, manifest records it, result published, cache dropped.

Everything that needs no weights (task names, paths, devices, flags, file locks, the recipe, the plans and the
earlier results) is checked before the model loads, and nothing is written before those checks pass. One
failing task is recorded and the suite goes on; a crash or kill loses at most the task in flight, since every
file is written atomically.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import EvalConfig
from ..errors import UserError
from ..files import StagedFile
from ..model.build import build_embedder
from ..provenance import device_name, git_hash, now, package_versions
from ..recipe.benchmarks import select_specs, task_object
from ..recipe.checkpoint import fetch_weights
from ..recipe.resolve import Recipe, prepare
from ..store.cache import EmbeddingCache, default_cache_dir, flush_interval
from ..store.lock import check_locking
from ..store.manifest import MANIFEST_NAME, Manifest, annotate_tasks
from ..store.records import stage_records, verify
from ..store.results import model_folder, stage_task_result, write_model_meta
from ..store.resume import conflict_message, sort_tasks
from .adapter import MtebEncoder, model_meta
from .capture import TaskCapture
from .data import HUB, local_datasets_cache, use_local_data
from .plan import TaskPlan, all_prefixes, build_plan
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


def run(config: EvalConfig) -> RunReport:
    """Check everything that needs no weights, plan every task and the resume, then load once and execute."""
    specs = select_specs(config.benchmark, config.tasks)
    _check_writable(config.output_dir)
    check_locking(Path(config.output_dir))  # shard jobs share folders: a file system without locks says so now
    if config.cache != "off":
        flush_interval()  # a bad QZHOU_EVAL_CACHE_FLUSH_S stops here, before anything loads
    recipe = prepare(config)
    config = recipe.config
    recipe.check_prefixes_fit(all_prefixes(recipe, specs))
    folder = model_folder(config.output_dir, recipe.checkpoint.name, recipe.checkpoint.revision)
    sizes = {spec.name: spec_size(spec, config.data_dir) for spec in specs}  # mteb's measured sizes
    costs = {name: size.cost for name, size in sizes.items()}
    selected = len(specs)
    if config.shard:
        k, n = config.shard
        mine = set(shard_tasks(costs, k, n))
        specs = [spec for spec in specs if spec.name in mine]
        _say(f"shard {k}/{n}: {len(specs)} of {selected} tasks")
    plans = {spec.name: build_plan(recipe, spec, config.data_dir) for spec in specs}
    todo = sort_tasks(  # a manifest that cannot be read stops the run here, before the model loads
        folder, specs, {n: p.settings() for n, p in plans.items()}, config.overwrite, config.allow_code_change
    )
    if todo.conflicts:
        raise conflict_message(folder, todo.conflicts)

    report = RunReport(folder, skipped=list(todo.skip))
    for name in todo.skip:
        accepted = todo.accepted.get(name)
        _say(f"skip {name} (done" + (f"; kept under --allow_code_change: {accepted['code']}" if accepted else "") + ")")
    if todo.accepted and not config.dry_run:  # recorded: these results were made by other harness code
        when = now()
        annotate_tasks(
            folder,
            {
                t: {"accepted_code_change": {"from": d["code"][0], "to": d["code"][1], "at": when}}
                for t, d in todo.accepted.items()
            },
        )
    for name, why in todo.redo.items():
        _say(f"redo {name}: its result file cannot be used ({why})")
    if config.dry_run:
        for name in todo.run:
            print(name, flush=True)
        _say(size_table({name: sizes[name] for name in todo.run}))
        _say(f"dry run: {len(todo.run)} to run, {len(todo.skip)} done, output {folder}")
        return report
    if not todo.run:
        mine_text = f"this shard's {len(specs)} of {selected}" if config.shard else f"all {selected}"
        _say(f"nothing to run: {mine_text} task(s) are done in {folder}" if specs else "nothing to run: no task here")
        return report

    recipe = dataclasses.replace(recipe, checkpoint=fetch_weights(recipe.checkpoint))
    # the weights load before anything is written: a checkpoint that does not fit leaves no trace
    ckpt = recipe.checkpoint
    _say(f"loading {ckpt.name} ({ckpt.kind}) from {ckpt.path} on {config.device} as {config.dtype}")
    embedder, found = build_embedder(recipe)
    try:
        manifest = _open_manifest(recipe, found, folder, next(iter(plans.values())))
        meta = model_meta(
            ckpt.name,
            ckpt.revision,
            found["embed_dim"],
            config.max_length,
            found["n_parameters"],
            config.use_instruction,
        )
        write_model_meta(folder, meta)
        suite = Suite(config, plans, costs, MtebEncoder(embedder, meta), manifest, report)
        suite.run_all(todo.run)
    finally:
        embedder.close()
    return report


def _open_manifest(recipe: Recipe, found: dict[str, Any], folder: Path, any_plan: TaskPlan) -> Manifest:
    config, ckpt = recipe.config, recipe.checkpoint
    manifest = Manifest(
        folder / MANIFEST_NAME,
        {
            "harness": "qzhou-eval",
            "code": {"score": any_plan.code, "embedding": any_plan.embedding_code},
            "git_hash": git_hash(),
            "started": now(),
            "benchmark": config.benchmark,
            "config": config.to_dict(),
            "settings": any_plan.run_settings(),
            "model": {"name": ckpt.name, "revision": ckpt.revision, "path": str(ckpt.path), "source": ckpt.source},
            "preset": {"name": config.preset, "reason": config.preset_reason, "source": recipe.preset_source},
            "instructions": recipe.rule.describe(),
            "versions": package_versions(),
            "device_name": device_name(config.all_devices[0]),
            "resolved": {"max_length": config.max_length, "padding_side": config.padding_side, **found},
        },
    )
    if config.cache != "off":
        manifest.data["cache"] = {"mode": config.cache, "dir": str(_cache_root(config).resolve())}
    manifest.save()
    return manifest


def _cache_root(config: EvalConfig) -> Path:
    return Path(config.cache_dir) if config.cache_dir else default_cache_dir(config.output_dir)


def open_cache(config: EvalConfig, plan: TaskPlan) -> EmbeddingCache | None:
    """A task's embedding cache (None with --cache off), keyed by its plan's `cache_settings`."""
    if config.cache == "off":
        return None
    return EmbeddingCache(
        _cache_root(config),
        plan.cache_settings(),
        keep=config.cache == "keep",
        remove_root=not config.cache_dir,
        allow_code_change=config.allow_code_change,
    )


@dataclass
class Suite:
    """What every task of one run shares: the plans, the encoder, the manifest, the report."""

    config: EvalConfig
    plans: dict[str, TaskPlan]
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
                texts_done += self.run_one(self.plans[name])
                rate = texts_done / max(time.perf_counter() - started, 1e-9)
                bar.set_description_str(f"tasks {i}/{len(names)}")
                bar.set_postfix_str(f"{rate:.0f} texts/s")
                bar.update(self.costs[name])

    def run_one(self, plan: TaskPlan) -> int:
        """Execute one task's plan, record it in the manifest whatever happens; returns texts encoded."""
        config, report, name = self.config, self.report, plan.name
        entry: dict[str, Any] = {**plan.manifest_entry(), "started": now()}
        cache = open_cache(config, plan)
        if cache is not None:
            entry["cache"] = cache.describe()
        self.encoder.start(plan, cache)
        start = time.perf_counter()
        staged: list[StagedFile] = []  # the result file, then the records file
        folder = self.manifest.path.parent
        try:
            task = task_object(plan.spec)
            local = plan.data_source != HUB
            if local:
                use_local_data(task, config.data_dir)
            with TaskCapture(task) as capture, local_datasets_cache(plan.data_sha256) if local else nullcontext():
                result = _evaluate(task, self.encoder, plan.batch_size)
            staged.append(stage_task_result(folder, result))
            report.done[name] = _scores(result)
            entry.update(status="done", scores=report.done[name], result_sha256=staged[0].sha256())
            records, entry["records"] = keep_records(folder, name, capture)
            staged += [records] if records is not None else []
            _say(f"    {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in report.done[name].items()))
            if records is None:
                _say(f"    {name}: no per-example records kept ({entry['records']['why']})")
        except Exception as exc:  # one bad task must not stop the suite; KeyboardInterrupt still does
            for stage in staged:
                stage.discard()
            staged = []
            report.done.pop(name, None)
            message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            report.failed[name] = message
            entry.update(status="failed", error=message, traceback=traceback.format_exc())
            _say(f"    error: {name}: {message}" if isinstance(exc, UserError) else f"    {name} FAILED: {message}")
        entry["wall_time_s"] = round(time.perf_counter() - start, 3)
        stats = self.encoder.stats.pop(name, None)
        entry["inputs"] = stats.to_dict() if stats else None
        if stats:
            report.inputs[name] = stats.to_dict()
        # the manifest first, then the result and records files: a kill in between leaves files the manifest does
        # not vouch for (their sha256 differs, or they are missing), which the next run redoes instead of refusing
        try:
            self.manifest.record_task(name, entry)
        except BaseException:
            for stage in staged:
                stage.discard()
            raise
        for stage in staged:
            stage.publish()
        if staged and cache is not None and config.cache == "task":
            for encoded_as in plan.spec.names:
                cache.drop_task(encoded_as)  # the result is safe: its vectors are not needed again
        return stats.texts if stats else 0


def keep_records(folder: Path, name: str, capture: TaskCapture) -> tuple[StagedFile | None, dict[str, Any]]:
    """The task's per-example records, staged, when every cell recomputes the score mteb wrote (to 1e-6);
    else none, and why. Never fails the task: the records serve comparisons, the result stands without them."""
    try:
        cells = capture.cells()
        ok, worst, why = verify(cells)
    except Exception as exc:  # noqa: BLE001 - a capture problem costs the records, never the result
        ok, worst, why = False, float("nan"), f"{type(exc).__name__}: {exc}"
    if not ok:
        return None, {"kept": False, "why": why}
    unresampled = sorted({c["why"] for c in cells if not c.get("metric")})
    stage = stage_records(folder, name, cells)
    return stage, {
        "kept": True,
        "sha256": stage.sha256(),
        "cells": len(cells),
        "units": sum(len(c["ids"]) for c in cells),
        "max_abs_diff": worst,
        "resampling": "not for " + ", ".join(unresampled) if unresampled else True,
    }


def _evaluate(task: Any, encoder: MtebEncoder, batch_size: int) -> Any:
    import mteb

    # A fresh encode_kwargs per task, with the plan's batch size: mteb's evaluators write defaults only into
    # a dict that lacks one, and the encoder hands the embedder the plan's size whatever mteb passes.
    results = mteb.MTEB(tasks=[task]).run(
        encoder,
        output_folder=None,
        overwrite_results=True,
        raise_error=True,
        verbosity=0,
        encode_kwargs={"batch_size": batch_size},
    )
    return results[0]
