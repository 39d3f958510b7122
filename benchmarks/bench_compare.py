"""How long a whole MTEB(eng, v2) comparison of two models takes: synthetic records at the benchmark's real sizes.

Units per task, from data/task_stats.json (mteb's own statistics): STS and pair classification one unit per pair
(`samples`), classification one per test example (`samples`) with mteb's 10 experiments, summarization one per text
(`samples`), clustering 10 subsamples per level, retrieval and reranking one per distinct text (an upper bound on the
queries, which the statistics do not separate from the documents), capped at 10,000 (the largest query sets of
mteb's retrieval tasks are about that size; documents are not units). Pair classification scores are mteb's five
similarity families computed from synthetic unit-length embeddings (cosine, dot and euclidean then rank alike, as
they do for a normalising model; manhattan does not).
Each task is compared exactly as `compare` compares it (`report.paired.compare`: paired bootstrap and randomization,
both at --resamples), then the means. Prints the time per task type and in all.

    python benchmarks/bench_compare.py [--resamples 10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from qzhou_eval.recipe.benchmarks import benchmark_listing  # noqa: E402
from qzhou_eval.report.paired import compare, summarize_means  # noqa: E402

KIND = {
    "Retrieval": "mean",
    "Reranking": "mean",
    "Clustering": "mean",
    "Summarization": "mean",
    "STS": "spearman",
    "PairClassification": "max_ap",
    "Classification": "accuracy",
}


def units(stats: dict, task: str, task_type: str, split: str) -> int:
    cell = stats["tasks"][task]["splits"][split]
    if task_type in ("STS", "PairClassification", "Classification", "Summarization"):
        return int(cell.get("samples") or cell["texts"])
    if task_type == "Clustering":
        return 20 if "Hierarchical" in task else 10
    return min(int(cell["texts"]), 10_000)


def records(kind: str, n: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Two models' data for one task: correlated with each other, as two embedders' units are."""
    if kind == "mean":
        base = rng.uniform(0, 1, n)
        return {"value": base}, {"value": np.clip(base + rng.normal(0.01, 0.1, n), 0, 1)}
    if kind == "spearman":
        gold = rng.integers(0, 6, n).astype(float)
        pred = gold + rng.normal(0, 2, n)
        return {"pred": pred, "gold": gold}, {"pred": pred + rng.normal(0, 1, n), "gold": gold}
    if kind == "max_ap":
        label = (rng.uniform(size=n) < 0.3).astype(float)
        position = np.arange(n, dtype=float)
        return (
            {"scores": families(label, rng), "label": label, "position": position},
            {"scores": families(label, rng), "label": label, "position": position},
        )
    correct = (rng.uniform(size=(10, n)) < 0.7).astype(float)
    flipped = np.where(rng.uniform(size=(10, n)) < 0.1, 1 - correct, correct)
    return {"correct": correct}, {"correct": flipped}


def families(label: np.ndarray, rng: np.random.Generator, dim: int = 32) -> np.ndarray:
    """mteb's five score families (similarity, cosine, manhattan, euclidean, dot; higher = more similar) of
    unit-length float32 embedding pairs, the positive pairs closer."""
    a = rng.normal(size=(len(label), dim)).astype(np.float32)
    b = (a * (0.6 * label[:, None] + 0.2) + rng.normal(size=a.shape)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(1)
    return np.stack([cos, cos, -np.abs(a - b).sum(1), -np.linalg.norm(a - b, axis=1), (a * b).sum(1)]).astype(float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--benchmark", default="MTEB(eng, v2)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    stats = json.loads((REPO / "data" / "task_stats.json").read_text())
    rng = np.random.default_rng(0)
    seconds: dict[str, float] = {}
    deltas, types, boots = {}, {}, {}
    started = time.perf_counter()
    for task, task_type, splits, _ in benchmark_listing(args.benchmark):
        kind, n = KIND[task_type], units(stats, task, task_type, splits[0])
        a, b = records(kind, n, rng)
        ids = np.array([f"u{i}" for i in range(n)])
        t = time.perf_counter()
        result = compare(task, (kind, ids, a), (kind, ids, b), resamples=args.resamples)
        seconds[task_type] = seconds.get(task_type, 0.0) + time.perf_counter() - t
        deltas[task], types[task], boots[task] = result.delta, task_type, result.boot_deltas
        print(f"{task:42s} {kind:9s} {n:>8,} units {time.perf_counter() - t:7.2f} s", flush=True)
    t = time.perf_counter()
    summarize_means(deltas, types, boots, resamples=args.resamples)
    seconds["means"] = time.perf_counter() - t
    total = time.perf_counter() - started
    print(f"{args.benchmark}: {len(deltas)} tasks, two models, {args.resamples} resamples: {total:.1f} s in all")
    for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:20s} {value:7.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"total_s": total, "by_type_s": seconds, "resamples": args.resamples}))


if __name__ == "__main__":
    main()
