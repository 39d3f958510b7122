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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.safetensors.index.json", "*.bin.index.json")
GENERIC_DIR_NAMES = {"model", "models", "checkpoint", "final", "best", "output", "hf", "snapshot", "weights"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
SNAPSHOT = re.compile(r"models--(?P<org>[^/]+?)--(?P<name>[^/]+)/snapshots/(?P<sha>[0-9a-f]{40})/?$")
DTYPES = ("bfloat16", "float16", "float32")
ST_PRESET = "sentence-transformers"  # embedded through its own modules (st_pipeline.py)


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


def _fingerprint(path: Path) -> str:
    """A revision for a local directory: the sha256 of every file in it (config, tokenizer, vocabulary,
    prompt and sentence-transformers module configs, weights; subfolders too). Weights are hashed whole, not
    sampled: a retrained or edited checkpoint of the same shape keeps its file sizes and often its first and
    last MiB, and must still get another revision (results, resume and the embedding cache are keyed by it).
    Each file's hash is remembered by (path, size, mtime, inode), so a 15 GB checkpoint is read once."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))):
        digest.update(f"{file.relative_to(path).as_posix()}:{file_sha256(file)}\n".encode())
    return "local-" + digest.hexdigest()[:16]


def _hash_memo() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qzhou_eval" / "file_sha256.json"


def file_sha256(file: Path) -> str:
    """sha256 of a file's content, remembered across runs by its path, size, mtime and inode."""
    st = file.stat()
    key = f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo_path = _hash_memo()
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    if st.st_size > 1 << 30:
        print(
            f"hashing {file.name} ({st.st_size / 2**30:.1f} GiB) once, to tell this checkpoint apart", file=sys.stderr
        )
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            digest.update(block)
    memo[key] = digest.hexdigest()
    if st.st_size > 1 << 20:  # small files are rehashed faster than the memo is rewritten
        try:
            from .manifest import write_json_atomic

            write_json_atomic(memo_path, memo)
        except OSError:
            pass  # no writable cache folder: hash again next time
    return memo[key]


def _hidden(rel: Path) -> bool:
    """Caches and VCS folders (.git, .cache, __pycache__) say nothing about the model."""
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"unreadable config.json in {path}: {exc}") from None
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
    content = snapshot["sha"] if snapshot else _fingerprint(path)
    if revision is None:
        revision = content
    hub = (model_name_or_path, requested_revision) if source == "hub" else (None, None)
    return Checkpoint(path, config, kind, model_name, revision, st_max, source, *hub, content)


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
    kwargs: dict[str, Any] = {
        "torch_dtype": torch_dtype,
        "attn_implementation": attn_implementation,
        "output_loading_info": True,
    }
    if cls is AutoModel:
        kwargs["trust_remote_code"] = trust_remote_code
    try:
        model, info = cls.from_pretrained(str(checkpoint.path), **kwargs)
    except (ValueError, ImportError) as exc:
        raise attention_error(checkpoint.path.name, attn_implementation, exc) from None
    check_loaded_keys(model, info, checkpoint.path.name)
    if getattr(model.config, "use_cache", False):
        model.config.use_cache = False
    return model.to(device).eval()


def attention_error(name: str, attn_implementation: str, exc: Exception) -> Exception:
    """transformers' refusal of an attention backend as one `error:` line; any other load error as it was."""
    if "attn_implementation" in str(exc) or "Attention" in str(exc) or "flash" in str(exc).lower():
        return UserError(
            f"{name} cannot use attn_implementation={attn_implementation!r}: "
            f"{str(exc).splitlines()[0]} (try --attn_implementation eager)"
        )
    return exc


def check_loaded_keys(model: Any, info: dict[str, list], name: str) -> None:
    """Weights that do not fit the model stop the run: transformers would fill the gaps with random values.

    transformers has already dropped the keys the model class declares ignorable
    (`_keys_to_ignore_on_load_missing/unexpected`). Unexpected keys are tolerated only outside the modules
    the model has (a task head such as `lm_head.*` or `cls.*` in a checkpoint saved with its head); a missing
    key, or an unexpected one inside a module of the model (`layers.7.*` for a 6-layer model), is an error.
    """
    children = {n for n, _ in model.named_children()}
    missing = list(info.get("missing_keys") or [])
    unexpected = [k for k in info.get("unexpected_keys") or [] if k.split(".")[0] in children]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(sorted(missing)[:4])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(sorted(unexpected)[:4])})")
    if info.get("mismatched_keys"):
        problems.append(f"mismatched shapes: {', '.join(str(k) for k in info['mismatched_keys'][:4])}")
    if info.get("error_msgs"):
        problems.append(str(info["error_msgs"][0]).splitlines()[0])
    if problems:
        raise UserError(
            f"the weights of {name} do not fit {type(model).__name__}: {'; '.join(problems)}. Refusing to "
            "evaluate a model with randomly initialised parts"
        )


def fetch_weights(checkpoint: Checkpoint) -> Checkpoint:
    """The weights of a hub checkpoint located without them (a no-op for local directories)."""
    if checkpoint.source != "hub":
        return checkpoint
    path = _download(str(checkpoint.hub_id), checkpoint.hub_revision, weights=True)
    if path.resolve() != checkpoint.path:
        raise UserError(f"the hub returned another snapshot for {checkpoint.hub_id} ({path}) than before")
    return checkpoint


def flash_attention_available() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def prepare(config: Any, quiet: bool = False, weights: bool = False) -> tuple[Any, Checkpoint, Any]:
    """The one resolution step: checkpoint (no weights), preset, tokenizer, then every value made final.

    defaults < preset < flags, then what only the checkpoint can tell: `padding_side` auto -> left/right,
    `max_length` capped at the model's limit, flash-attention -> SDPA where it cannot run. Returns the
    resolved EvalConfig (what the fingerprint, manifest, embedder and workers read), the checkpoint and
    the tokenizer. Reads configs and tokenizer files only; `weights=True` also fetches hub weights.
    """
    from dataclasses import replace

    from .presets import get_preset, resolve_config

    path, model_config, _ = locate(config.model_name_or_path, config.revision, weights=False)
    name = config.model_name or config.model_name_or_path
    config = resolve_config(config, path, model_config, name)
    if not quiet:
        source = get_preset(config.preset).source
        print(f"preset: {config.preset} ({config.preset_reason}; {source})", file=sys.stderr)
    checkpoint = resolve_checkpoint(
        config.model_name_or_path,
        config.model_name,
        config.revision,
        config.trust_remote_code,
        config.attention,
        weights=False,
    )
    if config.preset == ST_PRESET:  # the Transformer module's own tokenizer, modules.json checked
        from .st_pipeline import tokenizer_for

        tokenizer = tokenizer_for(config, checkpoint.path)
    else:
        tokenizer = load_tokenizer(checkpoint, config.padding_side, config.trust_remote_code)
    updates: dict[str, Any] = {
        "padding_side": tokenizer.padding_side,
        "max_length": resolve_max_length(config.max_length, checkpoint, tokenizer),
    }
    if config.attn_implementation == "flash_attention_2" and not flash_attention_available():
        updates["attn_implementation"] = "sdpa"
        if not quiet:
            print("flash_attention_2 is not available here (needs CUDA and flash-attn): using sdpa", file=sys.stderr)
    config = replace(config, **updates)
    dim = output_dim(checkpoint)
    if config.truncate_dim is not None and dim is not None and config.truncate_dim > dim:
        raise UserError(f"--truncate_dim {config.truncate_dim} exceeds the model's {dim} dimensions")
    if config.batch_tokens is not None and config.batch_tokens < config.max_length:
        raise UserError(
            f"--batch_tokens {config.batch_tokens} is below --max_length {config.max_length}: a long text cannot fit"
        )
    if weights:
        checkpoint = fetch_weights(checkpoint)
    return config, checkpoint, tokenizer


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
        except (json.JSONDecodeError, TypeError, AttributeError):
            pass
    return int(dim) if dim else None


def local_runner(config: Any, checkpoint: Checkpoint, tokenizer: Any, device: str) -> Any:
    """The model on one device behind the runner interface (`run`, `forward_fitting`, `dim`): the single
    process path and every worker process build it here, from the same resolved config."""
    from .embedder import LocalRunner

    if config.preset == ST_PRESET:  # every module of its modules.json, as SentenceTransformer runs them
        from .st_pipeline import build_runner, read_plan

        return build_runner(read_plan(checkpoint.path), config, tokenizer, device)
    model = load_model(checkpoint, config.dtype, config.attn_implementation, device, config.trust_remote_code)
    return LocalRunner(
        model,
        tokenizer,
        pooling=config.pooling_mode,
        normalize=config.normalize,
        truncate_dim=config.truncate_dim,
        pool_in_model_dtype=config.sort_by == "reference",  # as the reference scripts pool and normalise
    )


def build_embedder(config: Any, checkpoint: Checkpoint, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    """Weights loaded (here, or once per device in worker processes) and wrapped in an Embedder.

    Returns the embedder and what loading found out, for the manifest.
    """
    import os

    from .embedder import Embedder

    hooks: dict[str, Any] = {}
    if config.preset == ST_PRESET:  # the Transformer module's strip / lower-case, the prompt length
        from .st_pipeline import embedder_hooks, read_plan

        hooks = embedder_hooks(read_plan(checkpoint.path), tokenizer)
    devices = list(config.all_devices)
    if len(devices) > 1:
        from .workers import WorkerPool

        threads = max(1, (os.cpu_count() or 1) // len(devices)) if all(d == "cpu" for d in devices) else None
        runner = WorkerPool(devices, config, str(checkpoint.path), threads)
        n_parameters, model_class = runner.n_parameters, runner.model_class
    else:
        runner = local_runner(config, checkpoint, tokenizer, devices[0])
        n_parameters = sum(p.numel() for p in runner.model.parameters())
        model_class = type(runner.model).__name__
    embedder = Embedder(
        None,
        tokenizer,
        max_length=config.max_length,
        batch_size=config.batch_size,
        batch_tokens=config.batch_tokens,
        max_padding=config.max_padding,
        sort_by=config.sort_by,
        append_eos=config.append_eos,
        empty_text=config.empty_text,
        text_suffix=config.text_suffix,
        runner=runner,
        **hooks,
    )
    found = {
        "model_class": model_class,
        "checkpoint_kind": checkpoint.kind,
        "n_parameters": n_parameters,
        "embed_dim": embedder.dim,
        "devices": devices,
    }
    return embedder, found
