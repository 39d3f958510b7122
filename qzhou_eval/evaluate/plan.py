"""One plan per task: every setting that will be used for it, built once, before the task runs.

The runner executes the plan (the batch size every encode call gets, the exact prefix per subtask and prompt
type, the data folders); the manifest entry, the resume fingerprint and the embedding cache key are derived
from the same object, never recomputed elsewhere. A setting decided in two places drifts apart (a batch size
recorded as 32 while encode got 128); here it is decided once.

What a plan holds: the resolved recipe (`Recipe.settings`), the batch size and why it was chosen, the
devices (count and type; the count sets the reference chunking), the prefixes and their sources per subtask
(an aggregate task's subtasks are what mteb encodes), the data source and its content hash, library versions
and the harness's code identity (`provenance.code_identity`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..provenance import CODE_SETTING, EMBEDDING_PACKAGES, SCORE_PACKAGES, code_identity, fingerprint, versions_of
from ..recipe.benchmarks import BenchmarkTask
from ..recipe.resolve import Recipe
from .batch_sizes import batch_size_for
from .data import data_sha256, data_source

CACHE_FORMAT = 2
# recipe fields that change the model input string (hashed per text by the cache), not the vector of an input
TEXT_FIELDS = ("preset", "use_instruction", "instruction", "empty_text", "text_suffix", "strip_documents")


@dataclass(frozen=True)
class TaskPlan:
    name: str
    spec: BenchmarkTask
    batch_size: int
    batch_size_reason: str
    batch_size_flag: int  # --batch_size: with the recipe it decides `batch_size`, so it names the run's recipe
    devices: tuple[str, ...]
    normalize: bool  # this task type's (a preset may leave classification unnormalised, as e5's scripts do)
    strip_documents: bool  # this task's retrieval documents stripped (a retrieval task under a preset that strips)
    prefixes: dict[str, dict[str, str]]  # the name mteb encodes under (a subtask of an aggregate) -> type -> prefix
    prefix_sources: dict[str, dict[str, str]]
    data_source: str
    data_sha256: str
    recipe: dict[str, Any]  # Recipe.settings(): model, revision, content, the resolved recipe
    code: str  # provenance.code_identity("score")
    embedding_code: str  # provenance.code_identity("embedding")

    @property
    def device_type(self) -> str:
        return "+".join(sorted({d.split(":")[0] for d in self.devices}))

    @property
    def prefixes_sha256(self) -> str:
        return fingerprint(self.prefixes)

    def prefix(self, encoded_as: str, prompt_type: str | None) -> str:
        """The prefix mteb's call for (task name, prompt type) gets; a name outside the plan is a bug, not a
        reason to compute a prefix the manifest does not hold."""
        if encoded_as not in self.prefixes:
            raise RuntimeError(f"mteb encoded texts of {encoded_as!r}, which the plan of {self.name} does not hold")
        return self.prefixes[encoded_as][prompt_type or "none"]

    def encode_call(self, encoded_as: str, prompt_type: str | None) -> tuple[str, dict[str, Any]]:
        """The prefix and the embedder arguments of one encode call, as the plan decided them (the mteb
        adapter and `embed` both take them from here)."""
        kind = prompt_type or "none"
        call: dict[str, Any] = {"batch_size": self.batch_size, "normalize": self.normalize}
        if self.strip_documents and kind == "passage":
            call["strip_texts"] = True
        return self.prefix(encoded_as, kind), call

    def settings(self) -> dict[str, Any]:
        """What the task's result depends on: the resume fingerprint and the summary's `settings` hash this.
        As JSON would give it back (lists, not tuples), so a manifest's record compares equal to a fresh plan."""
        return _as_json(
            {
                **self.recipe,
                "batch_size": self.batch_size,
                "normalize_task": self.normalize,
                "device_type": self.device_type,
                "device_count": len(self.devices),
                "data_source": self.data_source,
                "data_sha256": self.data_sha256,
                "prefixes_sha256": self.prefixes_sha256,
                CODE_SETTING: self.code,
                **versions_of(SCORE_PACKAGES),
            }
        )

    def fingerprint(self) -> str:
        return fingerprint(self.settings())

    def run_settings(self) -> dict[str, Any]:
        """The settings every task of the run shares (the manifest header's `settings`; a summary groups
        results by them): the task's, without what is per task by nature (data, prefixes, batch size)."""
        per_task = ("data_source", "data_sha256", "prefixes_sha256", "normalize_task")
        return {**{k: v for k, v in self.settings().items() if k not in per_task}, "batch_size": self.batch_size_flag}

    def cache_settings(self) -> dict[str, Any]:
        """What the vector of one model input depends on: the cache key hashes this. The prefixes and the
        empty-text rule are left out on purpose (they change the model input itself, which is hashed per text),
        and so are the data and the metrics' libraries."""
        recipe = {k: v for k, v in self.recipe.items() if k not in TEXT_FIELDS}
        return _as_json(
            {
                "format": CACHE_FORMAT,
                **recipe,
                "batch_size": self.batch_size,
                "normalize_task": self.normalize,
                "device_type": self.device_type,
                "device_count": len(self.devices),
                CODE_SETTING: self.embedding_code,
                **versions_of(EMBEDDING_PACKAGES),
            }
        )

    def manifest_entry(self) -> dict[str, Any]:
        """The plan as the manifest records it (the outcome is added by the runner)."""
        return {
            "plan": {
                "batch_size": self.batch_size,
                "batch_size_reason": self.batch_size_reason,
                "normalize": self.normalize,
                "strip_documents": self.strip_documents,
                "devices": list(self.devices),
                "subtasks": list(self.spec.names) if self.spec.subtasks else [],
                "splits": list(self.spec.splits),
                "subsets": list(self.spec.subsets),
                "code": self.code,
                "embedding_code": self.embedding_code,
            },
            "prefixes": self.prefixes,
            "prefix_sources": self.prefix_sources,
            "data_source": self.data_source,
            "settings": self.settings(),
            "run_settings": self.run_settings(),
            "fingerprint": self.fingerprint(),
        }


def _as_json(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def build_plan(recipe: Recipe, spec: BenchmarkTask, data_dir: str | None) -> TaskPlan:
    config = recipe.config
    size, reason = batch_size_for(config, spec.name)
    names = spec.names
    return TaskPlan(
        name=spec.name,
        spec=spec,
        batch_size=size,
        batch_size_reason=reason,
        batch_size_flag=config.batch_size,
        devices=tuple(config.all_devices),
        normalize=config.normalize_for(spec.type),
        strip_documents=bool(config.strip_documents) and spec.type == "Retrieval",
        prefixes={n: recipe.rule.prefixes(n) for n in names},
        prefix_sources={n: recipe.rule.sources(n) for n in names},
        data_source=data_source(spec, data_dir),
        data_sha256=data_sha256(spec, data_dir),
        recipe=recipe.settings(),
        code=code_identity("score"),
        embedding_code=code_identity("embedding"),
    )


def all_prefixes(recipe: Recipe, specs: list[BenchmarkTask]) -> dict[str, str]:
    """The longest prefix of every task a run selects (checked against max_length before anything loads)."""
    return {name: max(recipe.rule.prefixes(name).values(), key=len) for s in specs for name in s.names}
