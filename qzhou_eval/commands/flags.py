"""Flags shared by `run`, the two benchmark scripts and `embed`: the model's and the run's, and their types.

Flags left out stay None, so the preset decides them (`recipe/resolve.py`: defaults < preset < flags, once).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..config import ATTN_IMPLEMENTATIONS, CACHE_MODES, DTYPES, PADDING_SIDES, POOLING_MODES, SORT_MODES, visible_gpus
from ..errors import UserError
from ..evaluate.shard import launcher_device
from ..recipe.presets import PRESET_KEYS

TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}


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
    p.add_argument("--model_name_or_path", required=required, help="local model directory or hub id")
    p.add_argument(
        "--preset", default=None, help="evaluation recipe of a model family (presets/*.json); default: detected"
    )
    p.add_argument(
        "--pooling_mode", default=None, choices=list(POOLING_MODES), help="default: the preset's (qzhou: mean)"
    )
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
        choices=list(SORT_MODES),
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
        choices=list(CACHE_MODES),
        help="embedding cache: vectors saved while encoding (after the first batch to finish 60 s or more after "
        "the last save, and at the end of each encode call), so a killed task resumes "
        "where it stopped; task (default): a task's vectors are deleted once its result is written; keep: kept, "
        "so a rerun that changes only the instruction re-encodes only texts whose input changed; off: none",
    )
    p.add_argument(
        "--allow_code_change",
        action="store_true",
        help="keep results and cached vectors made by another harness version (code identity) instead of redoing "
        "them; the manifest records which were kept",
    )
    p.add_argument(
        "--cache_dir",
        default=None,
        help="embedding cache folder, shareable by runs and shard jobs (default: <output_dir>/embedding_cache)",
    )


RUN_FLAGS = (
    "output_dir",
    "data_dir",
    "model_name",
    "revision",
    "overwrite",
    "dry_run",
    "cache",
    "cache_dir",
    "allow_code_change",
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


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """EvalConfig keywords from the flags the user gave; what they left out stays None for the preset.

    Nothing is located, downloaded or detected here: `recipe.resolve.prepare` resolves defaults < preset < flags
    in one place for `run`, `embed` and direct `run(EvalConfig(...))` calls alike.
    """
    kw = {k: getattr(args, k) for k in MODEL_FLAGS}
    kw.update({flag: getattr(args, flag) for flag in PRESET_KEYS.values()})  # a flag given beats the preset
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
    return launcher_device(os.environ, len(visible_gpus()))
