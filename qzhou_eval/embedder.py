"""Texts in, float32 embeddings out: the one place that runs the model.

Order of work (the reference scripts' semantics, FACTS §1): empty text -> "Null"; prepend the
prefix; tokenize once with right truncation at `max_length`; sort longest first; batch; forward;
pool and normalise in float32; restore input order. Nothing here knows about mteb, tasks or prompt
types. `Embedder` plans the batches; a `LocalRunner` (or a pool of them, `workers.py`) runs them.

Sorting: `tokens` (default) sorts by token length, so a batch holds texts of nearly one length, and
closes a batch early rather than let padding pass `max_padding` (2 %) of its tokens; `chars` sorts the
whole call by characters into fixed-size batches. `reference` reproduces the reference scripts' batches
(FACTS §1): the call cut into chunks of min(ceil(n / devices), 3200) texts in input order, each chunk
sorted by the character length of the raw text, longest first, into batches of the size mteb passed
(`encode(..., batch_size=)`), pooled and normalised in the model dtype, then cast to float32. Each
text's embedding depends on its batch-mates only through padding, which attention masks out, so the
modes differ by float noise alone; README "Batching" has the measured size of that noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .pooling import get_pooler, normalize

EMPTY_REPLACEMENT = "Null"
SORT_MODES = ("tokens", "chars", "reference")
REFERENCE_CHUNK = 3200  # the reference embedder's largest chunk per job
_TOKENIZE_CHUNK = 4096


@dataclass
class EncodeStats:
    """What happened to the inputs, for the manifest: nothing is replaced or cut silently."""

    texts: int = 0
    empty_replaced: int = 0
    truncated: int = 0
    longest_tokens: int = 0
    oom_splits: int = 0
    texts_from_cache: int = 0  # with an embedding cache (cache.py): texts = texts_from_cache + texts_encoded
    texts_encoded: int = 0

    def merge(self, other: EncodeStats) -> None:
        self.texts += other.texts
        self.texts_from_cache += other.texts_from_cache
        self.texts_encoded += other.texts_encoded
        self.empty_replaced += other.empty_replaced
        self.truncated += other.truncated
        self.longest_tokens = max(self.longest_tokens, other.longest_tokens)
        self.oom_splits += other.oom_splits

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class LocalRunner:
    """A model on one device: batches of token ids -> pooled, normalised float32 rows."""

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
        # the reference scripts pool and normalise in the model dtype (bf16), then cast (sort_by="reference")
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
        hidden = hidden if self.pool_in_model_dtype else hidden.float()
        emb = self.pool(hidden, batch["attention_mask"], batch["input_ids"])
        if self.truncate_dim is not None:  # Matryoshka: truncate first, then normalise
            emb = emb[:, : self.truncate_dim]
        if self.normalize:
            emb = normalize(emb)
        return emb.float().cpu().numpy()

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

    def run(
        self,
        batches: list[list[np.ndarray]],
        stats: EncodeStats,
        on_result: Callable[[int, np.ndarray], None] | None = None,
    ) -> list[np.ndarray]:
        """Every batch in turn; `on_result(batch number, embeddings)` hears of each as it finishes."""
        out = []
        for i, rows in enumerate(batches):
            out.append(self.forward_fitting(rows, stats))
            if on_result is not None:
                on_result(i, out[-1])
        return out


def plan_batches(
    lengths: list[int],
    order: np.ndarray,
    batch_size: int,
    batch_tokens: int | None = None,
    max_padding: float = 1.0,
) -> list[np.ndarray]:
    """Cut `order` into consecutive batches.

    A batch holds at most `batch_size` texts or, when `batch_tokens` is given, as many as keep its
    padded size (texts x longest) within that budget, so short texts fill the device and long ones
    do not overflow it. It also closes early rather than let padding pass `max_padding` of its tokens.
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
    """The reference embedder's batches: chunks of min(ceil(n / devices), 3200) texts in input order,
    each sorted by `np.argsort(-length)` (the reference's own expression, so ties break the same way),
    cut into consecutive batches of `batch_size`."""
    n = len(char_lengths)
    chunk = min(math.ceil(n / devices), REFERENCE_CHUNK)
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        order = np.argsort([-k for k in char_lengths[start : start + chunk]]) + start
        batches.extend(order[i : i + batch_size] for i in range(0, len(order), batch_size))
    return batches


class Embedder:
    """Tokenization, batching and order around a runner that holds the model (one device or several)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int = 1024,
        batch_size: int = 32,
        sort_by: str = "tokens",
        batch_tokens: int | None = None,
        max_padding: float = 0.02,
        truncate_dim: int | None = None,
        append_eos: bool = False,
        empty_text: str | None = EMPTY_REPLACEMENT,
        text_suffix: str = "",
        runner: Any = None,
        text_transform: Callable[[str], str] | None = None,
        prompt_length: Callable[[str], int] | None = None,
    ) -> None:
        if sort_by not in SORT_MODES:
            raise ValueError(f"sort_by must be one of {SORT_MODES}")
        if batch_tokens is not None and batch_tokens < max_length:
            raise ValueError(f"batch_tokens ({batch_tokens}) must be at least max_length ({max_length})")
        self.tokenizer = tokenizer
        self.runner = runner or LocalRunner(
            model,
            tokenizer,
            pooling=pooling,
            normalize=normalize,
            truncate_dim=truncate_dim,
            pool_in_model_dtype=sort_by == "reference",
        )
        if sort_by == "reference" and getattr(self.runner, "pool_in_model_dtype", True) is False:
            raise ValueError("sort_by='reference' needs a runner that pools in the model dtype (pool_in_model_dtype)")
        # the reference cuts each call into one chunk per device (a WorkerPool has several)
        self.n_devices = len(getattr(self.runner, "devices", None) or [None])
        self.max_length = max_length
        self.append_eos = append_eos  # e5-mistral: truncate at max_length - 1, then add the EOS id
        # a preset's empty-text rule: what "" becomes ("Null" for qzhou; None keeps it, as most recipes do),
        # and a text appended after every text before tokenizing (gte-Qwen2 in mteb: "<|endoftext|>")
        self.empty_text = empty_text
        self.text_suffix = text_suffix
        # sentence-transformers (st_pipeline.py): the Transformer module's strip / lower-case before its
        # tokenizer, and the prompt's token count for a Pooling that leaves the prompt out
        self.text_transform = text_transform
        self.prompt_length = prompt_length
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.sort_by = sort_by
        # character-sorted batches (chars, reference) are fixed-size: no padding cap there
        self.max_padding = max_padding if sort_by == "tokens" else 1.0
        self.last_padding: tuple[int, int] = (0, 0)  # (padded tokens, real tokens) of the last call

    @property
    def dim(self) -> int:
        return self.runner.dim

    def close(self) -> None:
        """Stop worker processes, if the runner has any."""
        close = getattr(self.runner, "close", None)
        if close is not None:
            close()

    def tokenize(self, texts: list[str]) -> tuple[list[np.ndarray], int]:
        """Token ids per text, truncated at max_length, and how many were truncated.

        Tokenizing at max_length + 1 tells which texts are longer than max_length; only those are
        tokenized again at max_length, so the ids equal the tokenizer's own right truncation
        (special tokens included) without a second pass over every text.
        """
        ids: list[np.ndarray] = []
        truncated = 0
        limit = self.max_length - 1 if self.append_eos else self.max_length
        eos = [self.tokenizer.eos_token_id] if self.append_eos else []
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            chunk = texts[start : start + _TOKENIZE_CHUNK]
            enc = self.tokenizer(chunk, truncation=True, max_length=limit + 1)["input_ids"]
            long_rows = [i for i, row in enumerate(enc) if len(row) > limit]
            if long_rows:
                redo = self.tokenizer([chunk[i] for i in long_rows], truncation=True, max_length=limit)
                for i, row in zip(long_rows, redo["input_ids"], strict=True):
                    enc[i] = row
                truncated += len(long_rows)
            ids.extend(np.asarray(list(row) + eos, dtype=np.int64) for row in enc)
        return ids, truncated

    def order(self, texts: list[str], ids: list[np.ndarray]) -> np.ndarray:
        """Longest first: by characters (the reference's batches) or by tokens (least padding)."""
        lengths = [len(t) for t in texts] if self.sort_by == "chars" else [len(r) for r in ids]
        return np.argsort([-n for n in lengths])

    def model_inputs(self, texts: list[str], prefix: str = "") -> tuple[list[str], int]:
        """The exact strings the tokenizer gets (empty-text rule, prefix, suffix), and how many were replaced.

        The embedding cache keys vectors by these strings, so this is the one place that builds them.
        """
        full, empty = [], 0
        for text in texts:
            if text == "" and self.empty_text is not None:
                text = self.empty_text
                empty += 1
            full.append(prefix + text + self.text_suffix)
        if self.text_transform is not None:
            full = [self.text_transform(t) for t in full]
        return full, empty

    def encode(
        self,
        texts: list[str],
        prefix: str = "",
        stats: EncodeStats | None = None,
        on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed `texts` (each with `prefix` in front) in input order, as float32 (n, dim).

        `batch_size` overrides the embedder's for this call (the reference mode gets mteb's per call).

        `on_batch(positions, embeddings)` is called as each batch finishes (positions index `texts`), so
        a caller can save work before the whole call ends (the embedding cache flushes from it).
        """
        call = EncodeStats(texts=len(texts), texts_encoded=len(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        full, call.empty_replaced = self.model_inputs(texts, prefix)
        ids, call.truncated = self.tokenize(full)
        lengths = [len(r) for r in ids]
        call.longest_tokens = max(lengths)
        size = batch_size or self.batch_size
        if self.sort_by == "reference":  # keyed by the raw texts, as the reference sorts before "Null" and prefix
            batches = plan_reference_batches([len(t) for t in texts], self.n_devices, size)
        else:
            batches = plan_batches(lengths, self.order(full, ids), size, self.batch_tokens, self.max_padding)
        padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
        self.last_padding = (padded - sum(lengths), padded)

        def report(i: int, emb: np.ndarray) -> None:
            if on_batch is not None:
                on_batch(batches[i], emb)

        extra = {"prompt_length": self.prompt_length(prefix)} if self.prompt_length and prefix else {}
        results = self.runner.run([[ids[i] for i in b] for b in batches], call, report, **extra)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx, emb in zip(batches, results, strict=True):
            out[idx] = emb
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out).all(axis=1)).sum())
            raise FloatingPointError(f"{bad} of {len(texts)} embeddings are not finite (NaN/inf)")
        if stats is not None:
            stats.merge(call)
        return out
