"""How often `compare` calls a difference real when there is none, per metric kind (the figures the README cites).

Each simulated task has two models that are equally good on average: per unit a shared difficulty plus each
model's own noise, so any difference between them is sampling noise of the test set. A calibrated test rejects
about alpha = 5 % of such tasks. Usage:

    python benchmarks/calibration.py [--tasks 400] [--units 200] [--resamples 1000] [--seed 0]

The tests (tests/test_paired_stats.py) pin the mean and spearman kinds; this script also reports the
non-linear pair-classification kinds, which no test pins.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qzhou_eval.report.paired import paired_task  # noqa: E402


def simulated_task(kind: str, rng: np.random.Generator, n: int) -> tuple[dict, dict]:
    """Two records of one task with no true difference between the models."""
    if kind == "mean":
        unit = rng.normal(0, 2, n)
        return {"value": unit + rng.normal(0, 0.7, n)}, {"value": unit + rng.normal(0, 0.7, n)}
    if kind == "spearman":
        gold = rng.integers(0, 6, n).astype(np.float64)
        shared = gold + rng.normal(0, 1.5, n)
        return (
            {"pred": shared + rng.normal(0, 1, n), "gold": gold},
            {"pred": shared + rng.normal(0, 1, n), "gold": gold},
        )
    label = (rng.random(n) < 0.4).astype(np.int64)
    shared = label + rng.normal(0, 1, n)

    def model() -> dict:
        base = shared + rng.normal(0, 0.7, n)
        return {"scores": np.array([base, base * 1.01]), "label": label, "position": np.arange(n)}

    return model(), model()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.tasks} null tasks of {args.units} units, {args.resamples} resamples, alpha 0.05")
    print(f"{'kind':<14}{'p < 0.05':>10}{'CI excl. 0':>12}{'seconds':>9}")
    for kind in ("mean", "spearman", "max_accuracy", "max_ap"):
        rng = np.random.default_rng(args.seed)
        by_p = by_ci = 0
        start = time.perf_counter()
        for i in range(args.tasks):
            a, b = simulated_task(kind, rng, args.units)
            result = paired_task(kind, a, b, task=f"{kind}{i}", resamples=args.resamples, seed=args.seed)
            by_p += result.p_value < 0.05
            by_ci += not (result.ci_low <= 0.0 <= result.ci_high)
        took = time.perf_counter() - start
        print(f"{kind:<14}{by_p / args.tasks:>10.3f}{by_ci / args.tasks:>12.3f}{took:>9.1f}")


if __name__ == "__main__":
    main()
