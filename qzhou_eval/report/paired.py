"""Is the difference real? Paired resampling of per-unit task data for two embedding models.

Two models evaluated on the same task see the same units (queries, sentence pairs, test examples), so
the honest question is whether model b beats baseline a on *these* units beyond what unit-to-unit luck
explains. Unit difficulty is shared by both models; resampling the two models independently would
count it twice and hide real differences. Everything here therefore keeps units paired:

- ``align`` pairs two records by unit id, never by position.
- ``paired_task`` gives the delta (b - a), a percentile interval from a paired bootstrap (the same
  resampled units for both models) and a p-value from a paired approximate randomization test.
- ``holm`` corrects the per-task p-values for testing many tasks.
- ``summarize_means`` gives intervals for means over tasks (Mean(Task), Mean(TaskType), per type), once
  over units (joint unit resampling in every task) and once over tasks (a different benchmark draw).

Resampling is seeded per task from (seed, stable hash of the task name), so a task's result is
reproducible and independent of which other tasks are compared.

The randomization test: in each of R draws every unit swaps its a/b data with probability 1/2, giving
pseudo-models a', b' and delta' = metric(b') - metric(a'); p = (1 + #{|delta'| >= |delta| - 1e-12}) /
(1 + R), which is never 0 and is exactly 1 for identical models. For the linear kinds a swap flips the
sign of the unit's difference; for the others a pseudo-model is a 0/1 mask over both models' units side
by side, with scores first put on a common rank scale (``_scale_free``). The percentile interval is
the usual one; under no difference at n = 200 it excludes 0 in 5.7 % of 2,000 simulated tasks of the mean kind
(`benchmarks/calibration.py`), as percentile intervals of a mean do at small n.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import rankdata

from qzhou_eval.errors import UserError
from qzhou_eval.store.metrics import Data, Prepared, chunk_rows, n_units, prepare, score, unit_values

Record = tuple[str, np.ndarray, Data]
"""A model's task record: (metric kind, unit ids (n,), per-unit data)."""

MEAN_TASK = "Mean(Task)"
MEAN_TYPE = "Mean(TaskType)"

# Keys that describe the task, not the model: both records must agree on them once aligned by id, and a
# mismatch means the ids do not identify the same units.
_SHARED_KEYS = {
    "spearman": ("gold",),
    "pearson": ("gold",),
    "max_ap": ("label",),
    "max_accuracy": ("label",),
    "f1_macro": ("gold",),
    "f1_weighted": ("gold",),
}
# |delta_perm| >= |delta| - TOLERANCE counts as "at least as extreme": permuted deltas that equal the
# observed one up to float summation order must count, or an A/A comparison would not give p = 1.
TOLERANCE = 1e-12
_BOOTSTRAP, _RANDOMIZATION, _TASK_RESAMPLING = 0, 1, 2


@dataclass(frozen=True)
class Aligned:
    """Two records restricted to their shared unit ids, both in sorted-id order."""

    ids: np.ndarray
    data_a: dict[str, np.ndarray]
    data_b: dict[str, np.ndarray]
    n_only_a: int
    n_only_b: int


@dataclass(frozen=True)
class PairedResult:
    """One task, model b against baseline a. ``boot_deltas`` feed the means over tasks."""

    task: str
    kind: str
    n: int
    score_a: float
    score_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    resamples: int
    boot_deltas: np.ndarray = field(repr=False)
    n_only_a: int = 0
    n_only_b: int = 0
    perm_deltas: np.ndarray | None = field(default=None, repr=False)  # the randomization test's, for combining cells


@dataclass(frozen=True)
class MeanSummary:
    """A mean over tasks: its delta, the interval over units, and the interval over tasks."""

    delta: float
    unit_ci: tuple[float, float] | None
    task_ci: tuple[float, float]
    n_tasks: int


def _take_units(data: Data, index: np.ndarray) -> dict[str, np.ndarray]:
    return {key: np.take(np.asarray(value), index, axis=-1) for key, value in data.items()}


def _check_unique(ids: np.ndarray, side: str) -> None:
    if np.unique(ids).shape[0] != ids.shape[0]:
        raise UserError(f"record {side} repeats unit ids; ids must identify units uniquely")


def align(ids_a: np.ndarray, data_a: Data, ids_b: np.ndarray, data_b: Data) -> Aligned:
    """Pair two records by unit id: keep the shared ids, sorted, and say how many were not shared.

    Position is never trusted: two runs may list units in different orders (sharding, resumed runs),
    and pairing by position would silently compare different units.
    """
    ids_a, ids_b = np.asarray(ids_a).astype(str), np.asarray(ids_b).astype(str)
    for ids, data, side in ((ids_a, data_a, "a"), (ids_b, data_b, "b")):
        _check_unique(ids, side)
        if n_units(data) != ids.shape[0]:
            raise UserError(f"record {side} has {ids.shape[0]} ids but {n_units(data)} units of data")
    shared, index_a, index_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    if shared.shape[0] == 0:
        raise UserError("the two records share no unit ids")
    return Aligned(
        ids=shared,
        data_a=_take_units(data_a, index_a),
        data_b=_take_units(data_b, index_b),
        n_only_a=ids_a.shape[0] - shared.shape[0],
        n_only_b=ids_b.shape[0] - shared.shape[0],
    )


def task_seed(seed: int, task: str) -> list[int]:
    """Entropy for a task's generators: stable across processes (no Python hash randomization)."""
    digest = hashlib.blake2b(task.encode("utf-8"), digest_size=8).digest()
    return [seed, int.from_bytes(digest, "little")]


def bootstrap_counts(rng: np.random.Generator, rows: int, n: int, keep: int | None = None) -> np.ndarray:
    """Multinomial(n, uniform) counts: how often each unit is drawn in each bootstrap resample.

    With ``keep`` < n only the counts of the first ``keep`` units are returned (rows, keep), drawn
    exactly: the number of draws landing among them is Binomial(n, keep / n), spread uniformly over them.
    Drawing indices and counting them is several times faster than ``rng.multinomial`` here.
    """
    keep = n if keep is None else keep
    counts = np.empty((rows, keep), dtype=np.int32)  # int32: the metrics' fast path for counts
    if keep < n:
        totals = rng.binomial(n, keep / n, size=rows)
        draws = np.split(rng.integers(0, keep, size=int(totals.sum()), dtype=np.int32), np.cumsum(totals)[:-1])
    else:
        draws = rng.integers(0, n, size=(rows, n), dtype=np.int32 if n < 2**31 else np.int64)
    if keep < 4096 and keep == n:  # short rows: one flat count; long rows: row by row, which stays in cache
        flat = draws + (np.arange(rows, dtype=np.int64) * n)[:, None]
        counts[:] = np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n)
    else:
        for row, drawn in zip(counts, draws, strict=True):
            row[:] = np.bincount(drawn, minlength=keep)
    return counts


def _paired_weights(rng: np.random.Generator, rows: int, n: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap weights for (a, b): the SAME rows for both, which is what makes the bootstrap paired.

    Kept separate so a test can replace it with independent draws and watch calibration break.
    """
    counts = bootstrap_counts(rng, rows, n, keep)
    return counts, counts


def swap_masks(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Fair coin per unit and resample (rows, n) of int8 0/1: 1 = swap that unit's a/b data."""
    packed = rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8)
    return np.unpackbits(packed, axis=1, count=n).view(np.int8)


def _row_blocks(total: int, width: int) -> list[int]:
    """Rows per chunk for ``total`` resamples of ``width`` units, so memory stays bounded."""
    step = chunk_rows(width)
    return [min(step, total - start) for start in range(0, total, step)]


def _essential_units(prep_a: Prepared, prep_b: Prepared) -> np.ndarray | None:
    """Units that can change either model's metric, or None when all can (see ``Prepared.essential``)."""
    if prep_a.essential is None or prep_b.essential is None:
        return None
    keep = np.union1d(prep_a.essential, prep_b.essential)
    return None if keep.shape[0] == prep_a.n else keep


def _bootstrap_deltas(kind: str, data_a: Data, data_b: Data, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """delta_r = metric_b(w_r) - metric_a(w_r) for each bootstrap resample r of the units."""
    prep_a, prep_b = prepare(kind, data_a), prepare(kind, data_b)
    n = prep_a.n
    keep = _essential_units(prep_a, prep_b)
    if keep is not None:  # only these units' counts can matter: draw and evaluate just those
        prep_a, prep_b = prepare(kind, _take_units(data_a, keep)), prepare(kind, _take_units(data_b, keep))
    width = prep_a.n
    values_a, values_b = unit_values(kind, data_a), unit_values(kind, data_b)
    parts = []
    for rows in _row_blocks(resamples, width):
        w_a, w_b = _paired_weights(rng, rows, n, width)
        if w_a is w_b and values_a is not None and values_b is not None:
            # Linear metrics: one product with the per-unit differences serves both models.
            parts.append((w_a @ (values_b - values_a)) / w_a.sum(axis=1))
        else:
            parts.append(prep_b(w_b) - prep_a(w_a))
    return np.concatenate(parts)


def _scale_free(kind: str, data: Data, side: int) -> dict[str, np.ndarray]:
    """Put a model's scores on a common scale before mixing units of two models in one pseudo-model.

    Two models' similarity scores live on different scales (one model's cosines in [0.6, 1], another's in
    [0, 1]); ranking a mixture of raw scores would mostly rank models, not pairs, and wreck the test's
    power. Rank-based metrics are unchanged by a strictly increasing transform, so scores become
    (average rank + side / 4) / n within the model: each model's own metric is untouched (its ties stay
    ties), while equal ranks of a (side 0) and b (side 1) fall apart in a fixed order rather than tie,
    which keeps the ranking of a pseudo-model cheap. Swapping every unit still maps delta to -delta, so
    the permutation distribution stays symmetric. Pearson is unchanged by standardisation.
    """
    out = dict(data)
    n = n_units(data)
    if kind == "spearman":
        out["pred"] = (rankdata(data["pred"]) + side / 4) / n
    elif kind in ("max_ap", "max_accuracy"):
        out["scores"] = (rankdata(np.atleast_2d(data["scores"]), axis=1) + side / 4) / n
    elif kind == "pearson":
        pred = np.asarray(data["pred"], dtype=np.float64)
        spread = pred.std()
        out["pred"] = (pred - pred.mean()) / (spread if spread > 0 else 1.0)
    return out


def _union(kind: str, data_a: Data, data_b: Data) -> dict[str, np.ndarray]:
    """Both models' units side by side (2n): a pseudo-model is a 0/1 mask picking one copy per unit.

    ``position`` makes score ties inside a pseudo-model break by unit order, as they would in a record: the
    records' own order where they carry one (mteb's), else the aligned order.
    """
    a, b = _scale_free(kind, data_a, side=0), _scale_free(kind, data_b, side=1)
    union = {key: np.concatenate([np.asarray(a[key]), np.asarray(b[key])], axis=-1) for key in a}
    if "position" not in union:
        units = np.arange(n_units(data_a))
        union["position"] = np.concatenate([units, units])
    return union


def _randomization_deltas(
    kind: str, data_a: Data, data_b: Data, rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """Deltas of the pseudo-models a', b' where each unit swaps its a/b data with probability 1/2."""
    n = n_units(data_a)
    values_a, values_b = unit_values(kind, data_a), unit_values(kind, data_b)
    if values_a is not None and values_b is not None:
        # Linear metrics: a swap flips the sign of the unit's difference d_i = b_i - a_i.
        diff = values_b - values_a
        blocks = _row_blocks(resamples, n)
        return np.concatenate([(diff.sum() - 2.0 * (swap_masks(rng, rows, n) @ diff)) / n for rows in blocks])
    union = prepare(kind, _union(kind, data_a, data_b))
    parts = []
    for rows in _row_blocks(resamples, 2 * n):
        swap = swap_masks(rng, rows, n)
        keep_a = np.concatenate([1 - swap, swap], axis=1)  # a' takes a where kept, b where swapped
        metric_a, metric_b = union.with_complement(keep_a)  # b' is the complementary mask
        parts.append(metric_b - metric_a)
    return np.concatenate(parts)


def randomization_p_value(delta: float, perm_deltas: np.ndarray) -> float:
    """p = (1 + #{|delta_perm| >= |delta| - tol}) / (1 + R): never 0, exactly 1 for an A/A comparison.

    Counting the observed statistic as one of the permutations keeps the test valid at any R.
    """
    if not math.isfinite(delta):
        return math.nan
    extreme = np.count_nonzero(np.abs(perm_deltas) >= abs(delta) - TOLERANCE)
    return (1 + extreme) / (1 + perm_deltas.shape[0])


def percentile_interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    """Equal-tailed percentile interval at level 1 - alpha."""
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _check_pair(kind: str, data_a: Data, data_b: Data) -> None:
    if n_units(data_a) != n_units(data_b):
        raise UserError("paired data must be aligned by id first (see align)")
    for key in _SHARED_KEYS.get(kind, ()):
        if not np.array_equal(data_a[key], data_b[key]):
            raise UserError(f"{kind}: the two records disagree on {key!r}; are the unit ids the same units?")


def paired_task(
    kind: str,
    data_a: Data,
    data_b: Data,
    *,
    task: str,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
    parallel: bool = True,
) -> PairedResult:
    """Compare model b with baseline a on one task whose records are already aligned by id.

    The bootstrap resamples units with replacement and applies the same counts to both models; the
    randomization test swaps each unit's a/b data with probability 1/2. Both use ``resamples`` draws
    from generators seeded by (seed, task). ``parallel`` runs the two in two threads (same result).
    """
    _check_pair(kind, data_a, data_b)
    if resamples < 1 or not 0 < alpha < 1:
        raise UserError(f"need resamples >= 1 and 0 < alpha < 1 (got {resamples}, {alpha})")
    score_a, score_b = score(kind, data_a), score(kind, data_b)
    delta = score_b - score_a
    entropy = task_seed(seed, task)
    jobs = (
        (_bootstrap_deltas, kind, data_a, data_b, np.random.default_rng([*entropy, _BOOTSTRAP]), resamples),
        (_randomization_deltas, kind, data_a, data_b, np.random.default_rng([*entropy, _RANDOMIZATION]), resamples),
    )
    if parallel:  # numpy releases the GIL in the heavy loops; each job owns its generator, so same output
        with ThreadPoolExecutor(max_workers=2) as pool:
            boot, perm = [f.result() for f in [pool.submit(*job) for job in jobs]]
    else:
        boot, perm = [job[0](*job[1:]) for job in jobs]
    low, high = percentile_interval(boot, alpha)
    return PairedResult(
        task=task,
        kind=kind,
        n=n_units(data_a),
        score_a=score_a,
        score_b=score_b,
        delta=delta,
        ci_low=low,
        ci_high=high,
        p_value=randomization_p_value(delta, perm),
        alpha=alpha,
        resamples=resamples,
        boot_deltas=boot,
        perm_deltas=perm,
    )


def bootstrap_scores(kind: str, data: Data, *, task: str, resamples: int = 2_000, seed: int = 0) -> np.ndarray:
    """One model's score on `resamples` bootstrap resamples of its units (its own interval, in summaries)."""
    prep = prepare(kind, data)
    rng = np.random.default_rng([*task_seed(seed, task), _BOOTSTRAP])
    return np.concatenate([prep(bootstrap_counts(rng, rows, prep.n)) for rows in _row_blocks(resamples, prep.n)])


def compare(task: str, record_a: Record, record_b: Record, **options) -> PairedResult:
    """Align two models' records of one task by id and compare them (options go to ``paired_task``)."""
    kind_a, ids_a, data_a = record_a
    kind_b, ids_b, data_b = record_b
    if kind_a != kind_b:
        raise UserError(f"{task}: records have different metric kinds ({kind_a!r} vs {kind_b!r})")
    aligned = align(ids_a, data_a, ids_b, data_b)
    result = paired_task(kind_a, aligned.data_a, aligned.data_b, task=task, **options)
    return replace(result, n_only_a=aligned.n_only_a, n_only_b=aligned.n_only_b)


def holm(p_values: Mapping[str, float], alpha: float = 0.05) -> dict[str, bool]:
    """Holm-Bonferroni step-down: which hypotheses to reject with family-wise error <= alpha.

    NaN p-values (tasks that could not be tested) are not rejected and do not count towards m.
    """
    tested = sorted((p, name) for name, p in p_values.items() if not math.isnan(p))
    rejected = dict.fromkeys(p_values, False)
    for i, (p, name) in enumerate(tested):
        if p > alpha / (len(tested) - i):
            break
        rejected[name] = True
    return rejected


def mean_weights(types: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Each mean column as weights on tasks: Mean(Task), Mean(TaskType) and one column per task type.

    Every column is linear in the task deltas, so its unit-resampling distribution is the same linear
    combination of the tasks' bootstrap deltas.
    """
    by_type: dict[str, list[str]] = {}
    for task, task_type in sorted(types.items()):
        by_type.setdefault(task_type, []).append(task)
    columns = {MEAN_TASK: dict.fromkeys(types, 1.0 / len(types)), MEAN_TYPE: {}}
    for task_type, tasks in sorted(by_type.items()):
        columns[task_type] = dict.fromkeys(tasks, 1.0 / len(tasks))
        columns[MEAN_TYPE].update(dict.fromkeys(tasks, 1.0 / (len(tasks) * len(by_type))))
    return columns


def combine(weights: Mapping[str, float], per_task: Mapping[str, Any]) -> Any:
    """A mean column (`mean_weights`) of per-task values: scores, deltas or equal-length bootstrap arrays."""
    return sum(w * per_task[t] for t, w in weights.items())


def task_resampling_intervals(
    deltas: Mapping[str, float],
    types: Mapping[str, str],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Intervals for the mean columns when the *tasks* are resampled, from per-task deltas alone.

    Asks "would another benchmark of similar tasks agree?" rather than "would other units of these
    tasks agree?". Mean(Task) draws tasks with replacement from all tasks; each type column and
    Mean(TaskType) draw within each type (stratified), so every type keeps its place. A type with a single
    task always redraws that task: its interval is the degenerate [d, d], which only says that one task
    carries no task-to-task information.
    """
    rng = np.random.default_rng(task_seed(seed, "task resampling") + [_TASK_RESAMPLING])
    names = sorted(types)
    everything = np.array([deltas[t] for t in names], dtype=np.float64)
    draws = {MEAN_TASK: everything[rng.integers(0, len(names), size=(resamples, len(names)))].mean(axis=1)}
    type_means = []
    for task_type in sorted(set(types.values())):
        members = np.array([deltas[t] for t in names if types[t] == task_type], dtype=np.float64)
        draws[task_type] = members[rng.integers(0, len(members), size=(resamples, len(members)))].mean(axis=1)
        type_means.append(draws[task_type])
    draws[MEAN_TYPE] = np.mean(type_means, axis=0)
    return {column: percentile_interval(values, alpha) for column, values in draws.items()}


def summarize_means(
    deltas: Mapping[str, float],
    types: Mapping[str, str],
    boot_deltas: Mapping[str, np.ndarray] | None = None,
    *,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, MeanSummary]:
    """Delta and intervals of Mean(Task), Mean(TaskType) and every type's mean.

    ``unit_ci`` combines the tasks' bootstrap deltas by resample index: row r then resamples the units of
    every task at once, each task with its own seed, so the interval covers unit noise only. A column gets one
    only when ``boot_deltas`` holds every task it averages (all of one length); ``task_ci`` needs only the deltas.
    """
    if set(deltas) != set(types):
        raise UserError("deltas and task types must name the same tasks")
    by_task = task_resampling_intervals(deltas, types, resamples=resamples, seed=seed, alpha=alpha)
    stacked = {task: np.asarray(v, dtype=np.float64) for task, v in (boot_deltas or {}).items() if task in types}
    if len({values.shape for values in stacked.values()}) > 1:
        raise UserError("bootstrap deltas of all tasks must have the same number of resamples")
    out = {}
    for column, weights in mean_weights(types).items():
        unit_ci = None
        if all(task in stacked for task in weights):
            unit_ci = percentile_interval(combine(weights, stacked), alpha)
        delta = float(combine(weights, deltas))
        out[column] = MeanSummary(delta=delta, unit_ci=unit_ci, task_ci=by_task[column], n_tasks=len(weights))
    return out
