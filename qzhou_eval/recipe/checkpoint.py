"""A checkpoint: where it is, what it is, what it is called, and what its files hold. No weights are read.

Three kinds: QZhou (declared `QZhouModel`; the model layer builds it natively as a bidirectional Qwen2,
FACTS §8), plain transformers models (AutoModel), and models whose code lives in the checkpoint
(`auto_map`), which load only with `--trust_remote_code`. Everything here that can fail on user input
fails before any weight file is read or downloaded.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import tree_sha256

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.safetensors.index.json", "*.bin.index.json")
GENERIC_DIR_NAMES = {"model", "models", "checkpoint", "final", "best", "output", "hf", "snapshot", "weights"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<sha>[0-9a-f]{40})/?$")
QZHOU_ARCHITECTURE = "QZhouModel"


def is_qzhou_config(config: Any) -> bool:
    """True for a config object or raw config.json dict that declares the QZhou architecture."""
    archs = config.get("architectures") if isinstance(config, dict) else getattr(config, "architectures", None)
    return QZHOU_ARCHITECTURE in (archs or [])


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
    hub_id: str | None = None  # for fetch_weights: the id and the revision asked for
    hub_revision: str | None = None
    content: str = ""  # what the files are, whatever --revision calls them: the hub commit, else a hash of them

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


def local_revision(path: Path) -> str:
    """A revision for a local directory: the sha256 of every file in it (config, tokenizer, vocabulary,
    prompt and sentence-transformers module configs, weights; subfolders too). Weights are hashed whole, not
    sampled: a retrained or edited checkpoint of the same shape keeps its file sizes and often its first and
    last MiB, and must still get another revision (results, resume and the embedding cache are keyed by it).
    Each file's hash is remembered (`files.file_sha256`), so a 15 GB checkpoint is read once."""
    return "local-" + tree_sha256([path], path)[:16]


def _readable_name(path: Path) -> str:
    """A directory's name, with its parent's prepended when the name alone says nothing."""
    name = path.name
    if name.lower() in GENERIC_DIR_NAMES or re.fullmatch(r"[0-9a-f]{16,}|checkpoint-\d+", name):
        name = f"{path.parent.name}-{name}"
    return name


WEIGHT_FILES = ["*.safetensors", "*.bin", "*.pt", "*.pth", "*.onnx", "*.h5", "*.msgpack", "*.ckpt", "*.gguf", "*.ot"]


def _download(hub_id: str, revision: str | None, weights: bool = True) -> Path:
    """A snapshot of the model repo; without `weights`, only its configs and tokenizer (a few MB)."""
    try:
        from huggingface_hub import snapshot_download

        ignore = None if weights else WEIGHT_FILES
        return Path(snapshot_download(hub_id, revision=revision, ignore_patterns=ignore))
    except Exception as exc:  # noqa: BLE001 - every hub failure means the same thing to the user
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1 is set and it is not in the local cache)" if offline else ""
        raise UserError(
            f"could not get model {hub_id!r} from the Hugging Face hub{hint}: {type(exc).__name__}"
        ) from None


def locate(
    model_name_or_path: str, revision: str | None = None, weights: bool = True
) -> tuple[Path, dict[str, Any], str]:
    """The checkpoint's directory (downloaded for a hub id), its config.json and where it came from.

    With `weights=False` a hub id fetches only configs and tokenizer files, so every check and `--dry_run`
    can run before gigabytes of weights are downloaded (`fetch_weights` gets them later)."""
    path = Path(model_name_or_path).expanduser()
    source = "local"
    if not path.exists():
        looks_local = model_name_or_path.startswith((".", "/", "~")) or model_name_or_path.count("/") != 1
        if looks_local or not HUB_ID.match(model_name_or_path):
            raise UserError(f"model path does not exist: {model_name_or_path}")
        path = _download(model_name_or_path, revision, weights)
        source = "hub"
    path = path.resolve()
    if not path.is_dir():
        raise UserError(f"model path is not a directory: {path}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"not a model directory (no config.json): {path}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"unreadable config.json in {path}: {exc}") from None
    if not isinstance(config, dict):
        raise UserError(f"config.json in {path} is a JSON {type(config).__name__}, not an object")
    if (weights or source == "local") and not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise UserError(f"model directory has no weight files (*.safetensors, *.bin): {path}")
    return path, config, source


NATIVE_BIDIRECTIONAL_TYPES = ("qwen2",)


def resolve_checkpoint(
    model_name_or_path: str,
    model_name: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    attention: str = "model",
    weights: bool = True,
) -> Checkpoint:
    """Locate the checkpoint and decide how to build it, without reading any weights.

    attention "model" builds what the checkpoint declares (QZhouModel natively as bidirectional Qwen2);
    "bidirectional" builds a Qwen2-family decoder as the native bidirectional model (gte-Qwen2);
    "causal" builds the stock class.
    """
    requested_revision = revision
    path, config, source = locate(model_name_or_path, revision, weights)
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

    st_max = _st_max_seq_length(path)

    snapshot = SNAPSHOT.search(str(path))
    if model_name is None:
        if source == "hub":
            model_name = model_name_or_path
        elif snapshot:
            model_name = f"{snapshot['org']}/{snapshot['name']}"
        else:
            model_name = f"local/{_readable_name(path)}"
    content = snapshot["sha"] if snapshot else local_revision(path)
    if revision is None:
        revision = content
    hub = (model_name_or_path, requested_revision) if source == "hub" else (None, None)
    return Checkpoint(path, config, kind, model_name, revision, st_max, source, *hub, content)


def _st_max_seq_length(path: Path) -> int | None:
    """`max_seq_length` of a sentence-transformers directory's sentence_bert_config.json, if it states one."""
    file = path / "sentence_bert_config.json"
    if not file.is_file():
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        raise UserError(f"{path.name}/sentence_bert_config.json is not a JSON object") from None
    if value is not None and (not isinstance(value, int) or value <= 0):
        raise UserError(f"{path.name}/sentence_bert_config.json: max_seq_length {value!r} is not a positive integer")
    return value


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


def fetch_weights(checkpoint: Checkpoint) -> Checkpoint:
    """The weights of a hub checkpoint located without them (a no-op for local directories)."""
    if checkpoint.source != "hub":
        return checkpoint
    path = _download(str(checkpoint.hub_id), checkpoint.hub_revision, weights=True)
    if path.resolve() != checkpoint.path:
        raise UserError(f"the hub returned another snapshot for {checkpoint.hub_id} ({path}) than before")
    return checkpoint


def output_dim(checkpoint: Checkpoint) -> int | None:
    """The embedding size, from configs alone: the last sentence-transformers Dense layer, else hidden_size."""
    dim = checkpoint.config.get("hidden_size") or checkpoint.config.get("d_model")
    modules = checkpoint.path / "modules.json"
    if modules.is_file():
        try:
            for module in json.loads(modules.read_text(encoding="utf-8")):
                cfg = checkpoint.path / str(module.get("path", "")) / "config.json"
                if str(module.get("type", "")).endswith("Dense") and cfg.is_file():
                    dim = json.loads(cfg.read_text(encoding="utf-8")).get("out_features", dim)
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # st_config.read_st_dir reports a malformed modules.json; here it only loses a size hint
    return int(dim) if dim else None
