"""The one tokenizer loader: the run, `embed`, `prompts` and every worker process load a tokenizer here.

A sentence-transformers model's tokenizer is loaded as its Transformer module loads it (its
`tokenizer_args`, `model_max_length` from `max_seq_length`, its tokenizer folder inside the model folder);
any other checkpoint's from its own folder. `padding_side` auto means left for decoder-only models (the last
position is then the last real token), the tokenizer's own side otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import UserError
from .checkpoint import Checkpoint
from .st_config import StDir


def check_files_inside(args: dict[str, Any], folder: Path, root: Path, name: str) -> None:
    """Every file a tokenizer config names (vocab_file, merges_file, tokenizer_file, ...: the loader's arguments and
    the folder's tokenizer_config.json) lies inside the model folder, whose files the revision hashes: a config may
    not point at a vocabulary elsewhere."""
    named = {k: v for k, v in args.items() if k.endswith("_file")}
    config = folder / "tokenizer_config.json"
    if config.is_file():
        try:
            raw = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = {}  # the tokenizer loader reports an unreadable config
        if isinstance(raw, dict):
            named.update({k: v for k, v in raw.items() if k.endswith("_file")})
    root = Path(os.path.normpath(root.absolute()))  # lexical: a hub snapshot's files are symlinks into its cache
    for key, value in named.items():
        if (
            isinstance(value, str)
            and value
            and not Path(os.path.normpath(folder.absolute() / value)).is_relative_to(root)
        ):
            raise UserError(f"{name}: its tokenizer's {key} {value!r} lies outside the model folder")


def load_tokenizer(checkpoint: Checkpoint, padding_side: str, trust_remote_code: bool, st: StDir | None = None) -> Any:
    from transformers import AutoTokenizer

    args: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    folder = checkpoint.path
    if st is not None:
        args.update(st.transformer_args.get("tokenizer_args") or {})  # st_config drops a saved trust_remote_code
        if st.transformer_args.get("max_seq_length") is not None and "model_max_length" not in args:
            args["model_max_length"] = st.transformer_args["max_seq_length"]
        folder = st.tokenizer_folder or st.transformer_folder
    check_files_inside(args, Path(folder), st.root if st is not None else checkpoint.path, checkpoint.path.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **args)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot load a tokenizer from {folder}: {str(exc).splitlines()[0]}") from None
    if not isinstance(getattr(tokenizer, "model_max_length", 0), int):
        raise UserError(
            f"{checkpoint.path.name}: tokenizer model_max_length {tokenizer.model_max_length!r} is not a number"
        )
    if padding_side == "auto":
        keep_own = st is not None or not checkpoint.is_decoder_only  # SentenceTransformer.encode keeps its own
        padding_side = tokenizer.padding_side if keep_own else "left"
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token_id is None:
        if st is not None:
            raise UserError(
                f"tokenizer of {checkpoint.path.name} has no pad token (SentenceTransformer.encode cannot pad it)"
            )
        if tokenizer.eos_token_id is None:
            raise UserError(f"tokenizer of {checkpoint.path.name} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
