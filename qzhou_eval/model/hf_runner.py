"""A transformers model on one device: batches of token ids -> pooled, normalised float32 rows.

The runner interface the Embedder drives (`run`, `forward`, `forward_fitting`, `dim`, `pad_id`,
`left_pad`); `st_runner.py` implements it over sentence-transformers modules and `workers.py` over
several devices. Pooling and normalising run in float32 (FACTS §8: bf16 pooling costs cos ~0.999996),
except when reproducing the reference scripts, which pool and normalise in the model dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .pooling import get_pooler, normalize


class LocalRunner:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        truncate_dim: int | None = None,
        pool_in_model_dtype: bool = False,
    ) -> None:
        self.model = model
        self.pool = get_pooler(pooling, getattr(tokenizer, "bos_token_id", None))
        self.normalize = normalize
        self.pool_in_model_dtype = pool_in_model_dtype
        self.device = next(model.parameters()).device
        hidden = int(model.config.hidden_size)
        if truncate_dim is not None and truncate_dim > hidden:
            raise ValueError(f"truncate_dim {truncate_dim} exceeds the model's {hidden} dimensions")
        self.truncate_dim = truncate_dim
        self.dim = truncate_dim or hidden
        self._take_padding(tokenizer)

    def _take_padding(self, tokenizer: Any) -> None:
        """How batches are padded: the tokenizer's pad id and side, token types where the model takes them."""
        self.pad_id = tokenizer.pad_token_id
        self.left_pad = tokenizer.padding_side == "left"
        self.with_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", [])
        self.max_rows: int | None = None  # set after an out-of-memory error: rows per forward that fit
        self.call_normalize: bool | None = None  # one `run` call's own normalisation (a task type's), if any

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
        """One batch of token ids, padded to `width` -> pooled (and normalised, unless the call says otherwise)
        float32 embeddings."""
        batch = self._batch_tensors(rows, width or max(len(r) for r in rows))
        out = self.model(**batch)
        hidden = out[0] if isinstance(out, tuple) else out.last_hidden_state
        hidden = hidden if self.pool_in_model_dtype else hidden.float()
        emb = self.pool(hidden, batch["attention_mask"], batch["input_ids"])
        if self.truncate_dim is not None:  # Matryoshka: truncate first, then normalise
            emb = emb[:, : self.truncate_dim]
        if self.normalize if self.call_normalize is None else self.call_normalize:
            emb = normalize(emb)
        return emb.float().cpu().numpy()

    def forward_fitting(self, rows: list[np.ndarray], stats: Any) -> np.ndarray:
        """Forward a batch; on out-of-memory, halve it (down to one text) and retry.

        The halves keep the whole batch's padded width, so every text sees exactly the input it would have
        seen in the full batch, and later batches go straight to the size that fitted.
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

    def run(
        self,
        batches: list[list[np.ndarray]],
        stats: Any,
        on_result: Callable[[int, np.ndarray], None] | None = None,
        normalize: bool | None = None,
    ) -> list[np.ndarray]:
        """Every batch in turn; `on_result(batch number, embeddings)` hears of each as it finishes. `normalize`
        overrides the runner's own for this call (a preset that normalises some task types only)."""
        self.call_normalize = normalize
        try:
            out = []
            for i, rows in enumerate(batches):
                out.append(self.forward_fitting(rows, stats))
                if on_result is not None:
                    on_result(i, out[-1])
            return out
        finally:
            self.call_normalize = None
