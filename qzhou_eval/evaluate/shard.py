"""Split a suite across jobs: a deterministic, cost-balanced part of the task list per `--shard K/N`.

Costs come from `qzhou_eval.sizes` (mteb's measured task sizes, else the local data's size). Tasks go,
most costly first, to the least loaded shard (ties: the lower shard, then task name), so every job
computes the same partition from the same inputs, whatever is already finished.

`--shard auto` takes K/N from the launcher that started the job, so one command line serves every job
of a SLURM array or every rank of torchrun / accelerate launch: the same partition as the explicit K/N.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from ..errors import UserError

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT")
TORCH_VARS = ("RANK", "WORLD_SIZE")
NO_LAUNCHER = (
    "--shard auto found no launcher: it reads a SLURM array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, "
    "SLURM_ARRAY_TASK_COUNT) or torchrun / accelerate launch (RANK, WORLD_SIZE); give --shard K/N otherwise"
)


def parse_shard(value: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N, or 'auto': (position + 1, count) from the launcher's environment."""
    if (value or "").strip().lower() == "auto":
        return shard_from_env(os.environ if env is None else env)
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value or "")
    if not m or not (1 <= int(m[1]) <= int(m[2])):
        raise UserError(f"--shard must look like K/N with 1 <= K <= N, or auto, got {value!r}")
    return int(m[1]), int(m[2])


def _ints(env: Mapping[str, str], names: tuple[str, ...], launcher: str) -> list[int] | None:
    """The launcher's variables as integers; None when it did not start us; an error when half-set."""
    present = [n for n in names if env.get(n, "").strip()]
    if not present:
        return None
    if len(present) < len(names):
        missing = ", ".join(n for n in names if n not in present)
        raise UserError(f"--shard auto: {launcher} variables incomplete, {missing} not set")
    try:
        return [int(env[n]) for n in names]
    except ValueError:
        shown = ", ".join(f"{n}={env[n]!r}" for n in names)
        raise UserError(f"--shard auto: {launcher} variables are not integers ({shown})") from None


def _slurm(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(position, count) in a SLURM array; a stepped array (--array=0-15:4) counts by its step."""
    values = _ints(env, SLURM_VARS, "SLURM array")
    if values is None:
        return None
    task_id, task_min, count = values
    raw_step = env.get("SLURM_ARRAY_TASK_STEP", "1").strip() or "1"
    if not raw_step.isdigit():
        raise UserError(f"--shard auto: SLURM_ARRAY_TASK_STEP={raw_step!r} is not a positive integer")
    step = int(raw_step)
    offset = task_id - task_min
    if step < 1 or offset % step or not 0 <= offset // step < count:
        raise UserError(
            f"--shard auto: SLURM_ARRAY_TASK_ID={task_id} is not one of {count} evenly spaced ids from "
            f"SLURM_ARRAY_TASK_MIN={task_min} (step {step}); use a contiguous array such as --array=0-{count - 1}"
        )
    return offset // step, count


def _torch(env: Mapping[str, str]) -> tuple[int, int] | None:
    values = _ints(env, TORCH_VARS, "torchrun / accelerate")
    if values is None:
        return None
    rank, world = values
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"--shard auto: RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return rank, world


def shard_from_env(env: Mapping[str, str]) -> tuple[int, int]:
    """K/N of this job. torchrun inside a SLURM array job splits that job's part again: array task a of
    A running rank r of R is part a*R + r of A*R, so no two processes of the whole allocation share a task."""
    slurm, torch = _slurm(env), _torch(env)
    if slurm is None and torch is None:
        raise UserError(NO_LAUNCHER)
    pos, count = slurm or (0, 1)
    if torch is not None:
        pos, count = pos * torch[1] + torch[0], count * torch[1]
    return pos + 1, count


def launcher_device(env: Mapping[str, str], n_gpus: int) -> str | None:
    """The GPU of a torchrun / accelerate rank (LOCAL_RANK) when the machine has one for it, else None.

    Without it every rank of a node would default to cuda:0 (or spawn a worker on every GPU)."""
    local = env.get("LOCAL_RANK", "").strip()
    if not local.isdigit() or not env.get("RANK", "").strip() or int(local) >= n_gpus:
        return None
    return f"cuda:{int(local)}"


def shard_tasks(costs: dict[str, float], k: int, n: int) -> list[str]:
    """The tasks of shard k (1-based) of n, in the order given."""
    loads = [0.0] * n
    owner: dict[str, int] = {}
    for name in sorted(costs, key=lambda t: (-costs[t], t)):
        target = min(range(n), key=lambda i: (loads[i], i))
        owner[name] = target
        loads[target] += costs[name]
    return [name for name in costs if owner[name] == k - 1]
