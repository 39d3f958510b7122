"""Paired resampling statistics: weighted metrics against independent references, and calibration.

The metric checks compare against scipy, sklearn and mteb's own code on data expanded by the integer
counts. The calibration checks simulate many tasks with a known truth and compare rejection rates
with the nominal level and with analytic power.

Mutation check (does the calibration test notice broken pairing?): run

    QZHOU_BREAK_PAIRING=1 python -m pytest -q tests/test_paired_stats.py -k calibration

which makes the bootstrap draw a and b independently (``_independent_weights``), and in the Spearman
check pairs b's units by position after shuffling them; the calibration assertions then fail.
``test_broken_pairing_fails_the_calibration_check`` runs both mutations on every normal run and asserts
that the calibration check detects them.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from mteb.evaluation.evaluators.PairClassificationEvaluator import PairClassificationEvaluator
from scipy.stats import norm, pearsonr, spearmanr
from sklearn.metrics import average_precision_score, f1_score

from qzhou_eval.errors import UserError
from qzhou_eval.report import paired
from qzhou_eval.report.paired import (
    MEAN_TASK,
    MEAN_TYPE,
    align,
    bootstrap_counts,
    compare,
    holm,
    paired_task,
    summarize_means,
    task_resampling_intervals,
)
from qzhou_eval.store.metrics import METRICS, _binary_prefix_sums, _distinct_rows, prepare, score

KINDS = ["mean", "accuracy", "spearman", "pearson", "max_ap", "max_accuracy", "f1_macro", "f1_weighted"]
BREAK_PAIRING = os.environ.get("QZHOU_BREAK_PAIRING") == "1"


def _expand(data: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """The record with unit i repeated counts[i] times, copies next to each other."""
    return {key: np.repeat(value, counts, axis=-1) for key, value in data.items()}


def _best_accuracy(row: np.ndarray, label: np.ndarray) -> float:
    return PairClassificationEvaluator.find_best_acc_and_threshold(row, label, True)[0]


REFERENCES = {
    "mean": lambda d: float(np.mean(d["value"])),
    "accuracy": lambda d: float(np.mean([np.mean(row) for row in d["correct"]])),
    "spearman": lambda d: spearmanr(d["pred"], d["gold"]).statistic,
    "pearson": lambda d: pearsonr(d["pred"], d["gold"]).statistic,
    "max_ap": lambda d: max(average_precision_score(d["label"], row) for row in d["scores"]),
    "max_accuracy": lambda d: max(_best_accuracy(row, d["label"]) for row in d["scores"]),
    "f1_macro": lambda d: float(np.mean([f1_score(d["gold"], row, average="macro") for row in d["pred"]])),
    "f1_weighted": lambda d: float(np.mean([f1_score(d["gold"], row, average="weighted") for row in d["pred"]])),
}


def _record(kind: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A small record with plenty of ties, where tie handling matters."""
    if kind == "mean":
        return {"value": rng.random(n)}
    if kind == "accuracy":
        return {"correct": (rng.random((3, n)) < 0.7).astype(np.int64)}
    if kind in ("f1_macro", "f1_weighted"):
        gold = rng.integers(0, 4, n)
        return {"gold": gold, "pred": np.where(rng.random((3, n)) < 0.6, gold, rng.integers(0, 5, (3, n)))}
    if kind in ("spearman", "pearson"):
        gold = rng.integers(0, 6, n).astype(np.float64)
        return {"pred": np.round(gold + rng.normal(0, 2, n), 0), "gold": gold}
    label = (rng.random(n) < 0.4).astype(np.int64)
    scores = np.round(rng.normal(0, 1, (3, n)) + label, 1)
    scores[2] = scores[0]  # a repeated similarity function, as mteb's similarity == cosine
    return {"scores": scores, "label": label}


@pytest.mark.parametrize("kind", KINDS)
def test_unit_weights_equal_the_reference(kind: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        data = _record(kind, 57, rng)
        assert score(kind, data) == pytest.approx(REFERENCES[kind](data), rel=1e-12, abs=1e-12)


def test_max_accuracy_equals_mteb_exactly_with_unit_weights() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        data = _record("max_accuracy", 40, rng)
        assert score("max_accuracy", data) == REFERENCES["max_accuracy"](data)


@pytest.mark.parametrize("kind", KINDS)
def test_integer_counts_equal_the_reference_on_expanded_data(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(4):
        data = _record(kind, 45, rng)
        counts = rng.integers(0, 4, size=(6, 45))
        got = METRICS[kind](data, counts)
        want = [REFERENCES[kind](_expand(data, row)) for row in counts]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_spearman_masks_on_distinct_preds_equal_the_reference() -> None:
    # 0/1 int8 masks on tie-free preds take the closed-form rank path used by the randomization test.
    rng = np.random.default_rng(13)
    data = {"pred": rng.normal(0, 1, 70), "gold": rng.integers(0, 4, 70).astype(np.float64)}
    masks = rng.integers(0, 2, size=(6, 70)).astype(np.int8)
    want = [REFERENCES["spearman"](_expand(data, row)) for row in masks]
    np.testing.assert_allclose(METRICS["spearman"](data, masks), want, rtol=1e-12)
    on, off = prepare("spearman", data).with_complement(masks)
    np.testing.assert_allclose(on, want, rtol=1e-12)
    np.testing.assert_allclose(off, [REFERENCES["spearman"](_expand(data, 1 - row)) for row in masks], rtol=1e-12)


def test_bootstrap_counts_evaluate_like_expanded_data() -> None:
    rng = np.random.default_rng(4)
    data = _record("spearman", 300, rng)
    counts = bootstrap_counts(rng, 5, 300)
    assert (counts.sum(axis=1) == 300).all()
    want = [REFERENCES["spearman"](_expand(data, row)) for row in counts]
    np.testing.assert_allclose(METRICS["spearman"](data, counts), want, rtol=1e-12)


def test_max_accuracy_edge_cases_follow_mteb() -> None:
    data = {"scores": np.array([[0.9, 0.5, 0.5, 0.1]]), "label": np.array([0, 1, 0, 1])}
    counts = np.array([[0, 0, 1, 0], [0, 2, 0, 0], [3, 0, 0, 2], [1, 1, 1, 1]])
    got = METRICS["max_accuracy"](data, counts)
    want = [_best_accuracy(np.repeat(data["scores"][0], c), np.repeat(data["label"], c)) for c in counts]
    assert list(got) == want  # one item: mteb never cuts and reports 0


def test_max_ap_without_positive_weight_is_zero_like_sklearn() -> None:
    data = {"scores": np.array([[0.9, 0.5, 0.1]]), "label": np.array([0, 1, 0])}
    counts = np.array([[2, 0, 1]])
    with pytest.warns(UserWarning):
        want = average_precision_score(np.repeat(data["label"], counts[0]), np.repeat(data["scores"][0], counts[0]))
    assert METRICS["max_ap"](data, counts)[0] == want == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_complementary_masks_share_statistics(kind: str) -> None:
    rng = np.random.default_rng(5)
    prepared = prepare(kind, _record(kind, 64, rng))
    masks = rng.integers(0, 2, size=(7, 64)).astype(np.int8)
    on, off = prepared.with_complement(masks)
    np.testing.assert_allclose(on, prepared(masks), rtol=1e-12)
    np.testing.assert_allclose(off, prepared(1 - masks), rtol=1e-12)
    # and against the independent reference, so a fault shared by both mask paths still shows
    data = _record(kind, 64, np.random.default_rng(5))
    np.testing.assert_allclose(on, [REFERENCES[kind](_expand(data, row)) for row in masks], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(off, [REFERENCES[kind](_expand(data, 1 - row)) for row in masks], rtol=1e-12, atol=1e-12)


def test_dropping_inessential_units_keeps_max_ap() -> None:
    rng = np.random.default_rng(6)
    label = (rng.random(400) < 0.05).astype(np.int64)
    data = {"scores": rng.normal(0, 1, (2, 400)) + 3 * label, "label": label}
    keep = prepare("max_ap", data).essential
    assert keep is not None and keep.shape[0] < 400
    counts = rng.integers(0, 3, size=(5, 400))
    restricted = {key: value[..., keep] for key, value in data.items()}
    np.testing.assert_array_equal(METRICS["max_ap"](restricted, counts[:, keep]), METRICS["max_ap"](data, counts))


def _near_duplicates(rng: np.random.Generator, n: int, ties: bool) -> dict[str, np.ndarray]:
    """Rows ranking almost alike, as mteb's cosine / dot / Euclidean scores of one model do."""
    label = (rng.random(n) < 0.3).astype(np.int64)
    base = rng.normal(0, 1, n) + label
    base = np.round(base, 2) if ties else base
    order = np.argsort(base, kind="stable")
    swapped = base.copy()
    for k in rng.choice(n - 1, 4, replace=False):  # a few neighbours trade places
        swapped[order[[k, k + 1]]] = swapped[order[[k + 1, k]]]
    tiny = base + (rng.random(n) < 0.02) * 1e-9  # breaks a few ties, moves nothing else
    return {"scores": np.array([base, swapped, tiny, -np.abs(base)]), "label": label}


@pytest.mark.parametrize("ties", [False, True])
def test_near_duplicate_rows_are_derived_exactly(ties: bool) -> None:
    rng = np.random.default_rng(14)
    plans = set()
    for _ in range(6):
        data = _near_duplicates(rng, 400, ties)
        prepared = prepare("max_ap", data)
        plans.update(type(p).__name__ for p in prepared.impl.plan)
        counts = rng.integers(0, 3, size=(4, 400)).astype(np.int32)
        per_row = prepared.impl.per_row(prepared.impl.stats(counts))
        for row, got in zip(_distinct_rows(data["scores"]), per_row, strict=True):
            want = [average_precision_score(np.repeat(data["label"], c), np.repeat(row, c)) for c in counts]
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        masks = rng.integers(0, 2, size=(5, 400)).astype(np.int8)
        on, off = prepared.with_complement(masks)
        np.testing.assert_allclose(on, prepared(masks), rtol=1e-12)
        np.testing.assert_allclose(off, prepared(1 - masks), rtol=1e-12)
    assert "_SlotShift" in plans and "NoneType" in plans


def test_binary_prefix_sums_count_bits() -> None:
    rng = np.random.default_rng(15)
    for size in (1, 63, 64, 65, 1000):
        bits = rng.integers(0, 2, size=(3, size)).astype(np.int8)
        cuts = np.r_[0, np.sort(rng.integers(0, size + 1, 20)), size]
        want = np.concatenate([np.zeros((3, 1), dtype=np.int64), np.cumsum(bits, axis=1)], axis=1)[:, cuts]
        np.testing.assert_array_equal(_binary_prefix_sums(bits, cuts), want)


def test_restricted_bootstrap_counts_are_multinomial_margins() -> None:
    counts = bootstrap_counts(np.random.default_rng(7), 4000, 1000, keep=100)
    assert counts.shape == (4000, 100)
    # Each unit's count is Binomial(1000, 1/1000): mean 1, variance 0.999.
    assert counts.mean() == pytest.approx(1.0, abs=0.01)
    assert counts.var() == pytest.approx(0.999, abs=0.03)
    # ... and the kept units' total varies as a multinomial margin does (Binomial(1000, 0.1): variance 90), which
    # drawing exactly `keep` units per row (variance 0) would not
    assert counts.sum(axis=1).var() == pytest.approx(90, rel=0.15)


@pytest.mark.parametrize("kind", KINDS)
def test_a_a_comparison_is_exactly_null(kind: str) -> None:
    data = _record(kind, 80, np.random.default_rng(8))
    twin = {key: value.copy() for key, value in data.items()}
    result = paired_task(kind, data, twin, task="aa", resamples=300)
    assert (result.delta, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("kind", ["mean", "spearman", "max_ap"])
def test_seed_reproducibility(kind: str) -> None:
    rng = np.random.default_rng(9)
    a, b = _record(kind, 120, rng), _record(kind, 120, rng)
    if kind in _SHARED:
        b[_SHARED[kind]] = a[_SHARED[kind]]
    first = paired_task(kind, a, b, task="t", resamples=500, seed=3)
    again = paired_task(kind, a, b, task="t", resamples=500, seed=3, parallel=False)
    other = paired_task(kind, a, b, task="t", resamples=500, seed=4)
    np.testing.assert_array_equal(first.boot_deltas, again.boot_deltas)
    assert (first.ci_low, first.ci_high, first.p_value) == (again.ci_low, again.ci_high, again.p_value)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.delta == other.delta


_SHARED = {
    "spearman": "gold",
    "pearson": "gold",
    "max_ap": "label",
    "max_accuracy": "label",
    "f1_macro": "gold",
    "f1_weighted": "gold",
}


def _two_records(kind: str, n: int, rng: np.random.Generator) -> tuple[paired.Record, paired.Record]:
    a, b = _record(kind, n, rng), _record(kind, n, rng)
    if kind in _SHARED:
        b[_SHARED[kind]] = a[_SHARED[kind]]
    ids = np.array([f"test/default/q{i}" for i in range(n)])
    return (kind, ids, a), (kind, ids.copy(), b)


@pytest.mark.parametrize("kind", KINDS)
def test_units_pair_by_id_not_position(kind: str) -> None:
    rng = np.random.default_rng(10)
    record_a, (_, ids_b, data_b) = _two_records(kind, 90, rng)
    order = rng.permutation(90)
    shuffled = (kind, ids_b[order], {key: value[..., order] for key, value in data_b.items()})
    base = compare("t", record_a, (kind, ids_b, data_b), resamples=400)
    moved = compare("t", record_a, shuffled, resamples=400)
    np.testing.assert_array_equal(base.boot_deltas, moved.boot_deltas)
    np.testing.assert_array_equal(base.perm_deltas, moved.perm_deltas)
    assert _scalars(base) == _scalars(moved)


def _scalars(result: paired.PairedResult) -> dict:
    return {key: value for key, value in vars(result).items() if key not in ("boot_deltas", "perm_deltas")}


def test_unshared_ids_are_counted_and_left_out() -> None:
    rng = np.random.default_rng(11)
    (kind, ids, a), (_, _, b) = _two_records("mean", 50, rng)
    extra_b = (kind, np.r_[ids, ["x1", "x2"]], {"value": np.r_[b["value"], [5.0, 7.0]]})
    shared_only = compare("t", (kind, ids, a), (kind, ids, b), resamples=200)
    result = compare("t", (kind, ids[:-1], {"value": a["value"][:-1]}), extra_b, resamples=200)
    assert (result.n_only_a, result.n_only_b, result.n) == (0, 3, 49)
    assert (shared_only.n_only_a, shared_only.n_only_b) == (0, 0)
    aligned = align(ids[:-1], {"value": a["value"][:-1]}, extra_b[1], extra_b[2])
    assert list(aligned.ids) == sorted(ids[:-1])


def test_bad_pairings_are_user_errors() -> None:
    rng = np.random.default_rng(12)
    (kind, ids, a), (_, _, b) = _two_records("spearman", 20, rng)
    with pytest.raises(UserError, match="repeats"):
        align(np.r_[ids[:-1], ids[:1]], a, ids, b)
    with pytest.raises(UserError, match="no unit ids"):
        align(ids, a, np.array([f"other{i}" for i in range(20)]), b)
    with pytest.raises(UserError, match="gold"):
        compare("t", (kind, ids, a), (kind, ids, {**b, "gold": b["gold"][::-1]}), resamples=10)


def test_holm_matches_a_hand_worked_example() -> None:
    # m = 4 tested: 0.005 <= 0.05/4 reject; 0.01 <= 0.05/3 reject; 0.03 > 0.05/2 stop.
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "untested": math.nan}
    assert holm(p, alpha=0.05) == {"a": True, "b": False, "c": False, "d": True, "untested": False}
    # Step-down: 0.02 <= 0.05/2, then 0.04 <= 0.05/1; plain Bonferroni (0.025 each) would keep y.
    assert holm({"x": 0.02, "y": 0.04}, alpha=0.05) == {"x": True, "y": True}


def test_task_resampling_interval_matches_the_exact_bootstrap_distribution() -> None:
    # Three tasks with deltas 1, 2, 3: the resampled sum takes 3..9 with counts 1,3,6,7,6,3,1 of 27,
    # so the 10% and 90% quantiles of the mean are 4/3 and 8/3 (cdf 4/27 > 0.1 > 1/27, 23/27 < 0.9 < 26/27).
    intervals = task_resampling_intervals(
        {"t1": 1.0, "t2": 2.0, "t3": 3.0}, dict.fromkeys(("t1", "t2", "t3"), "X"), resamples=20_000, alpha=0.2
    )
    assert intervals[MEAN_TASK] == pytest.approx((4 / 3, 8 / 3))
    assert intervals["X"] == pytest.approx((4 / 3, 8 / 3))


def test_means_over_tasks_by_hand() -> None:
    deltas = {"t1": 1.0, "t2": 2.0, "t3": 3.0, "solo": 5.0}
    types = {"t1": "X", "t2": "X", "t3": "X", "solo": "Y"}
    boot = {"t1": np.array([0.0, 1.0, 2.0]), "t2": np.array([2.0, 2.0, 2.0]), "t3": np.array([3.0, 4.0, 5.0])}
    boot["solo"] = np.array([4.0, 5.0, 9.0])
    means = summarize_means(deltas, types, boot, resamples=2000, alpha=0.5)
    assert means[MEAN_TASK].delta == pytest.approx(11 / 4)
    assert means[MEAN_TYPE].delta == pytest.approx((2 + 5) / 2)
    assert means["Y"].task_ci == (5.0, 5.0)  # one task: the degenerate [d, d]
    # Unit interval: the per-resample mean of the tasks, [2.25, 3.0, 4.5], at the 25% and 75% quantiles.
    assert means[MEAN_TASK].unit_ci == pytest.approx((2.625, 3.75))
    # Mean(TaskType): per resample (mean of X + Y) / 2 = [(5/3+4)/2, (7/3+5)/2, (3+9)/2].
    assert means[MEAN_TYPE].unit_ci == pytest.approx(tuple(np.quantile([17 / 6, 22 / 6, 6.0], [0.25, 0.75])))
    assert means["X"].n_tasks == 3 and means[MEAN_TASK].n_tasks == 4


# --- calibration ---------------------------------------------------------------------------------------

N_UNITS, SIGMA_D, UNIT_SD, RESAMPLES = 200, 1.0, 2.0, 1000
Z = norm.ppf(0.975)


def _independent_weights(rng: np.random.Generator, rows: int, n: int, keep: int) -> list[np.ndarray]:
    """The mutation: a and b resampled independently, so shared unit difficulty no longer cancels."""
    return [paired.bootstrap_counts(rng, rows, n, keep) for _ in range(2)]


def _mean_task(rng: np.random.Generator, effect: float, shuffle_b: bool = False) -> tuple[dict, dict]:
    """Per-unit scores with a strong shared unit effect; b - a has mean ``effect`` and sd SIGMA_D."""
    unit = rng.normal(0, UNIT_SD, N_UNITS)
    a = unit + rng.normal(0, SIGMA_D / math.sqrt(2), N_UNITS)
    b = unit + effect + rng.normal(0, SIGMA_D / math.sqrt(2), N_UNITS)
    if shuffle_b:  # the mutation: b's units listed in another order and paired by position
        b = rng.permutation(b)
    return {"value": a}, {"value": b}


def _rejection_rates(effect: float, tasks: int, seed: int, shuffle_b: bool = False) -> tuple[float, float]:
    """(share of p < 0.05, share of intervals excluding 0) over simulated tasks."""
    rng = np.random.default_rng(seed)
    by_p = by_ci = 0
    for i in range(tasks):
        a, b = _mean_task(rng, effect, shuffle_b)
        result = paired_task("mean", a, b, task=f"sim{i}", resamples=RESAMPLES, seed=seed, parallel=False)
        by_p += result.p_value < 0.05
        by_ci += not (result.ci_low <= 0.0 <= result.ci_high)
    return by_p / tasks, by_ci / tasks


def _analytic_power(effect: float) -> tuple[float, float]:
    """Power of (randomization, bootstrap) for a mean difference: mean(d) ~ N(effect, SIGMA_D^2 / n).

    Bootstrap interval: reject when |mean d| > Z * SIGMA_D / sqrt(n), so power =
    Phi(effect sqrt(n)/SIGMA_D - Z) + Phi(-effect sqrt(n)/SIGMA_D - Z). Sign flips of non-centred d have
    variance (SIGMA_D^2 + effect^2) / n, which widens Z by sqrt(1 + effect^2 / SIGMA_D^2).
    """
    shift = effect * math.sqrt(N_UNITS) / SIGMA_D
    z_perm = Z * math.sqrt(1 + (effect / SIGMA_D) ** 2)
    return norm.cdf(shift - z_perm) + norm.cdf(-shift - z_perm), norm.cdf(shift - Z) + norm.cdf(-shift - Z)


@pytest.fixture
def pairing(monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether this run breaks pairing on purpose (QZHOU_BREAK_PAIRING=1, see the module docstring)."""
    if BREAK_PAIRING:
        monkeypatch.setattr(paired, "_paired_weights", _independent_weights)
    return BREAK_PAIRING


def test_calibration_null_rejects_at_the_nominal_rate(pairing: bool) -> None:
    by_p, by_ci = _rejection_rates(effect=0.0, tasks=2000, seed=20)
    assert 0.03 <= by_p <= 0.07
    assert 0.03 <= by_ci <= 0.07


EFFECT = 0.14  # power near 1/2 at n = 200, where a rejection rate is most sensitive


def test_calibration_power_matches_the_analytic_power(pairing: bool) -> None:
    power_p, power_ci = _analytic_power(EFFECT)
    by_p, by_ci = _rejection_rates(effect=EFFECT, tasks=600, seed=21)
    assert by_p == pytest.approx(power_p, abs=0.06)
    assert by_ci == pytest.approx(power_ci, abs=0.06)


@pytest.mark.parametrize("mutation", ["independent bootstrap", "position pairing"])
def test_broken_pairing_fails_the_calibration_check(monkeypatch: pytest.MonkeyPatch, mutation: str) -> None:
    """The calibration checks above must be able to fail: here pairing is broken and they do."""
    if mutation == "independent bootstrap":
        monkeypatch.setattr(paired, "_paired_weights", _independent_weights)
    by_p, by_ci = _rejection_rates(effect=EFFECT, tasks=300, seed=22, shuffle_b=mutation == "position pairing")
    power_p, power_ci = _analytic_power(EFFECT)
    assert by_ci < power_ci - 0.2  # the interval now carries the unit-to-unit spread: power collapses
    if mutation == "position pairing":
        assert by_p < power_p - 0.2


def test_calibration_spearman_null(pairing: bool) -> None:
    """Spearman (rank-based, union of both models' units in the randomization test) is calibrated too."""
    rng = np.random.default_rng(23)
    tasks, rejected = 400, 0
    for i in range(tasks):
        gold = rng.integers(0, 6, 100).astype(np.float64)
        shared = gold + rng.normal(0, 1.5, 100)
        pred_a, pred_b = shared + rng.normal(0, 1, 100), shared + rng.normal(0, 1, 100)
        if pairing:
            pred_b = rng.permutation(pred_b)
        result = paired_task(
            "spearman", {"pred": pred_a, "gold": gold}, {"pred": pred_b, "gold": gold}, task=f"s{i}", resamples=500
        )
        rejected += result.p_value < 0.05
    assert 0.025 <= rejected / tasks <= 0.08


def test_the_unswapped_pseudo_model_keeps_the_records_own_tie_order() -> None:
    """The randomization's pseudo-model that swaps nothing is model a itself: with tied scores, mteb's order
    (the record's `position`) decides max_accuracy, so the union must keep it rather than the id order."""
    rng = np.random.default_rng(16)
    for _ in range(20):
        n = 30
        label = (rng.random(n) < 0.5).astype(np.int64)
        a = {"scores": np.round(rng.normal(0, 1, (2, n)) + label, 0), "label": label, "position": rng.permutation(n)}
        b = {**a, "scores": np.round(rng.normal(0, 1, (2, n)) + label, 0), "position": rng.permutation(n)}
        union = prepare("max_accuracy", paired._union("max_accuracy", a, b))
        only_a = np.r_[np.ones(n), np.zeros(n)].astype(np.int8)[None, :]
        assert union(only_a)[0] == score("max_accuracy", a)
