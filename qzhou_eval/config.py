"""EvalConfig: every knob of a run in one frozen dataclass.

Defaults are the leaderboard setup of the published QZhou runs. The config is resolved once (from
flags in `cli.py`, or directly by tests) and never mutated, so what the manifest records is what ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError

# The one list of each kind of value: flags, checks, presets and the model layer all read these.
DTYPES = ("bfloat16", "float16", "float32")
POOLING_MODES = ("mean", "weighted_mean", "last_token", "eos_token", "bos_token", "cls", "first_token")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
PADDING_SIDES = ("auto", "left", "right")
ATTENTIONS = ("model", "bidirectional", "causal")
SORT_MODES = ("tokens", "chars", "reference")
CACHE_MODES = ("task", "keep", "off")
PROMPT_TYPES = ("query", "passage", "none")  # mteb's prompt types; "none" = mteb passes prompt_type=None


def check_path_component(value: str, what: str) -> None:
    """A name that becomes one folder or file name under --output_dir: no separators, no `..`."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\0" in value or value.startswith("."):
        raise UserError(f"{what} {value!r} cannot be used in a path: no '/', '\\', leading '.' or '..'")


def check_device(device: str) -> None:
    """A device torch knows and this machine has, checked before anything loads."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"device {device!r} is not available: this machine has no CUDA GPU")
        if dev.index is not None and dev.index >= count:
            raise UserError(f"device {device!r} is not available: this machine has {count} CUDA GPU(s)")
        return
    if dev.type == "mps" and torch.backends.mps.is_available():
        return
    raise UserError(f"device {device!r} is not available here; use cpu, cuda or cuda:N")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def visible_gpus() -> tuple[str, ...]:
    import torch

    return tuple(f"cuda:{i}" for i in range(torch.cuda.device_count())) if torch.cuda.is_available() else ()


_UNSET = "<preset>"  # empty_text may legitimately be None (keep empty texts), so it needs its own marker


@dataclass(frozen=True)
class EvalConfig:
    """Every knob of a run. Fields left at None (and `empty_text` at "<preset>") are the preset's: one pure
    resolution step (`recipe.presets.resolve_config`) fills them, so `EvalConfig(model, benchmark, preset="X")` alone
    means X's whole recipe, and a flag the user gave always wins over the preset."""

    model_name_or_path: str
    benchmark: str | None = None  # None: the tasks' own splits and subsets (needs `tasks`)
    tasks: tuple[str, ...] = ()  # empty = the whole benchmark
    pooling_mode: str | None = None
    normalize: bool | None = None
    # task type -> normalise or not, where a preset's source decides per type (e5: not for Classification);
    # None = the preset's; an explicit --normalize applies to every type
    normalize_by_type: tuple[tuple[str, bool], ...] | None = None
    use_instruction: bool = True
    output_dir: str = "results"
    batch_size: int = 32
    max_length: int | None = None
    dtype: str | None = None
    attn_implementation: str | None = None
    padding_side: str | None = None
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
    cache: str = "task"  # embedding cache (store/cache.py): task = delete a task's vectors once its result is written
    cache_dir: str | None = None  # None: <output_dir>/embedding_cache
    preset: str | None = None  # None: detected from the checkpoint
    preset_reason: str = ""
    attention: str | None = None  # bidirectional | causal | model (what the checkpoint declares)
    instruction: str | None = None  # replaces every task's instruction text, keeps the side rules
    truncate_dim: int | None = None  # Matryoshka: keep the first D dimensions, then normalise
    append_eos: bool | None = None  # a preset's: add the EOS id after truncation (e5-mistral's recipe)
    empty_text: str | None = _UNSET  # what an empty text becomes ("Null" for qzhou); None keeps it empty
    text_suffix: str | None = None  # appended to every text before tokenizing (gte-Qwen2: "<|endoftext|>")
    strip_documents: bool | None = None  # a preset's: retrieval documents stripped ('{title} {text}'.strip(), e5)
    allow_code_change: bool = False  # reuse results and cached vectors made by another harness code identity
    resolved: bool = False  # set by recipe.presets.resolve_config once every preset field holds a value

    def __post_init__(self) -> None:
        checks = [
            (self.pooling_mode in (None, *POOLING_MODES), f"--pooling_mode must be one of {', '.join(POOLING_MODES)}"),
            (self.dtype in (None, *DTYPES), f"--dtype must be one of {', '.join(DTYPES)}"),
            (
                self.attn_implementation in (None, *ATTN_IMPLEMENTATIONS),
                f"--attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}",
            ),
            (self.padding_side in (None, *PADDING_SIDES), f"--padding_side must be one of {', '.join(PADDING_SIDES)}"),
            (self.batch_size > 0, f"--batch_size must be positive, got {self.batch_size}"),
            (self.max_length is None or self.max_length > 0, f"--max_length must be positive, got {self.max_length}"),
            (self.attention in (None, *ATTENTIONS), f"attention must be one of {', '.join(ATTENTIONS)}"),
            (self.sort_by in SORT_MODES, f"--sort_by must be one of {', '.join(SORT_MODES)}"),
            (0.0 <= self.max_padding <= 1.0, f"--max_padding must be between 0 and 1, got {self.max_padding}"),
            (
                self.truncate_dim is None or self.truncate_dim > 0,
                f"--truncate_dim must be positive, got {self.truncate_dim}",
            ),
            (
                self.batch_tokens is None or self.batch_tokens > 0,
                f"--batch_tokens must be positive, got {self.batch_tokens}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        if self.cache not in CACHE_MODES:
            raise UserError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {self.cache!r}")
        if self.cache_dir is not None and Path(self.cache_dir).exists() and not Path(self.cache_dir).is_dir():
            raise UserError(f"--cache_dir is a file, not a directory: {self.cache_dir}")
        if self.benchmark is None and not self.tasks:
            raise UserError("name a --benchmark, or the --tasks to run")
        if self.data_dir is not None and not Path(self.data_dir).is_dir():
            raise UserError(f"--data_dir does not exist or is not a directory: {self.data_dir}")
        out = Path(self.output_dir)
        if out.exists() and not out.is_dir():
            raise UserError(f"--output_dir is a file, not a directory: {self.output_dir}")
        for name in self.tasks:
            check_path_component(name, "task name")
        if self.revision is not None:
            check_path_component(self.revision, "--revision")
        if self.model_name is not None:
            parts = self.model_name.split("/")
            if len(parts) != 2:
                raise UserError(f"--model_name must look like organization/model_name, got {self.model_name!r}")
            for part in parts:
                check_path_component(part, "--model_name")
        for device in self.devices or (self.device,):
            check_device(device)

    @property
    def all_devices(self) -> tuple[str, ...]:
        return self.devices or (self.device,)

    def normalize_for(self, task_type: str) -> bool:
        """Whether a task of this type gets L2-normalised embeddings (resolved configs only)."""
        return dict(self.normalize_by_type or ()).get(task_type, bool(self.normalize))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["devices"] = list(self.devices)
        d["normalize_by_type"] = dict(self.normalize_by_type or ())
        return d
