"""The one tokenizer loader: the run, `embed`, `prompts` and every worker process load a tokenizer here.

A sentence-transformers model's tokenizer is loaded as its Transformer module loads it (its
`tokenizer_args`, `model_max_length` from `max_seq_length`, its tokenizer folder inside the model folder);
any other checkpoint's from its own folder. `padding_side` auto means left for decoder-only models (the last
position is then the last real token), the tokenizer's own side otherwise.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from .checkpoint import Checkpoint
from .st_config import StDir


def load_tokenizer(checkpoint: Checkpoint, padding_side: str, trust_remote_code: bool, st: StDir | None = None) -> Any:
    from transformers import AutoTokenizer

    args: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    folder = checkpoint.path
    if st is not None:
        args.update(st.transformer_args.get("tokenizer_args") or {})
        args["trust_remote_code"] = trust_remote_code  # a saved config may not turn it on
        if st.transformer_args.get("max_seq_length") is not None and "model_max_length" not in args:
            args["model_max_length"] = st.transformer_args["max_seq_length"]
        folder = st.tokenizer_folder or st.transformer_folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **args)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"cannot load a tokenizer from {folder}: {str(exc).splitlines()[0]}") from None
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
