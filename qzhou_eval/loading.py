"""Find a checkpoint, decide how to build it, and load model + tokenizer.

Three kinds of checkpoint: QZhou (built natively as a bidirectional Qwen2, FACTS §8), plain
transformers models (AutoModel), and models whose code lives in the checkpoint (`auto_map`), which
load only when the user passes `--trust_remote_code`. Everything here that can fail on user input
fails before the weights are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.safetensors.index.json", "*.bin.index.json")
GENERIC_DIR_NAMES = {"model", "models", "checkpoint", "final", "best", "output", "hf", "snapshot", "weights"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<sha>[0-9a-f]{40})/?$")
DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class Checkpoint:
    """A resolved model directory and everything decided from its files alone."""

    path: Path
    config: dict[str, Any]
    kind: str  # "qzhou" | "auto" | "remote_code"
    name: str
    revision: str
    st_max_seq_length: int | None
    source: str  # "local" | "hub"

    @property
    def is_decoder_only(self) -> bool:
        return self.kind == "qzhou" or _is_decoder_only(self.config.get("model_type", ""))


def _is_decoder_only(model_type: str) -> bool:
    """Decoder-only families: causal-LM heads exist for them, masked-LM heads do not (BERT has both)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _fingerprint(path: Path) -> str:
    """A revision for a local directory: hash of its config and of each weight file's name, size and
    first/last MiB. Cheap on 15 GB checkpoints, and any retrained or edited weights change it."""
    digest = hashlib.sha256()
    config = path / "config.json"
    digest.update(config.read_bytes())
    for weight in sorted({p for pattern in WEIGHT_PATTERNS for p in path.glob(pattern)}):
        size = weight.stat().st_size
        digest.update(f"{weight.name}:{size}".encode())
        with weight.open("rb") as fh:
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read(1 << 20))
    return "local-" + digest.hexdigest()[:16]


def _readable_name(path: Path) -> str:
    """A directory's name, with its parent's prepended when the name alone says nothing."""
    name = path.name
    if name.lower() in GENERIC_DIR_NAMES or re.fullmatch(r"[0-9a-f]{16,}|checkpoint-\d+", name):
        name = f"{path.parent.name}-{name}"
    return name


def _download(hub_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(hub_id, revision=revision))
    except Exception as exc:  # noqa: BLE001 - every hub failure means the same thing to the user
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1 is set and it is not in the local cache)" if offline else ""
        raise UserError(
            f"could not get model {hub_id!r} from the Hugging Face hub{hint}: {type(exc).__name__}"
        ) from None


def locate(model_name_or_path: str, revision: str | None = None) -> tuple[Path, dict[str, Any], str]:
    """The checkpoint's directory (downloaded for a hub id), its config.json and where it came from."""
    path = Path(model_name_or_path).expanduser()
    source = "local"
    if not path.exists():
        looks_local = model_name_or_path.startswith((".", "/", "~")) or model_name_or_path.count("/") != 1
        if looks_local or not HUB_ID.match(model_name_or_path):
            raise UserError(f"model path does not exist: {model_name_or_path}")
        path = _download(model_name_or_path, revision)
        source = "hub"
    path = path.resolve()
    if not path.is_dir():
        raise UserError(f"model path is not a directory: {path}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"not a model directory (no config.json): {path}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"unreadable config.json in {path}: {exc}") from None
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise UserError(f"model directory has no weight files (*.safetensors, *.bin): {path}")
    return path, config, source


NATIVE_BIDIRECTIONAL_TYPES = ("qwen2",)


def resolve_checkpoint(
    model_name_or_path: str,
    model_name: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    attention: str = "model",
) -> Checkpoint:
    """Locate the checkpoint and decide how to build it, without reading any weights.

    attention "model" builds what the checkpoint declares (QZhouModel natively as bidirectional Qwen2);
    "bidirectional" builds a Qwen2-family decoder as the native bidirectional model (gte-Qwen2);
    "causal" builds the stock class.
    """
    path, config, source = locate(model_name_or_path, revision)
    from .modeling import is_qzhou_config

    model_type = config.get("model_type", "")
    wants_native = (attention == "model" and is_qzhou_config(config)) or (
        attention == "bidirectional" and model_type in NATIVE_BIDIRECTIONAL_TYPES
    )
    if attention == "bidirectional" and not wants_native and _is_decoder_only(model_type):
        raise UserError(
            f"bidirectional attention is built natively only for {', '.join(NATIVE_BIDIRECTIONAL_TYPES)} models, "
            f"not {model_type!r}; use a preset with attention 'model' or 'causal'"
        )
    if wants_native:
        kind = "qzhou"
    elif "AutoModel" in (config.get("auto_map") or {}):
        if not trust_remote_code:
            raise UserError(
                f"{path.name} ships its own model code (auto_map AutoModel -> {config['auto_map']['AutoModel']}); "
                "it is not run by default. Pass --trust_remote_code to run code from that directory"
            )
        kind = "remote_code"
    else:
        kind = "auto"

    st_max = None
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        st_max = json.loads(st_config.read_text()).get("max_seq_length")

    snapshot = SNAPSHOT.search(str(path))
    if model_name is None:
        if source == "hub":
            model_name = model_name_or_path
        elif snapshot:
            model_name = f"{snapshot['org']}/{snapshot['name']}"
        else:
            model_name = f"local/{_readable_name(path)}"
    elif model_name.count("/") != 1 or not all(model_name.split("/")):
        raise UserError(f"--model_name must look like organization/model_name, got {model_name!r}")
    if revision is None:
        revision = snapshot["sha"] if snapshot else _fingerprint(path)
    return Checkpoint(path, config, kind, model_name, revision, st_max, source)


def resolve_max_length(requested: int, checkpoint: Checkpoint, tokenizer: Any) -> int:
    """The requested length, capped at what the model can take (ST setting > tokenizer > positions)."""
    cap = checkpoint.st_max_seq_length
    if cap is None:
        tok_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
            cap = tok_max
    if cap is None:
        cap = checkpoint.config.get("max_position_embeddings")
    return min(requested, cap) if cap else requested


def load_tokenizer(checkpoint: Checkpoint, padding_side: str, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a tokenizer from {checkpoint.path}: {str(exc).splitlines()[0]}") from None
    if padding_side == "auto":
        padding_side = "left" if checkpoint.is_decoder_only else tokenizer.padding_side
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise UserError(f"tokenizer of {checkpoint.path.name} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    checkpoint: Checkpoint, dtype: str, attn_implementation: str, device: str, trust_remote_code: bool
) -> Any:
    import torch
    from transformers import AutoModel

    from .modeling import QZhouModel

    torch_dtype = getattr(torch, dtype)
    cls = QZhouModel if checkpoint.kind == "qzhou" else AutoModel
    kwargs: dict[str, Any] = {"torch_dtype": torch_dtype, "attn_implementation": attn_implementation}
    if cls is AutoModel:
        kwargs["trust_remote_code"] = trust_remote_code
    try:
        model = cls.from_pretrained(str(checkpoint.path), **kwargs)
    except (ValueError, ImportError) as exc:
        if "attn_implementation" in str(exc) or "Attention" in str(exc) or "flash" in str(exc).lower():
            raise UserError(
                f"{checkpoint.path.name} cannot use attn_implementation={attn_implementation!r}: "
                f"{str(exc).splitlines()[0]} (try --attn_implementation eager)"
            ) from None
        raise
    if getattr(model.config, "use_cache", False):
        model.config.use_cache = False
    return model.to(device).eval()
