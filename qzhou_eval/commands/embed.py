"""`embed`: a text file, one text per line, through the evaluation code path (the task's prefix, the recipe)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PROMPT_TYPES, EvalConfig
from ..errors import UserError
from ..evaluate.plan import build_plan
from ..files import write_atomic
from ..model.build import build_embedder
from ..recipe.benchmarks import standalone_task
from ..recipe.resolve import prepare
from .flags import add_model_flags, model_kwargs


def add_parser(sub: Any) -> None:
    e = sub.add_parser("embed", help="embed a text file, one text per line, with the evaluation code path")
    add_model_flags(e)
    e.add_argument("--task", required=True, help="any mteb task name: decides the instruction prefix")
    e.add_argument(
        "--prompt_type",
        required=True,
        choices=list(PROMPT_TYPES),
        help="the side mteb would ask for (none: STS, classification, clustering, ...)",
    )
    e.add_argument("--input", required=True, help="UTF-8 text file, one text per line (an empty line = empty text)")
    e.add_argument(
        "--output", required=True, help="the file the float32 embeddings are saved to (.npy format), as named"
    )
    e.set_defaults(func=cmd_embed)


def cmd_embed(args: argparse.Namespace) -> int:
    spec = standalone_task(args.task)  # any mteb task; unknown names get close matches
    source = Path(args.input)
    if not source.is_file():
        raise UserError(f"input file not found: {args.input}")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"input file is not UTF-8 text: {args.input}") from None
    if not text:
        raise UserError(f"input file is empty: {args.input} (one text per line; an empty line is an empty text)")
    texts = text.split("\n")
    if text.endswith("\n"):
        texts.pop()  # a final newline ends the last line; it does not start an empty text
    out = Path(args.output)
    if out.is_dir():
        raise UserError(f"--output is a directory: {args.output}")
    if spec.subtasks:
        raise UserError(f"{args.task} is an aggregate: mteb encodes its subtasks; embed one ({', '.join(spec.names)})")
    recipe = prepare(EvalConfig(tasks=(args.task,), **model_kwargs(args)), weights=True)
    plan = build_plan(recipe, spec, None)  # the prefix, batch size, normalisation and stripping a run would use
    prefix, call = plan.encode_call(args.task, args.prompt_type)
    recipe.check_prefixes_fit({args.task: prefix})
    embedder, _ = build_embedder(recipe)
    try:
        emb = embedder.encode(texts, prefix, where=f"{args.task} ({args.prompt_type} texts of {args.input})", **call)
    finally:
        embedder.close()
    try:  # exactly the path given (np.save would append .npy to a name without it), whole or not at all
        write_atomic(out, lambda fh: np.save(fh, emb, allow_pickle=False))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"{out}: {emb.shape[0]} x {emb.shape[1]} float32 (prefix {prefix!r})", file=sys.stderr)
    return 0
