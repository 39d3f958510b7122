"""Command line: the parser and `main`. Each subcommand's flags and body live in `commands/<name>.py`.

Every user mistake is a `UserError`, caught once in `main`: one `error: ...` line on stderr and exit code 2
(argparse's own errors are reshaped to the same form).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .commands import compare, download, embed, prompts, run, summarize
from .commands.flags import add_model_flags, add_run_flags
from .errors import UserError

SUBCOMMANDS = (run, prompts, embed, summarize, compare, download)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser(benchmark: str | None = None) -> Parser:
    if benchmark is not None:  # a run script: its benchmark fixed, flags at the top level
        p = Parser(description=f"Evaluate an embedding model on {benchmark}.")
        add_model_flags(p, required=False)
        add_run_flags(p)
        p.set_defaults(func=run.cmd_run, benchmark=benchmark)
        return p
    p = Parser(prog="python -m qzhou_eval", description="qzhou-eval: MTEB(eng, v2) / C-MTEB evaluation harness")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None, benchmark: str | None = None) -> int:
    args = build_parser(benchmark).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        import shlex

        command = shlex.join([Path(sys.executable).name, *sys.argv])
        print(
            f"interrupted: finished tasks are saved, no partial file was left. To resume, rerun:\n  {command}",
            file=sys.stderr,
        )
        return 130
