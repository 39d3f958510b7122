"""`download`: prefetch task data (at mteb's pinned revisions) and the model, for offline runs."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import UserError
from ..evaluate.download import download
from ..recipe.benchmarks import parse_task_list, select_specs


def add_parser(sub: Any) -> None:
    d = sub.add_parser(
        "download",
        help="prefetch the task data (at mteb's pinned revisions) and the model, for offline runs",
        description="Fetch each task's dataset repository at the revision mteb pins (C-MTEB -qrels siblings "
        "included) into DATA_DIR/<dataset path>, and the model into the Hugging Face cache; then "
        "`run ... --data_dir DATA_DIR` works with HF_HUB_OFFLINE=1. A rerun skips what is complete.",
    )
    d.add_argument("--benchmark", default=None, help="any mteb benchmark name, e.g. 'MTEB(eng, v2)'")
    d.add_argument(
        "--tasks", nargs="+", default=None, help="task names (space- or comma-separated); with --benchmark a subset"
    )
    d.add_argument("--data_dir", default=None, help="where the dataset repositories go: DATA_DIR/<dataset path>")
    d.add_argument("--model", default=None, help="a hub model id to put into the Hugging Face cache")
    d.add_argument("--model_revision", default=None, help="branch, tag or commit of --model (default: main)")
    d.set_defaults(func=cmd_download)


def cmd_download(args: argparse.Namespace) -> int:
    """Exit codes: 0 everything is complete, 1 some repository failed (rerun resumes), 2 bad input."""
    requested = parse_task_list(args.tasks)
    specs = select_specs(args.benchmark, requested) if args.benchmark or requested else []
    if not specs and not args.model:
        raise UserError("nothing to download: give --benchmark and/or --tasks, or --model")
    if specs and not args.data_dir:
        raise UserError("--data_dir is required to download task data (the folder `run --data_dir` reads)")
    return 1 if download(specs, args.data_dir, args.model, args.model_revision) else 0
