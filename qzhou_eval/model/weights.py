"""Weights onto a device: the native QZhou model, AutoModel, or a checkpoint's own code (only when allowed).

A model whose weights do not fit its class is refused: transformers would fill missing tensors with random
values and every score would be silently wrong.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..recipe.checkpoint import Checkpoint


def load_model(
    checkpoint: Checkpoint, dtype: str, attn_implementation: str, device: str, trust_remote_code: bool
) -> Any:
    import torch
    from transformers import AutoModel

    from .qzhou import QZhouModel

    cls = QZhouModel if checkpoint.kind == "qzhou" else AutoModel
    kwargs: dict[str, Any] = {
        "torch_dtype": getattr(torch, dtype),
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
    """Weights that do not fit the model stop the run.

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
