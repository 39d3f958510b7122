"""A Recipe -> an Embedder: weights loaded once per device, behind one runner interface.

`RunnerFactory` is the one way a runner is built, in this process and in every worker process alike (the
pool is handed the factory, pickled, and calls it on its device): the same resolved config, the same
tokenizer loader, the same model class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..config import EvalConfig
from ..recipe.checkpoint import Checkpoint
from ..recipe.resolve import Recipe
from ..recipe.st_config import StDir
from ..recipe.tokenizer import load_tokenizer
from .embedder import Embedder
from .hf_runner import LocalRunner
from .weights import load_model


@dataclass(frozen=True)
class RunnerFactory:
    """Everything a device needs to build its runner; small and picklable (no tokenizer, no weights)."""

    config: EvalConfig
    checkpoint: Checkpoint
    st: StDir | None

    def tokenizer(self) -> Any:
        return load_tokenizer(self.checkpoint, self.config.padding_side, self.config.trust_remote_code, self.st)

    def __call__(self, device: str, tokenizer: Any = None) -> Any:
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer()
        config = self.config
        if self.st is not None:  # every module of its modules.json, as SentenceTransformer runs them
            from .st_runner import build_runner

            return build_runner(self.st, config, tokenizer, device)
        model = load_model(self.checkpoint, config.dtype, config.attn_implementation, device, config.trust_remote_code)
        return LocalRunner(
            model,
            tokenizer,
            pooling=config.pooling_mode,
            normalize=config.normalize,
            truncate_dim=config.truncate_dim,
            pool_in_model_dtype=config.sort_by == "reference",  # as the reference scripts pool and normalise
        )


def build_embedder(recipe: Recipe) -> tuple[Embedder, dict[str, Any]]:
    """Weights loaded (here, or once per device in worker processes) and wrapped in an Embedder.

    Returns the embedder and what loading found out, for the manifest."""
    config = recipe.config
    factory = RunnerFactory(config, recipe.checkpoint, recipe.st)
    devices = list(config.all_devices)
    if len(devices) > 1:
        from .workers import WorkerPool

        threads = max(1, (os.cpu_count() or 1) // len(devices)) if all(d == "cpu" for d in devices) else None
        runner: Any = WorkerPool(devices, factory, threads)
        n_parameters, model_class = runner.n_parameters, runner.model_class
    else:
        runner = factory(devices[0], recipe.tokenizer)
        n_parameters = sum(p.numel() for p in runner.model.parameters())
        model_class = type(runner.model).__name__
    embedder = Embedder(
        None,
        recipe.tokenizer,
        max_length=config.max_length,
        batch_size=config.batch_size,
        batch_tokens=config.batch_tokens,
        max_padding=config.max_padding,
        sort_by=config.sort_by,
        append_eos=bool(config.append_eos),
        texts=recipe.texts,
        runner=runner,
        prompt_length=recipe.prompt_length if recipe.st is not None and not recipe.st.include_prompt else None,
    )
    found = {
        "model_class": model_class,
        "checkpoint_kind": recipe.checkpoint.kind,
        "n_parameters": n_parameters,
        "embed_dim": embedder.dim,
        "devices": devices,
    }
    return embedder, found
