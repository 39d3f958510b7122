"""Pooling strategies as pure tensor functions.

Every function takes the last hidden states `h` (B, L, H, already float32) and the attention mask
`mask` (B, L, 1 = real token) and returns (B, H). They are written for any padding side: the position
of a token is found from the mask, never assumed from the padding side.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import UserError


def mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average over real tokens (instruction tokens included, as in the reference)."""
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def weighted_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Weights 1..n over the n real tokens (later tokens weigh more), normalised to sum to one."""
    m = mask.to(h.dtype)
    w = torch.cumsum(m, dim=1) * m
    w = w / w.sum(dim=1, keepdim=True).clamp(min=1.0)
    return (h * w.unsqueeze(-1)).sum(dim=1)


def last_token(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token: position L-1 with left padding, length-1 with right padding."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    idx = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
    return h[torch.arange(h.shape[0], device=h.device), idx]


def first_token(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first real token (CLS for BERT-like encoders)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    big = torch.full_like(positions, mask.shape[1])
    idx = torch.where(mask.bool(), positions, big).min(dim=1).values
    return h[torch.arange(h.shape[0], device=h.device), idx]


POOLERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean,
    "weighted_mean": weighted_mean,
    "last_token": last_token,
    "eos_token": last_token,  # the reference scripts' alias
    "cls": first_token,
    "first_token": first_token,
}


def get_pooler(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Look a pooler up by name; an unknown name lists the valid ones."""
    try:
        return POOLERS[name]
    except KeyError:
        raise UserError(f"unknown pooling mode {name!r}; choose one of: {', '.join(POOLERS)}") from None


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows; a zero row stays zero instead of becoming NaN."""
    return torch.nn.functional.normalize(x, p=2, dim=-1)
