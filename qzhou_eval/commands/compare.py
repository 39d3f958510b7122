"""`compare`: is model B better than baseline A? Paired intervals and tests per task and for every mean."""

from __future__ import annotations

import argparse
from typing import Any

from ..recipe.benchmarks import parse_task_list
from ..report.compare_files import run_compare
from ..report.summary import DUPLICATES
from .flags import positive_int


def add_parser(sub: Any) -> None:
    c = sub.add_parser(
        "compare",
        help="paired bootstrap intervals and randomization tests of model - baseline, per task and per mean",
        description="Compare models task by task on the per-example records their runs kept: the same resampled "
        "units for both models, Holm's correction over tasks, and for every mean an interval over units and one "
        "over tasks. Files go to OUTPUT_DIR/compare/.",
    )
    c.add_argument("--results_dir", nargs="+", required=True, help="result trees (<org__model>/<revision>/...)")
    c.add_argument(
        "--models",
        nargs="+",
        required=True,
        metavar="NAME[@REVISION]",
        help="the baseline first, then the models compared with it (org/name, optionally @revision or its prefix)",
    )
    c.add_argument("--benchmark", default=None, help="any mteb benchmark: its tasks, cells and means")
    c.add_argument("--tasks", nargs="+", default=None, help="these tasks instead (or within --benchmark)")
    c.add_argument("--resamples", type=positive_int, default=10_000, help="bootstrap and randomization draws")
    c.add_argument("--alpha", type=float, default=0.05, help="1 - interval level, and the Holm test level")
    c.add_argument("--seed", type=int, default=0, help="seed of every resampling (recorded in compare.md)")
    c.add_argument("--output_dir", default=None, help="files go to OUTPUT_DIR/compare/ (default as summarize)")
    c.add_argument(
        "--duplicates",
        choices=list(DUPLICATES),
        default="last",
        help="a task a benchmark lists twice: its later listing (mteb 1.38.30) or the mean of both (2.x)",
    )
    c.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    tasks = parse_task_list(args.tasks)
    text, _ = run_compare(
        args.results_dir,
        args.models,
        args.benchmark,
        tasks,
        args.output_dir,
        resamples=args.resamples,
        alpha=args.alpha,
        seed=args.seed,
        duplicates=args.duplicates,
    )
    print(text)
    return 0
