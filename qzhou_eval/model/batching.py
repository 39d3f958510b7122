"""How one encode call is cut into batches: pure index arithmetic, no model.

`tokens` (default) sorts by token length, so a batch holds texts of nearly one length, and closes a batch
early rather than let padding pass `max_padding` (2 %) of its tokens; `chars` sorts the whole call by
characters into fixed-size batches. `reference` reproduces the reference scripts' batches (FACTS §1): the
call cut into chunks of min(ceil(n / devices), 3200) texts in input order, each chunk sorted by the
character length of the raw text, longest first, into batches of the size mteb passed. Each text's
embedding depends on its batch-mates only through padding, which attention masks out, so the modes differ
by float noise alone (README "Batching noise floor").
"""

from __future__ import annotations

import math

import numpy as np

REFERENCE_CHUNK = 3200  # the reference embedder's largest chunk per job


def reference_chunk(n_texts: int, devices: int) -> int:
    """Texts per job in the reference embedder: one chunk per device, at most 3200."""
    return min(math.ceil(n_texts / devices), REFERENCE_CHUNK) if n_texts else 0


def plan_batches(
    lengths: list[int],
    order: np.ndarray,
    batch_size: int,
    batch_tokens: int | None = None,
    max_padding: float = 1.0,
) -> list[np.ndarray]:
    """Cut `order` into consecutive batches.

    A batch holds at most `batch_size` texts or, when `batch_tokens` is given, as many as keep its padded
    size (texts x longest) within that budget, so short texts fill the device and long ones do not overflow
    it. It also closes early rather than let padding pass `max_padding` of its tokens.
    """
    batches: list[np.ndarray] = []
    current: list[int] = []
    widest = pad = 0
    for i in order:
        n = lengths[i]
        w = max(widest, n)
        new_pad = pad + (w - widest) * len(current) + (w - n)
        full = batch_tokens is None and len(current) >= batch_size
        over_budget = batch_tokens is not None and (len(current) + 1) * w > batch_tokens
        too_padded = new_pad > max_padding * (len(current) + 1) * w
        if current and (full or over_budget or too_padded):
            batches.append(np.array(current))
            current, w, new_pad = [], n, 0
        current.append(int(i))
        widest, pad = w, new_pad
    if current:
        batches.append(np.array(current))
    return batches


def plan_reference_batches(char_lengths: list[int], devices: int, batch_size: int) -> list[np.ndarray]:
    """The reference embedder's batches: chunks of min(ceil(n / devices), 3200) texts in input order, each
    sorted by `np.argsort(-length)` (the reference's own expression, so ties break the same way), cut into
    consecutive batches of `batch_size`."""
    n = len(char_lengths)
    chunk = reference_chunk(n, devices)
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk or 1):
        order = np.argsort([-k for k in char_lengths[start : start + chunk]]) + start
        batches.extend(order[i : i + batch_size] for i in range(0, len(order), batch_size))
    return batches
