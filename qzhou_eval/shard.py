"""Split a suite across jobs: a deterministic, cost-balanced part of the task list per `--shard K/N`.

Cost of a task: the size on disk of its local data when `--data_dir` holds it, else the estimate in
`data/task_costs.json` (rough dataset sizes). Tasks go, most costly first, to the least loaded shard
(ties: the lower shard, then task name), so every job computes the same partition from the same
inputs, whatever is already finished.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from .errors import UserError

COSTS_FILE = Path(__file__).resolve().parent.parent / "data" / "task_costs.json"
DEFAULT_COST = 50.0


@cache
def _estimates() -> dict[str, float]:
    return {k: float(v) for k, v in json.loads(COSTS_FILE.read_text())["tasks"].items()}


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def task_cost(name: str, dataset_path: str, data_dir: str | None) -> float:
    """Relative cost of a task, in thousands of texts (estimate) or in kB of local data."""
    if data_dir:
        local = Path(data_dir) / dataset_path
        if local.is_dir():
            qrels = Path(str(local) + "-qrels")
            return (_dir_bytes(local) + (_dir_bytes(qrels) if qrels.is_dir() else 0)) / 1000
    return _estimates().get(name, DEFAULT_COST)


def parse_shard(value: str) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not m or not (1 <= int(m[1]) <= int(m[2])):
        raise UserError(f"--shard must look like K/N with 1 <= K <= N, got {value!r}")
    return int(m[1]), int(m[2])


def shard_tasks(costs: dict[str, float], k: int, n: int) -> list[str]:
    """The tasks of shard k (1-based) of n, in the order given."""
    loads = [0.0] * n
    owner: dict[str, int] = {}
    for name in sorted(costs, key=lambda t: (-costs[t], t)):
        target = min(range(n), key=lambda i: (loads[i], i))
        owner[name] = target
        loads[target] += costs[name]
    return [name for name in costs if owner[name] == k - 1]
