"""Texts in, float32 embeddings out: tokenizing, batching and order around a runner that holds the model.

Order of work (the reference scripts' semantics, FACTS §1): the text rule (empty text -> "Null" for qzhou,
prefix, suffix; `recipe/texts.py`); tokenize once with right truncation at `max_length`; sort; batch
(`batching.py`); forward; pool and normalise; restore input order. Nothing here knows about mteb, tasks or
prompt types. A `LocalRunner` (one device), a `SentenceTransformerRunner` or a `WorkerPool` runs the batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..config import SORT_MODES
from ..errors import UserError
from ..recipe.texts import TextRule
from .batching import plan_batches, plan_reference_batches
from .hf_runner import LocalRunner

_TOKENIZE_CHUNK = 4096


@dataclass
class EncodeStats:
    """What happened to the inputs, for the manifest: nothing is replaced or cut silently."""

    texts: int = 0
    empty_replaced: int = 0
    truncated: int = 0
    longest_tokens: int = 0
    oom_splits: int = 0
    texts_from_cache: int = 0  # with an embedding cache: texts = texts_from_cache + texts_encoded
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


class Embedder:
    """Tokenization, batching and order around a runner (one device or several)."""

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
        texts: TextRule | None = None,
        runner: Any = None,
        prompt_length: Callable[[str], int | None] | None = None,
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
        # e5-mistral: every input ends with exactly one EOS id (the tokenizer's own, or one added after truncating at
        # max_length - 1 where the tokenizer adds none)
        self.append_eos = append_eos
        self._adds_eos: bool | None = None
        self.texts = texts or TextRule()
        # sentence-transformers with a Pooling that leaves the prompt out: the prompt's token count per call
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

    def model_inputs(self, texts: list[str], prefix: str = "", strip_texts: bool = False) -> tuple[list[str], int]:
        """The exact strings the tokenizer gets (`recipe/texts.py`), and how many empty texts were replaced."""
        return self.texts.model_inputs(texts, prefix, strip_texts)

    def tokenize(self, texts: list[str], where: str = "") -> tuple[list[np.ndarray], int]:
        """Token ids per text, truncated at max_length, and how many were truncated.

        Tokenizing at max_length + 1 tells which texts are longer than max_length; only those are tokenized
        again at max_length, so the ids equal the tokenizer's own right truncation (special tokens included)
        without a second pass over every text. A text with no token at all cannot be embedded (pooling would
        read a pad position or nothing): an error naming its index, never a made-up vector.
        """
        ids: list[np.ndarray] = []
        truncated = 0
        add = self.append_eos and not self.tokenizer_adds_eos()
        limit = self.max_length - 1 if add else self.max_length
        eos = [self.tokenizer.eos_token_id] if add else []
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
        empty = [i for i, row in enumerate(ids) if len(row) == 0]
        if empty:
            shown = ", ".join(str(i) for i in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
            raise UserError(
                f"{where + ': ' if where else ''}text {shown} (of {len(texts)}) tokenizes to zero tokens "
                f"(e.g. {texts[empty[0]]!r}); it cannot be embedded. Its preset keeps empty texts and this tokenizer "
                "adds no special token: use a preset that replaces empty texts, or drop them"
            )
        return ids, truncated

    def tokenizer_adds_eos(self) -> bool:
        """Does the tokenizer end every input with its EOS id itself (e5-mistral's, with add_eos_token)? Then
        adding one more would give two: the e5 scripts meant one."""
        if self._adds_eos is None:
            eos = self.tokenizer.eos_token_id
            self._adds_eos = eos is not None and all(
                row and row[-1] == eos for row in self.tokenizer(["a", "a b c"])["input_ids"]
            )
        return self._adds_eos

    def order(self, texts: list[str], ids: list[np.ndarray]) -> np.ndarray:
        """Longest first: by characters (chars) or by tokens (least padding)."""
        lengths = [len(t) for t in texts] if self.sort_by == "chars" else [len(r) for r in ids]
        return np.argsort([-n for n in lengths])

    def encode(
        self,
        texts: list[str],
        prefix: str = "",
        stats: EncodeStats | None = None,
        on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
        batch_size: int | None = None,
        where: str = "",
        normalize: bool | None = None,
        strip_texts: bool = False,
    ) -> np.ndarray:
        """Embed `texts` (each with `prefix` in front) in input order, as float32 (n, dim).

        `batch_size` overrides the embedder's for this call (each task's plan sets it). `on_batch(positions,
        embeddings)` is called as each batch finishes, so a caller can save work before the whole call ends
        (the embedding cache flushes from it). `where` names the call in errors (task and side). `normalize`
        overrides the runner's normalisation for this call (a task type a preset does not normalise).
        """
        call = EncodeStats(texts=len(texts), texts_encoded=len(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        full, call.empty_replaced = self.model_inputs(texts, prefix, strip_texts)
        ids, call.truncated = self.tokenize(full, where)
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

        prompt_tokens = self.prompt_length(prefix) if self.prompt_length and prefix else None
        extra: dict[str, Any] = {"prompt_length": prompt_tokens} if prompt_tokens is not None else {}
        if normalize is not None:
            extra["normalize"] = normalize
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
