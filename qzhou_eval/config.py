"""EvalConfig: every knob of a run in one frozen dataclass.

Defaults are the leaderboard setup of the published QZhou runs. The config is resolved once (from
flags in `cli.py`, or directly by tests) and never mutated, so what the manifest records is what ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .loading import DTYPES
from .pooling import POOLERS

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
PADDING_SIDES = ("auto", "left", "right")
ATTENTIONS = ("model", "bidirectional", "causal")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def visible_gpus() -> tuple[str, ...]:
    import torch

    return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


@dataclass(frozen=True)
class EvalConfig:
    model_name_or_path: str
    benchmark: str
    tasks: tuple[str, ...] = ()  # empty = the whole benchmark
    pooling_mode: str = "mean"
    normalize: bool = True
    use_instruction: bool = True
    output_dir: str = "results"
    batch_size: int = 32
    max_length: int = 1024
    dtype: str = "bfloat16"
    attn_implementation: str = "sdpa"
    padding_side: str = "auto"
    device: str = field(default_factory=default_device)
    data_dir: str | None = None
    model_name: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    sort_by: str = "tokens"
    batch_tokens: int | None = None
    max_padding: float = 0.02  # with sort_by="tokens": a batch closes before padding passes this share (2 %)
    devices: tuple[str, ...] = ()  # several: one worker process per device; empty = (device,)
    shard: tuple[int, int] | None = None  # (K, N): this job runs part K of N
    dry_run: bool = False
    overwrite: bool = False
    preset: str = "qzhou"
    preset_reason: str = "default"
    attention: str = "model"  # bidirectional | causal | model (what the checkpoint declares)
    instruction: str | None = None  # replaces every task's instruction text, keeps the side rules
    truncate_dim: int | None = None  # Matryoshka: keep the first D dimensions, then normalise
    append_eos: bool = False  # a preset's: add the EOS id after truncation (e5-mistral's recipe)

    def __post_init__(self) -> None:
        checks = [
            (self.pooling_mode in POOLERS, f"--pooling_mode must be one of {', '.join(POOLERS)}"),
            (self.dtype in DTYPES, f"--dtype must be one of {', '.join(DTYPES)}"),
            (
                self.attn_implementation in ATTN_IMPLEMENTATIONS,
                f"--attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}",
            ),
            (self.padding_side in PADDING_SIDES, f"--padding_side must be one of {', '.join(PADDING_SIDES)}"),
            (self.batch_size > 0, f"--batch_size must be positive, got {self.batch_size}"),
            (self.max_length > 0, f"--max_length must be positive, got {self.max_length}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise UserError(f"--data_dir does not exist or is not a directory: {self.data_dir}")
        out = Path(self.output_dir)
        if out.exists() and not out.is_dir():
            raise UserError(f"--output_dir is a file, not a directory: {self.output_dir}")
        if self.sort_by not in ("chars", "tokens"):
            raise UserError("--sort_by must be chars or tokens")
        if not 0.0 <= self.max_padding <= 1.0:
            raise UserError(f"--max_padding must be between 0 and 1, got {self.max_padding}")
        if self.attention not in ATTENTIONS:
            raise UserError(f"attention must be one of {', '.join(ATTENTIONS)}")
        if self.truncate_dim is not None and self.truncate_dim <= 0:
            raise UserError(f"--truncate_dim must be positive, got {self.truncate_dim}")
        if self.batch_tokens is not None and self.batch_tokens <= 0:
            raise UserError(f"--batch_tokens must be positive, got {self.batch_tokens}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["devices"] = list(self.devices)
        return d
