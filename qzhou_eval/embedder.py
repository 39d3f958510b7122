"""Texts in, float32 embeddings out: the one place that runs the model.

Order of work (the reference scripts' semantics, FACTS §1): empty text -> "Null"; prepend the
prefix; tokenize with right truncation at `max_length`; sort longest first; batch; forward; pool and
normalise in float32; restore input order. Nothing here knows about mteb, tasks or prompt types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .pooling import get_pooler, normalize

EMPTY_REPLACEMENT = "Null"
SORT_MODES = ("chars", "tokens")
_TOKENIZE_CHUNK = 4096


@dataclass
class EncodeStats:
    """What happened to the inputs, for the manifest: nothing is replaced or cut silently."""

    texts: int = 0
    empty_replaced: int = 0
    truncated: int = 0
    longest_tokens: int = 0
    oom_splits: int = 0

    def merge(self, other: EncodeStats) -> None:
        self.texts += other.texts
        self.empty_replaced += other.empty_replaced
        self.truncated += other.truncated
        self.longest_tokens = max(self.longest_tokens, other.longest_tokens)
        self.oom_splits += other.oom_splits

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Embedder:
    """A loaded model plus the settings that turn its hidden states into sentence embeddings."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 1024,
        batch_size: int = 32,
        sort_by: str = "chars",
    ) -> None:
        if sort_by not in SORT_MODES:
            raise ValueError(f"sort_by must be one of {SORT_MODES}")
        self.model = model
        self.tokenizer = tokenizer
        self.pool = get_pooler(pooling)
        self.normalize = normalize
        self.max_length = max_length
        self.batch_size = batch_size
        self.sort_by = sort_by
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id
        self.left_pad = tokenizer.padding_side == "left"
        self.with_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
        self.max_rows: int | None = None  # set after an out-of-memory error: rows per forward that fit

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> tuple[list[np.ndarray], int]:
        """Token ids per text, truncated at max_length, and how many were truncated.

        Tokenizing at max_length + 1 tells which texts are longer than max_length; only those are
        tokenized again at max_length, so the ids equal the tokenizer's own right truncation
        (special tokens included) without a second pass over every text.
        """
        ids: list[np.ndarray] = []
        truncated = 0
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            chunk = texts[start : start + _TOKENIZE_CHUNK]
            enc = self.tokenizer(chunk, truncation=True, max_length=self.max_length + 1)["input_ids"]
            long_rows = [i for i, row in enumerate(enc) if len(row) > self.max_length]
            if long_rows:
                redo = self.tokenizer([chunk[i] for i in long_rows], truncation=True, max_length=self.max_length)
                for i, row in zip(long_rows, redo["input_ids"], strict=True):
                    enc[i] = row
                truncated += len(long_rows)
            ids.extend(np.asarray(row, dtype=np.int64) for row in enc)
        return ids, truncated

    def _batch_tensors(self, rows: list[np.ndarray], width: int) -> dict[str, torch.Tensor]:
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if self.left_pad else slice(0, len(row))
            input_ids[i, span] = row
            mask[i, span] = 1
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if self.with_token_types:
            batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        return {k: v.to(self.device) for k, v in batch.items()}

    @torch.inference_mode()
    def forward(self, rows: list[np.ndarray], width: int | None = None) -> np.ndarray:
        """One batch of token ids, padded to `width` -> pooled (and normalised) float32 embeddings."""
        batch = self._batch_tensors(rows, width or max(len(r) for r in rows))
        out = self.model(**batch)
        hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
        emb = self.pool(hidden.float(), batch["attention_mask"])
        if self.normalize:
            emb = normalize(emb)
        return emb.cpu().numpy().astype(np.float32, copy=False)

    def forward_fitting(self, rows: list[np.ndarray], stats: EncodeStats) -> np.ndarray:
        """Forward a batch; on out-of-memory, halve it (down to one text) and retry.

        The halves keep the whole batch's padded width, so every text sees exactly the input it would
        have seen in the full batch, and later batches go straight to the size that fitted.
        """
        width = max(len(r) for r in rows)
        step = self.max_rows or len(rows)
        parts = []
        start = 0
        while start < len(rows):
            chunk = rows[start : start + step]
            try:
                parts.append(self.forward(chunk, width))
            except torch.cuda.OutOfMemoryError:
                if len(chunk) == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                step = self.max_rows = max(1, len(chunk) // 2)
                stats.oom_splits += 1
                continue
            start += len(chunk)
        return np.concatenate(parts)

    def order(self, texts: list[str], ids: list[np.ndarray]) -> np.ndarray:
        """Longest first: by characters (the reference's batches) or by tokens (least padding)."""
        lengths = [len(t) for t in texts] if self.sort_by == "chars" else [len(r) for r in ids]
        return np.argsort([-n for n in lengths])

    def encode(self, texts: list[str], prefix: str = "", stats: EncodeStats | None = None) -> np.ndarray:
        """Embed `texts` (each with `prefix` in front) in input order, as float32 (n, dim)."""
        call = EncodeStats(texts=len(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        full = []
        for text in texts:
            if text == "":
                text = EMPTY_REPLACEMENT
                call.empty_replaced += 1
            full.append(prefix + text)
        ids, call.truncated = self.tokenize(full)
        call.longest_tokens = max(len(r) for r in ids)
        order = self.order(full, ids)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self.forward_fitting([ids[i] for i in idx], call)
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out).all(axis=1)).sum())
            raise FloatingPointError(f"{bad} of {len(texts)} embeddings are not finite (NaN/inf)")
        if stats is not None:
            stats.merge(call)
        return out
