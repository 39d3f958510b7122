"""Pooling strategies as pure tensor functions.

Every function takes the last hidden states `h` (B, L, H), the attention mask `mask` (B, L, 1 = real
token) and the token ids `ids` (B, L; only `bos_token` reads them) and returns (B, H) in the dtype of
`h`: float32 by default, the model's own dtype (bf16) when the caller reproduces the reference scripts,
which pool in bf16 (FACTS §1). Counts and weights are kept exact (integer / float32) whatever `h` is.
They are written for any padding side: a token's position is found from the mask, never assumed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..config import POOLING_MODES
from ..errors import UserError

Pooler = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def mean(h: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Average over real tokens (instruction tokens included, as in the reference).

    The divisor is the integer token count, so a bf16 run divides exactly as the reference's
    `h[i, -n:].sum(0) / n` does (bit-identical on CPU for left padding, checked in tests/test_pooling.py).
    """
    keep = mask.bool().unsqueeze(-1)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    return h.masked_fill(~keep, 0).sum(dim=1) / count


def weighted_mean(h: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Weights 1..n over the n real tokens (later tokens weigh more), normalised to sum to one.

    The weights are float32 even for a bf16 `h` (as in the reference, whose weight tensor is float32, so
    its weighted mean comes out float32): bf16 cannot even count past 256.
    """
    m = mask.float()
    w = torch.cumsum(m, dim=1) * m
    w = w / w.sum(dim=1, keepdim=True).clamp(min=1.0)
    return (h * w.unsqueeze(-1)).sum(dim=1)


def last_token(h: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """The last real token: position L-1 with left padding, length-1 with right padding."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    idx = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
    return h[torch.arange(h.shape[0], device=h.device), idx]


def first_token(h: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """The first real token (CLS for BERT-like encoders)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    big = torch.full_like(positions, mask.shape[1])
    idx = torch.where(mask.bool(), positions, big).min(dim=1).values
    return h[torch.arange(h.shape[0], device=h.device), idx]


def bos_token(h: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor | None = None, *, bos_id: int) -> torch.Tensor:
    """The state at the real position whose id is the BOS id (the reference's `bos_token` mode).

    The reference indexes `h[input_ids == bos_id]`, which gives one row per text only when every text
    holds exactly one BOS; here the first real BOS position is taken, and a text without one is an error
    instead of a silently misaligned row.
    """
    if ids is None:
        raise ValueError("bos_token pooling needs the token ids")
    hit = mask.bool() & (ids == bos_id)
    missing = int((~hit.any(dim=1)).sum())
    if missing:
        raise ValueError(f"bos_token pooling: {missing} of {len(ids)} texts hold no BOS token (id {bos_id})")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    idx = torch.where(hit, positions, torch.full_like(positions, mask.shape[1])).min(dim=1).values
    return h[torch.arange(h.shape[0], device=h.device), idx]


POOLERS: dict[str, Callable[..., torch.Tensor]] = {
    "mean": mean,
    "weighted_mean": weighted_mean,
    "last_token": last_token,
    "eos_token": last_token,  # the reference scripts' alias
    "bos_token": bos_token,  # the reference scripts' name; needs the tokenizer's BOS id
    "cls": first_token,
    "first_token": first_token,
}
if tuple(POOLERS) != POOLING_MODES:  # config.POOLING_MODES is the one list the flags and checks use
    raise ImportError(f"pooling functions {tuple(POOLERS)} do not match config.POOLING_MODES {POOLING_MODES}")


def get_pooler(name: str, bos_id: int | None = None) -> Pooler:
    """Look a pooler up by name; an unknown name lists the valid ones. `bos_token` needs `bos_id`."""
    try:
        pooler = POOLERS[name]
    except KeyError:
        raise UserError(f"unknown pooling mode {name!r}; choose one of: {', '.join(POOLERS)}") from None
    if pooler is bos_token:
        if bos_id is None:
            raise UserError("--pooling_mode bos_token needs a tokenizer with a BOS token; this one has none")
        return functools.partial(bos_token, bos_id=bos_id)
    return pooler


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows (in the dtype of `x`); a zero row stays zero instead of becoming NaN."""
    return torch.nn.functional.normalize(x, p=2, dim=-1)
