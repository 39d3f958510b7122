"""The mteb 1.38.30 encoder protocol on top of an Embedder.

mteb calls `encode(sentences, *, task_name, prompt_type, **kwargs)`; this class only maps
(task_name, prompt_type) to a prefix through the instruction table and keeps per-task input
statistics. mteb's own kwargs (batch_size, convert_to_tensor, ...) are ignored on purpose: the
batch size is a setting of the embedder, and the return value is always float32 numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .embedder import EncodeStats
from .instructions import PromptRule


class MtebEncoder:
    def __init__(self, embedder: Any, rule: PromptRule, model_meta: Any) -> None:
        self.embedder = embedder
        self.rule = rule
        self.mteb_model_meta = model_meta
        self.stats: dict[str, EncodeStats] = {}

    def prefix(self, task_name: str, prompt_type: Any) -> str:
        return self.rule.prefix(task_name, getattr(prompt_type, "value", prompt_type))

    def encode(self, sentences: list[str], *, task_name: str, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        stats = self.stats.setdefault(task_name, EncodeStats())
        return self.embedder.encode(list(sentences), self.prefix(task_name, prompt_type), stats=stats)


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
