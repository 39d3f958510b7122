"""`summarize`: leaderboard tables from result trees, with deltas to published scores."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UserError
from ..report.summary import DUPLICATES
from ..report.summary_files import summarize


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "summarize",
        help="leaderboard tables from result trees, with deltas to published scores",
        description="Leaderboard tables (mteb 1.38.30 formulas) for any mteb benchmark, with the provenance each "
        "result folder's manifest records. Files go to OUTPUT_DIR/summary/.",
        epilog="exit codes: 0 tables written; 2 bad input (one `error:` line); 3 the --max_delta gate failed "
        "(tables are still written)",
    )
    s.add_argument(
        "--results_dir",
        nargs="+",
        required=True,
        help="result trees (<org__model>/<revision>/<Task>.json) or revision folders; several merge into one "
        "table (the same cell twice must agree)",
    )
    s.add_argument("--benchmark", required=True, help="any mteb 1.38.30 benchmark name, e.g. 'MTEB(Multilingual, v2)'")
    s.add_argument(
        "--reference", nargs="+", default=None, help="published-scores file, result tree, or a bundled name (`qzhou`)"
    )
    s.add_argument(
        "--reference_model",
        default=None,
        metavar="NAME[@REVISION]",
        help="the model to compare with, where a --reference tree holds several",
    )
    s.add_argument(
        "--output_dir",
        default=None,
        help="files go to OUTPUT_DIR/summary/ (default: the first --results_dir, or the tree root above it when it "
        "is a revision folder; ./summary/ when that tree is read-only)",
    )
    s.add_argument(
        "--duplicates",
        choices=list(DUPLICATES),
        default=None,
        help="a task the benchmark lists twice (C-MTEB's MultilingualSentiment): the later listing only (mteb "
        "1.38.30 leaderboard, default) or the mean of all listings' cells (mteb 2.x)",
    )
    s.add_argument(
        "--multilingual_sentiment",
        choices=["validation", "mean"],
        default=None,
        help="old name of --duplicates (validation = last)",
    )
    s.add_argument(
        "--allow_mixed",
        action="store_true",
        help="one row per settings when a (model, revision) was made with several (default: refused, naming the "
        "differing settings); same-settings cells that disagree keep the later --results_dir's value",
    )
    s.add_argument(
        "--max_delta", type=float, default=None, help="exit 3 when any |delta| to the reference exceeds this (points)"
    )
    s.set_defaults(func=cmd_summarize)


def cmd_summarize(args: argparse.Namespace) -> int:
    """Exit codes: 0 tables written, 2 bad input (UserError), 3 the --max_delta gate failed."""
    if args.duplicates and args.multilingual_sentiment:
        raise UserError("give --duplicates or its old alias --multilingual_sentiment, not both")
    text, exceeded = summarize(
        args.results_dir,
        args.benchmark,
        args.reference,
        args.output_dir,
        args.duplicates or args.multilingual_sentiment or "last",
        args.max_delta,
        allow_mixed=args.allow_mixed,
        reference_model=args.reference_model,
    )
    print(text)
    if exceeded:
        print(f"error: |delta| > {args.max_delta} points for: {', '.join(exceeded)}", file=sys.stderr)
        return 3
    return 0
