"""The mteb 1.38.30 encoder protocol on top of an Embedder.

mteb calls `encode(sentences, *, task_name, prompt_type, **kwargs)`; this class only maps
(task_name, prompt_type) to a prefix through the instruction table and keeps per-task input
statistics. mteb's own kwargs (convert_to_tensor, ...) are ignored on purpose and the return value
is always float32 numpy; the batch size is a setting of the embedder, except with sort_by="reference",
which batches at the size mteb passes, as the reference scripts did (see `reference_batch.py`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .embedder import EncodeStats
from .instructions import PromptRule

REFERENCE_DEFAULT_BATCH = 32  # the reference embedder's own default, used while mteb passes no batch_size


class MtebEncoder:
    def __init__(self, embedder: Any, rule: PromptRule, model_meta: Any) -> None:
        self.embedder = embedder
        self.rule = rule
        self.mteb_model_meta = model_meta
        self.stats: dict[str, EncodeStats] = {}
        self.cache: Any = None  # an EmbeddingCache (cache.py): cached vectors are not encoded again

    def prefix(self, task_name: str, prompt_type: Any) -> str:
        return self.rule.prefix(task_name, getattr(prompt_type, "value", prompt_type))

    def encode(self, sentences: list[str], *, task_name: str, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        stats = self.stats.setdefault(task_name, EncodeStats())
        extra = {}
        if getattr(self.embedder, "sort_by", None) == "reference":  # the reference batches at mteb's size
            extra["batch_size"] = kwargs.get("batch_size", REFERENCE_DEFAULT_BATCH)
        prefix = self.prefix(task_name, prompt_type)
        if self.cache is not None:
            return self.cache.encode(self.embedder, task_name, list(sentences), prefix, stats, **extra)
        return self.embedder.encode(list(sentences), prefix, stats=stats, **extra)


def model_meta(
    name: str,
    revision: str,
    embed_dim: int | None,
    max_tokens: int | None,
    n_parameters: int | None,
    use_instructions: bool,
) -> Any:
    """A ModelMeta that makes mteb write `<org__name>/<revision>/`, never `no_model_name_available`."""
    from mteb.model_meta import ModelMeta

    return ModelMeta(
        name=name,
        revision=revision,
        release_date=None,
        languages=None,
        n_parameters=n_parameters,
        memory_usage_mb=None,
        max_tokens=max_tokens,
        embed_dim=embed_dim,
        license=None,
        open_weights=True,
        public_training_code=None,
        public_training_data=None,
        framework=["PyTorch"],
        similarity_fn_name="cosine",
        use_instructions=use_instructions,
        training_datasets=None,
    )
