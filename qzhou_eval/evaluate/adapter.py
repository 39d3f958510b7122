"""The mteb 1.38.30 encoder protocol on top of an Embedder, driven by the plan of the task in flight.

mteb calls `encode(sentences, *, task_name, prompt_type, **kwargs)`; this class looks the prefix up in the
current task's plan (per subtask for an aggregate), hands the embedder the plan's batch size, and keeps
per-task input statistics. mteb's own kwargs (convert_to_tensor, batch_size, ...) are ignored on purpose:
the plan decides, and the manifest records what the plan decided. The return value is always float32 numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model.embedder import EncodeStats
from .plan import TaskPlan


class MtebEncoder:
    def __init__(self, embedder: Any, model_meta: Any) -> None:
        self.embedder = embedder
        self.mteb_model_meta = model_meta
        self.stats: dict[str, EncodeStats] = {}
        self.plan: TaskPlan | None = None  # the task in flight
        self.cache: Any = None  # its EmbeddingCache (store/cache.py): cached vectors are not encoded again

    def start(self, plan: TaskPlan, cache: Any = None) -> None:
        self.plan, self.cache = plan, cache

    def encode(self, sentences: list[str], *, task_name: str, prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        plan = self.plan
        if plan is None:
            raise RuntimeError("MtebEncoder.encode called outside a task's plan")
        kind = getattr(prompt_type, "value", prompt_type) or "none"
        prefix, call = plan.encode_call(task_name, kind)
        call["where"] = f"{task_name} ({kind} texts)"
        stats = self.stats.setdefault(plan.name, EncodeStats())
        if self.cache is not None:
            return self.cache.encode(self.embedder, task_name, list(sentences), prefix, stats, **call)
        return self.embedder.encode(list(sentences), prefix, stats=stats, **call)


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
