"""Task main scores as functions of per-unit resampling weights, vectorised over many resamples.

A task's main score is computed from per-unit data (one query, one sentence pair, one test example...).
Resampling methods (paired bootstrap, approximate randomization) need that score recomputed thousands
of times on resampled unit sets. Re-running the metric on expanded data each time is far too slow, so
every kind here takes a weight matrix ``w`` of shape (R, n): row r says how many times each unit occurs in
resample r. With integer counts the value equals the metric computed on the data with unit i repeated
``w[r, i]`` times (copies of a unit sit next to each other, in unit order), which the tests check against
scipy, sklearn and mteb on the expanded data. The full sample is ``w = ones((1, n))``.

Every kind is split into ``stats`` (sufficient statistics that are *linear* in ``w``) and ``finish``
(the non-linear rest). Linearity gives the complement of a 0/1 mask for free,
``stats(1 - m) = stats(1) - stats(m)``, which halves the cost of the randomization test: there the two
pseudo-models are complementary masks over the union of both models' units (see ``paired.py``).

Cost is dominated by pair classification (up to ~10^5 pairs x 5 similarity functions x 2 models); three
exact shortcuts keep it in check: units that cannot change ``max_ap`` (negatives below every positive)
are not drawn at all (``Prepared.essential``), a similarity row that ranks almost like another is
derived from it (``_BinShift``), and 0/1 masks are summed by popcount (``_binary_prefix_sums``).
``max_accuracy`` (not a main score of MTEB(eng, v2)) has no such shortcuts.

Data keys per kind (the last axis is always the unit axis, length n):

- ``mean``: ``value`` (n,). Retrieval nDCG@10 per query, reranking AP per query, summarization
  Spearman per summary, clustering V-measure per subsample.
- ``accuracy``: ``correct`` (E, n) of 0/1; the mean over E experiments of the weighted accuracy.
- ``spearman`` / ``pearson``: ``pred``, ``gold`` (n,).
- ``f1_macro`` / ``f1_weighted``: ``gold`` (n,) and ``pred`` (E, n) integer labels; the mean over E experiments
  of sklearn's macro / weighted F1 (classification whose main score is ``f1``; bitext mining).
- ``max_ap`` / ``max_accuracy``: ``scores`` (k, n) for k similarity functions (higher = more similar;
  negate distances first) and ``label`` (n,) of 0/1. Optional ``position`` (n,) breaks score ties for
  ``max_accuracy`` (default: unit order), needed when units are not in their original record order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

Data = Mapping[str, np.ndarray]
Stats = tuple[np.ndarray, ...]

# Elements (rows x units) of one weight chunk. Bounds memory whatever n is, and keeps each intermediate
# array (1-2 MB) in the CPU cache between the several passes over it: measured ~2x faster than 4M elements.
CHUNK_ELEMENTS = 1 << 18


class _Kind(Protocol):
    """One metric kind, prepared for one record (sorting and grouping done once, not per chunk).

    Optional attributes: ``weight_dtype`` (cast weights to it first, e.g. float64 for BLAS products) and
    ``essential`` (the units whose weights can change the metric at all; see ``Prepared.essential``).
    """

    n: int

    def stats(self, w: np.ndarray) -> Stats:
        """Sufficient statistics, each linear in ``w`` (so complements are differences)."""

    def finish(self, stats: Stats) -> np.ndarray:
        """The metric (R,) from the statistics alone (so a complement's metric needs no second pass)."""


def n_units(data: Data) -> int:
    """Units of a record: the length of the last axis, which every array must share."""
    sizes = {np.shape(a)[-1] for a in data.values()}
    if len(sizes) != 1:
        raise ValueError(f"arrays disagree on the number of units: {sorted(sizes)}")
    return sizes.pop()


def chunk_rows(width: int) -> int:
    """Rows per chunk for weight rows of ``width`` units: ~CHUNK_ELEMENTS values, but at least 4 rows
    (very wide rows would otherwise pay numpy's per-call overhead once per resample)."""
    return max(4, CHUNK_ELEMENTS // max(1, width))


def _accumulator(w: np.ndarray) -> type[np.number]:
    """Type for sums of weights: int32 for counts (``Prepared`` guarantees row totals < 2**31; int32
    cumulative sums run about twice as fast as int64), float64 for real weights."""
    if w.dtype.kind in "iub":
        return np.int64 if w.dtype.itemsize == 8 else np.int32
    return np.float64


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (those terms always carry zero weight)."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


class _Linear:
    """A weighted mean of fixed per-unit values: ``mean`` and ``accuracy``."""

    weight_dtype = np.float64  # weights go straight into a BLAS product

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.n = self.values.shape[0]

    def stats(self, w: np.ndarray) -> Stats:
        return w @ self.values, w.sum(axis=1, dtype=np.float64)

    def finish(self, stats: Stats) -> np.ndarray:
        total, weight = stats
        return total / weight


def unit_values(kind: str, data: Data) -> np.ndarray | None:
    """Per-unit values whose weighted mean is the metric, for the linear kinds; None for the others.

    The randomization test uses them for an exact shortcut: swapping a unit's a/b data flips the sign
    of that unit's difference, so a permuted delta is a signed sum.
    """
    if kind == "mean":
        return np.asarray(data["value"], dtype=np.float64)
    if kind == "accuracy":
        # mean_e(sum_i w_i c_ei / W) = sum_i w_i mean_e(c_ei) / W: the experiment mean commutes.
        return np.asarray(data["correct"], dtype=np.float64).mean(axis=0)
    return None


def _pearson_from_moments(*moments: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation from the weighted sums (w, x, y, xx, yy, xy); NaN without spread."""
    sw, sx, sy, sxx, syy, sxy = moments
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = sx / sw, sy / sw
        cov = sxy / sw - mx * my
        vx = np.maximum(sxx / sw - mx * mx, 0.0)
        vy = np.maximum(syy / sw - my * my, 0.0)
        return cov / np.sqrt(vx * vy)


class _Pearson:
    """Weighted Pearson correlation: six weighted moments, all linear in w."""

    weight_dtype = np.float64

    def __init__(self, data: Data) -> None:
        x = np.asarray(data["pred"], dtype=np.float64)
        y = np.asarray(data["gold"], dtype=np.float64)
        # Centring first (a shift leaves r unchanged) avoids cancellation in the raw moments.
        x, y = x - x.mean(), y - y.mean()
        self.n = x.shape[0]
        self.columns = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)

    def stats(self, w: np.ndarray) -> Stats:
        return (w @ self.columns,)

    def finish(self, stats: Stats) -> np.ndarray:
        return _pearson_from_moments(*stats[0].T)


class _TieGroups:
    """Units of one variable sorted ascending and grouped by equal value, for weighted average ranks.

    The groups of distinct values never change under resampling (a repeated unit is a tie with itself),
    so only the group weights vary: rank of group g = cumulative weight through g - (weight_g - 1) / 2,
    the average of the positions the group occupies in the expanded data.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.order = np.argsort(x, kind="stable")
        xs = x[self.order]
        new = np.empty(x.shape[0], dtype=bool)
        new[:1] = True
        np.not_equal(xs[1:], xs[:-1], out=new[1:])
        self.starts = np.flatnonzero(new)
        self.group_sorted = np.cumsum(new) - 1  # group of the unit at each sorted position
        self.group_of = np.empty(x.shape[0], dtype=np.intp)
        self.group_of[self.order] = self.group_sorted
        self.all_distinct = self.starts.shape[0] == x.shape[0]

    def counts(self, ws: np.ndarray) -> np.ndarray:
        """Weight of each group (R, G) from weights already in sorted order: linear in w."""
        if self.all_distinct:
            return ws
        return np.add.reduceat(ws, self.starts, axis=1, dtype=_accumulator(ws))

    @staticmethod
    def ranks(counts: np.ndarray) -> np.ndarray:
        """Average rank (1-based) of each group in the expanded data (R, G)."""
        ranks = counts * -0.5
        ranks += np.cumsum(counts, axis=1, dtype=_accumulator(counts))  # integer sums are exact and fast
        ranks += 0.5
        return ranks


class _Spearman:
    """Weighted Spearman correlation: the weighted Pearson correlation of weighted average ranks.

    Works in pred-sorted order, so pred ranks need no scatter back to units; only gold ranks are
    gathered, once per unit, and not even that when every row gives gold the same group weights
    (the randomization test's pseudo-models hold each unit's gold exactly once).
    """

    def __init__(self, data: Data) -> None:
        self.x = _TieGroups(np.asarray(data["pred"]))
        self.y = _TieGroups(np.asarray(data["gold"]))
        self.n = self.x.order.shape[0]
        self.y_group_in_x_order = self.y.group_of[self.x.order]

    def stats(self, w: np.ndarray) -> Stats:
        return np.take(w, self.x.order, axis=1), self.y.counts(np.take(w, self.y.order, axis=1))

    def finish(self, stats: Stats) -> np.ndarray:
        ws_x, cy = stats
        ry = _TieGroups.ranks(cy)
        sy, syy = np.einsum("ij,ij->i", cy, ry), np.einsum("ij,ij,ij->i", cy, ry, ry)
        same_gold = bool((cy == cy[:1]).all())
        uy = np.take(ry[:1] if same_gold else ry, self.y_group_in_x_order, axis=1)
        if self.x.all_distinct and ws_x.dtype.itemsize == 1 and ws_x.max() <= 1:
            sw, sx, sxx, sxy = self._binary_pred_moments(ws_x, uy)
        else:
            cx = self.x.counts(ws_x)
            rx = _TieGroups.ranks(cx)
            # Means and variances need only group-level sums; only the cross term needs every unit.
            sw = cx.sum(axis=1, dtype=np.float64)
            sx, sxx = np.einsum("ij,ij->i", cx, rx), np.einsum("ij,ij,ij->i", cx, rx, rx)
            ux = rx if self.x.all_distinct else np.take(rx, self.x.group_sorted, axis=1)
            sxy = np.einsum("ij,ij,ij->i", ws_x, ux, uy) if not same_gold else np.einsum("ij,ij,j->i", ws_x, ux, uy[0])
        return _pearson_from_moments(sw, sx, sy, sxx, syy, sxy)

    @staticmethod
    def _binary_pred_moments(mask: np.ndarray, uy: np.ndarray) -> tuple[np.ndarray, ...]:
        """Pred moments for 0/1 weights on distinct preds (randomization masks): the N kept units rank
        1..N in pred order, so the rank sums have closed forms and only the cross term is summed."""
        rank = np.cumsum(mask, axis=1, dtype=np.int32)  # exact; float cumsum is twice as slow
        kept = rank[:, -1].astype(np.float64)
        if uy.shape[0] == 1:
            cross = np.einsum("ij,ij,j->i", mask, rank, uy[0])
        else:
            cross = np.einsum("ij,ij,ij->i", mask, rank, uy)
        return kept, kept * (kept + 1) / 2, kept * (kept + 1) * (2 * kept + 1) / 6, cross


def _distinct_rows(scores: np.ndarray) -> np.ndarray:
    """Score rows whose descending tie-grouped order differs; rows with equal orders give equal metrics.

    mteb often reports the same ranking under several names (model similarity = cosine, and dot = cosine
    for normalised embeddings): evaluating such a row once saves most of the pair-classification cost.
    """
    seen: dict[bytes, int] = {}
    for j, row in enumerate(scores):
        _, dense = np.unique(-row, return_inverse=True)
        seen.setdefault(dense.astype(np.int64).tobytes(), j)
    return scores[sorted(seen.values())]


class _AveragePrecision:
    """sklearn's average_precision_score for one score row, weighted, from TP/FP sums at the positives.

    sklearn puts a threshold at every distinct score and sums (R_t - R_{t-1}) * P_t. Only thresholds at a
    positive's score change recall, so the statistics are, for the p-th positive in score order, TP_p
    (positive weight up to it, in stable order) and FP_p (negative weight scoring >= it); ``finish``
    reads both at the last positive of each tie group. Negatives below every positive never count
    and are dropped up front.

    ``bins[u]`` is the first positive slot that unit u counts towards (``n_slots`` when none): TP_p and
    FP_p sum the weights of positives / negatives with bin <= p. Every row has one slot per positive,
    so any two rows' statistics line up (see ``_BinShift``).
    """

    def __init__(self, score: np.ndarray, label: np.ndarray) -> None:
        order = np.argsort(-score, kind="stable")
        s, y = score[order], label[order] == 1
        new_value = np.r_[True, s[1:] != s[:-1]]
        group = np.cumsum(new_value) - 1
        negatives_through_group = np.cumsum(~y)[np.r_[new_value[1:], True]]  # per distinct score
        self.pos_units = order[y]
        self.n_slots = self.pos_units.shape[0]
        self.fp_through = negatives_through_group[group[y]]  # negatives scoring >= each positive
        self.neg_units = order[~y][: self.fp_through[-1] if self.n_slots else 0]
        pos_group = group[y]
        last = np.r_[pos_group[1:] != pos_group[:-1], True]
        self.group_last = None if last.all() else np.flatnonzero(last)  # None: no tied positives
        self.bins = np.searchsorted(-s[y], -score, side="left")  # positives scoring strictly higher
        self.bins[self.pos_units] = np.arange(self.n_slots)

    @property
    def threshold_slots(self) -> np.ndarray:
        """Which slots end a tie group of positives (bool, n_slots): where sklearn puts thresholds."""
        if self.group_last is None:
            return np.ones(self.n_slots, dtype=bool)
        ends = np.zeros(self.n_slots, dtype=bool)
        ends[self.group_last] = True
        return ends

    def stats(self, w: np.ndarray) -> Stats:
        acc = _accumulator(w)
        tp = np.cumsum(np.take(w, self.pos_units, axis=1), axis=1, dtype=acc)
        negatives = np.take(w, self.neg_units, axis=1)
        if negatives.dtype.itemsize == 1 and negatives.size and negatives.max() <= 1:
            return tp, _binary_prefix_sums(negatives, self.fp_through).astype(acc)
        fp_cum = np.zeros((w.shape[0], self.neg_units.shape[0] + 1), dtype=acc)
        np.cumsum(negatives, axis=1, dtype=acc, out=fp_cum[:, 1:])
        return tp, np.take(fp_cum, self.fp_through, axis=1)

    def numerator(self, tp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sum_g (TP_g - TP_{g-1}) * P_g, total positive weight): AP is their ratio."""
        if tp.shape[1] == 0:
            return np.zeros(tp.shape[0]), np.zeros(tp.shape[0])
        if self.group_last is not None:  # tied positives share one threshold: read at the group's end
            tp, fp = np.take(tp, self.group_last, axis=1), np.take(fp, self.group_last, axis=1)
        precision = _precision(tp, fp)
        # the differences TP_g - TP_{g-1} are never materialised
        gains = np.einsum("ij,ij->i", tp, precision) - np.einsum("ij,ij->i", tp[:, :-1], precision[:, 1:])
        return gains, tp[:, -1]


def _binary_prefix_sums(bits: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """sum(bits[:, :c]) for every cut c (R, len(cuts)), for 0/1 rows: popcounts of 64-bit words.

    The randomization masks are bits, and only a few prefix sums (one per positive) are needed among
    many negatives: packing and counting words touches 1/64 of the values a cumulative sum would.
    """
    rows, size = bits.shape
    words = -(-size // 64)
    packed = np.zeros((rows, words * 8), dtype=np.uint8)
    packed[:, : -(-size // 8)] = np.packbits(bits.view(np.uint8), axis=1, bitorder="little")
    packed = packed.view("<u8")  # element 64k + j is bit j of word k
    before = np.zeros((rows, words + 1), dtype=np.int32)
    np.cumsum(np.bitwise_count(packed), axis=1, dtype=np.int32, out=before[:, 1:])
    word, offset = cuts // 64, (cuts % 64).astype(np.uint64)
    partial = np.take(packed, np.minimum(word, words - 1), axis=1) & ((np.uint64(1) << offset) - np.uint64(1))
    return np.take(before, word, axis=1) + np.bitwise_count(partial)


def _precision(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """TP / (TP + FP); where nothing is seen TP is 0 too, and any positive floor gives precision 0."""
    seen = tp + fp
    np.maximum(seen, 1 if seen.dtype.kind in "iu" else np.finfo(np.float64).tiny, out=seen)
    return tp / seen


def _gain_terms(tp: np.ndarray, tp_before: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """sum over the given slots of (TP_p - TP_{p-1}) * P_p."""
    return np.einsum("ij,ij->i", tp - tp_before, _precision(tp, fp))


class _BinShift:
    """TP or FP of a row from those of a base row: exact, and cheap when few units change bin.

    Similarity functions of one model rank pairs almost identically (cosine, dot and Euclidean agree up
    to float rounding for normalised embeddings), so few units change bin between them. A unit whose bin
    moves from b0 to b adds its weight to the sums of slots [b, b0) (or removes it from [b0, b)): a
    difference array over slots, scattered from the moved units only, then a cumulative sum.
    """

    def __init__(self, base_bins: np.ndarray, bins: np.ndarray, n_slots: int) -> None:
        moved = np.flatnonzero(base_bins != bins)
        step = np.where(bins[moved] < base_bins[moved], 1, -1).astype(np.int8)
        low, high = np.minimum(bins[moved], base_bins[moved]), np.maximum(bins[moved], base_bins[moved])
        self.low, self.high = low, high
        targets = np.r_[low, high]
        order = np.argsort(targets, kind="stable")
        self.units = np.r_[moved, moved][order]
        self.steps = np.r_[step, -step][order]
        self.targets, self.starts = np.unique(targets[order], return_index=True)
        self.n_slots = n_slots

    @property
    def size(self) -> int:
        return self.units.shape[0]

    def at(self, w: np.ndarray, dtype: type[np.number], *slots: np.ndarray) -> list[np.ndarray]:
        """The correction at each given slot array only (R, len): O(moved + slots), not O(n_slots)."""
        if self.size == 0:
            return [np.zeros((w.shape[0], where.shape[0]), dtype=dtype) for where in slots]
        signed = np.take(w, self.units, axis=1) * self.steps
        running = np.zeros((w.shape[0], self.targets.shape[0] + 1), dtype=dtype)
        np.cumsum(np.add.reduceat(signed, self.starts, axis=1, dtype=dtype), axis=1, out=running[:, 1:])
        return [np.take(running, np.searchsorted(self.targets, where, side="right"), axis=1) for where in slots]

    def covered(self) -> np.ndarray:
        """Slots whose value this shift can change: the union of the moved units' ranges (bool, n_slots)."""
        edges = np.zeros(self.n_slots + 1, dtype=np.int64)
        np.add.at(edges, self.low, 1)
        np.add.at(edges, self.high, -1)
        return np.cumsum(edges)[: self.n_slots] > 0

    def apply(self, base: np.ndarray, w: np.ndarray) -> np.ndarray:
        if self.size == 0:
            return base
        signed = np.take(w, self.units, axis=1) * self.steps
        diff = np.zeros((w.shape[0], self.n_slots + 1), dtype=base.dtype)
        diff[:, self.targets] = np.add.reduceat(signed, self.starts, axis=1, dtype=base.dtype)
        return base + np.cumsum(diff[:, : self.n_slots], axis=1, dtype=base.dtype)


class _WideShift:
    """A row derived from a fully computed base row by shifting its TP and FP at every slot."""

    def __init__(self, base: int, tp: _BinShift, fp: _BinShift) -> None:
        self.base, self.tp, self.fp = base, tp, fp

    def stats(self, w: np.ndarray, base_stats: Stats) -> Stats:
        return self.tp.apply(base_stats[0], w), self.fp.apply(base_stats[1], w)


_Slots = tuple[np.ndarray, np.ndarray]


class _SlotShift:
    """A row derived from a base row at the few slots where its AP terms can differ.

    AP numerator = sum over threshold slots p (the last positive of each tie group) of
    (TP_p - TP_prev(p)) * TP_p / (TP_p + FP_p), prev(p) the threshold slot before p. Away from the moved
    units' ranges and from differences in tie groups, the two rows' terms coincide, so
    numerator = base numerator + (this row's terms - the base row's terms) over the affected slots.
    """

    def __init__(self, base: int, tp: _BinShift, fp: _BinShift, own: _Slots, theirs: _Slots) -> None:
        self.base, self.tp, self.fp = base, tp, fp
        self.slots, self.before = own  # this row's affected threshold slots and their predecessors
        self.base_slots, self.base_before = theirs

    @staticmethod
    def affected(changed: np.ndarray, own_ends: np.ndarray, base_ends: np.ndarray) -> tuple[_Slots, _Slots]:
        """(this row's, the base row's) threshold slots to re-sum, and the slots before each.

        ``changed`` marks the slots whose TP or FP can differ; a term also differs where the threshold
        slots themselves or their predecessors differ, or where its predecessor's values do.
        """
        own_prev, base_prev = _previous_end(own_ends), _previous_end(base_ends)
        changed = changed | (own_ends != base_ends) | (own_prev != base_prev)
        pairs = []
        for ends, prev in ((own_ends, own_prev), (base_ends, base_prev)):
            hit = ends & (changed | changed[np.maximum(prev, 0)] & (prev >= 0))
            slots = np.flatnonzero(hit)
            pairs.append((slots, prev[slots]))
        return tuple(pairs)

    def stats(self, w: np.ndarray, base_stats: Stats) -> Stats:
        tp0, fp0 = base_stats
        tp_shift, tp_before_shift = self.tp.at(w, tp0.dtype, self.slots, self.before)
        (fp_shift,) = self.fp.at(w, fp0.dtype, self.slots)
        return (
            _take_slots(tp0, self.slots) + tp_shift,
            _take_slots(tp0, self.before) + tp_before_shift,
            _take_slots(fp0, self.slots) + fp_shift,
        )

    def numerator(self, stats: Stats, base_stats: Stats, base_numerator: tuple) -> tuple[np.ndarray, np.ndarray]:
        tp0, fp0 = base_stats
        slots, before = self.base_slots, self.base_before
        base_terms = _gain_terms(_take_slots(tp0, slots), _take_slots(tp0, before), _take_slots(fp0, slots))
        gains, total = base_numerator
        return gains + _gain_terms(*stats) - base_terms, total


def _previous_end(ends: np.ndarray) -> np.ndarray:
    """For every slot, the threshold slot strictly before it (-1: none)."""
    marks = np.where(ends, np.arange(ends.shape[0]), -1)
    return np.r_[-1, np.maximum.accumulate(marks)[:-1]] if ends.shape[0] else marks


def _take_slots(values: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """values[:, slots] with slot -1 read as 0 (nothing precedes the first positive)."""
    taken = np.take(values, np.maximum(slots, 0), axis=1)
    taken[:, slots < 0] = 0
    return taken


class _MaxAveragePrecision:
    """Pair classification ``max_ap``: the best average precision over the k similarity functions.

    Similarity functions of one model rank pairs almost alike, so a row may be derived from an earlier
    fully computed row (exactly, see ``_BinShift``): at the few affected slots (``_SlotShift``), or at
    every slot (``_WideShift``) when too many are affected.
    """

    def __init__(self, data: Data) -> None:
        scores = np.atleast_2d(np.asarray(data["scores"], dtype=np.float64))
        label = np.asarray(data["label"])
        self.n = label.shape[0]
        self.rows = [_AveragePrecision(row, label) for row in _distinct_rows(scores)]
        self.plan: list[_WideShift | _SlotShift | None] = []  # None: computed in full
        for row in self.rows:
            self.plan.append(self._derive(row, label == 1))
        self.sizes = [2 if not isinstance(p, _SlotShift) else 3 for p in self.plan]

    def _derive(self, row: _AveragePrecision, positive: np.ndarray) -> _WideShift | _SlotShift | None:
        """How to get this row from the full row it differs least from; None when in full is cheaper."""
        full_cost = row.pos_units.shape[0] + row.neg_units.shape[0]
        best, best_moved = None, full_cost // 8
        for i, planned in enumerate(self.plan):  # the rows before this one; only full ones can be bases
            moved = np.count_nonzero(self.rows[i].bins != row.bins) if planned is None else best_moved
            if moved < best_moved:
                best, best_moved = i, moved
        if best is None:
            return None
        base = self.rows[best]
        tp = _BinShift(np.where(positive, base.bins, 0), np.where(positive, row.bins, 0), row.n_slots)
        fp = _BinShift(np.where(positive, 0, base.bins), np.where(positive, 0, row.bins), row.n_slots)
        own, theirs = _SlotShift.affected(tp.covered() | fp.covered(), row.threshold_slots, base.threshold_slots)
        if 8 * (own[0].shape[0] + theirs[0].shape[0]) < row.n_slots:
            return _SlotShift(best, tp, fp, own, theirs)
        return _WideShift(best, tp, fp)

    @property
    def essential(self) -> np.ndarray:
        """Units whose weight can change the metric: positives, and negatives above some positive."""
        return np.flatnonzero(np.any([row.bins < row.n_slots for row in self.rows], axis=0))

    def stats(self, w: np.ndarray) -> Stats:
        out: list[Stats] = []
        for row, planned in zip(self.rows, self.plan, strict=True):
            out.append(row.stats(w) if planned is None else planned.stats(w, out[planned.base]))
        return tuple(s for row_stats in out for s in row_stats)

    def finish(self, stats: Stats) -> np.ndarray:
        return self.per_row(stats).max(axis=0)

    def per_row(self, stats: Stats) -> np.ndarray:
        """Average precision of every distinct row (k, R)."""
        ends = np.cumsum(self.sizes)
        per_row = [stats[end - size : end] for end, size in zip(ends, self.sizes, strict=True)]
        numerators: list[tuple[np.ndarray, np.ndarray]] = []
        for row, planned, row_stats in zip(self.rows, self.plan, per_row, strict=True):
            if isinstance(planned, _SlotShift):
                base = planned.base
                numerators.append(planned.numerator(row_stats, per_row[base], numerators[base]))
            else:
                numerators.append(row.numerator(*row_stats))
        return np.array([_safe_divide(gains, total) for gains, total in numerators])


class _BestThresholdAccuracy:
    """mteb 1.38.30 ``find_best_acc_and_threshold`` for one score row, weighted.

    mteb sorts items by score (descending, stable), cuts after item i for i in 0..N-2 and scores
    (positives above + negatives below) / N. Inside a run of copies of one unit that count moves
    monotonically, so its best cut is at a unit boundary, or at the first/last allowed cut (after item 1
    or item N-1) which can fall inside a unit's copies. Statistics: cumulative weight C and cumulative
    signed weight D (+1 positive, -1 negative) at every unit boundary, both linear in w.
    """

    def __init__(self, score: np.ndarray, label: np.ndarray, position: np.ndarray) -> None:
        self.order = np.lexsort((position, -score))
        self.sign = np.where(label[self.order] == 1, 1.0, -1.0)

    def stats(self, w: np.ndarray) -> Stats:
        ws = np.take(w, self.order, axis=1)
        return np.cumsum(ws, axis=1, dtype=_accumulator(ws)), np.cumsum(ws * self.sign, axis=1)

    def finish(self, c: np.ndarray, d: np.ndarray) -> np.ndarray:
        total, signed = c[:, -1:], d[:, -1:]
        negatives = (total - signed) / 2
        at_boundaries = np.where((c >= 1) & (c <= total - 1), negatives + d, -np.inf).max(axis=1)
        first = self.sign[np.argmax(c > 0, axis=1)]
        last = self.sign[np.argmax(c >= total, axis=1)]
        after_first = negatives[:, 0] + first
        before_last = negatives[:, 0] + signed[:, 0] - last
        best = np.maximum.reduce([at_boundaries, after_first, before_last, np.zeros_like(after_first)])
        best = np.where(total[:, 0] >= 2, best, 0.0)
        return _safe_divide(best, total[:, 0])


class _MaxAccuracy:
    """Pair classification ``max_accuracy``: the best threshold accuracy over the k similarity functions."""

    def __init__(self, data: Data) -> None:
        scores = np.atleast_2d(np.asarray(data["scores"], dtype=np.float64))
        label = np.asarray(data["label"])
        self.n = label.shape[0]
        position = np.asarray(data.get("position", np.arange(self.n)))
        self.rows = [_BestThresholdAccuracy(row, label, position) for row in _distinct_rows(scores)]

    def stats(self, w: np.ndarray) -> Stats:
        return tuple(s for row in self.rows for s in row.stats(w))

    def finish(self, stats: Stats) -> np.ndarray:
        accs = [row.finish(stats[2 * j], stats[2 * j + 1]) for j, row in enumerate(self.rows)]
        return np.max(accs, axis=0)


class _F1:
    """F1 from each unit's gold and predicted label: macro (the mean over labels, as sklearn's average="macro",
    for classification, averaged over experiments) or weighted (by support, as average="weighted", bitext mining).

    Per label, true positives, support and predicted counts are linear in the weights (sparse one-hot products), so
    resamples and randomization complements cost one product each; F1_l = 2 tp / (support + predicted), and the
    labels that count are those in the resample's gold or predictions, as in sklearn."""

    weight_dtype = np.float64

    def __init__(self, data: Data, average: str) -> None:
        from scipy.sparse import csr_matrix

        gold = np.asarray(data["gold"]).astype(np.int64)
        pred = np.atleast_2d(np.asarray(data["pred"])).astype(np.int64)  # (experiments, n)
        labels = np.unique(np.concatenate([gold, pred.ravel()]))
        self.n, self.average = gold.shape[0], average
        rows, shape = np.arange(self.n), (self.n, labels.shape[0])

        def one_hot(columns: np.ndarray, keep: np.ndarray | None = None) -> Any:
            values = np.ones(self.n) if keep is None else keep.astype(np.float64)
            return csr_matrix((values, (rows, np.searchsorted(labels, columns))), shape=shape).T.tocsr()

        self.support = one_hot(gold)
        self.predicted = [one_hot(p) for p in pred]
        self.hits = [one_hot(gold, p == gold) for p in pred]

    def stats(self, w: np.ndarray) -> Stats:
        wt = np.asarray(w, dtype=np.float64).T
        return (
            (self.support @ wt).T,
            *[(h @ wt).T for h in self.hits],
            *[(p @ wt).T for p in self.predicted],
        )

    def finish(self, stats: Stats) -> np.ndarray:
        support, experiments = stats[0], len(self.hits)
        scores = []
        for tp, predicted in zip(stats[1 : 1 + experiments], stats[1 + experiments :], strict=True):
            denominator = support + predicted
            f1 = _safe_divide(2 * tp, denominator)
            if self.average == "macro":
                present = denominator > 0
                scores.append(_safe_divide((f1 * present).sum(axis=1), present.sum(axis=1)))
            else:
                scores.append(_safe_divide((f1 * support).sum(axis=1), support.sum(axis=1)))
        return np.mean(scores, axis=0)


def _prepare_linear(kind: str) -> Callable[[Data], _Kind]:
    return lambda data: _Linear(unit_values(kind, data))


_KINDS: dict[str, Callable[[Data], _Kind]] = {
    "mean": _prepare_linear("mean"),
    "accuracy": _prepare_linear("accuracy"),
    "spearman": _Spearman,
    "pearson": _Pearson,
    "max_ap": _MaxAveragePrecision,
    "max_accuracy": _MaxAccuracy,
    "f1_macro": lambda data: _F1(data, "macro"),
    "f1_weighted": lambda data: _F1(data, "weighted"),
}


class Prepared:
    """A metric kind bound to one record: evaluates weight matrices chunk by chunk to bound memory."""

    def __init__(self, kind: str, data: Data) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown metric kind {kind!r}; known: {sorted(_KINDS)}")
        self.kind = kind
        self.impl = _KINDS[kind](data)
        self.n = self.impl.n
        self._totals: Stats | None = None

    @property
    def essential(self) -> np.ndarray | None:
        """Sorted units whose weights can change the metric, or None when every unit can.

        Units outside it (pair-classification negatives scoring below every positive) may be dropped
        from the record without changing the metric under any weights, which saves drawing their counts.
        """
        return getattr(self.impl, "essential", None)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """The metric for every row of w (R, n)."""
        w = self._check(w)
        step = chunk_rows(self.n)
        parts = [self.impl.finish(self.impl.stats(w[i : i + step])) for i in range(0, len(w), step)]
        return np.concatenate(parts) if parts else np.empty(0)

    def with_complement(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The metric for 0/1 mask rows m and for their complements 1 - m, sharing the linear statistics."""
        mask = self._check(mask)
        totals = self._total_stats()
        step = chunk_rows(self.n)
        on, off = [], []
        for i in range(0, len(mask), step):
            m = mask[i : i + step]
            stats = self.impl.stats(m)
            on.append(self.impl.finish(stats))
            rest = tuple(t - s for t, s in zip(totals, stats, strict=True))
            off.append(self.impl.finish(rest))
        return np.concatenate(on), np.concatenate(off)

    def _total_stats(self) -> Stats:
        if self._totals is None:
            self._totals = self.impl.stats(np.ones((1, self.n), dtype=np.int8))
        return self._totals

    def _check(self, w: np.ndarray) -> np.ndarray:
        """Validate the shape; counts become int32 when every row total fits (faster gathers and sums).

        int8 stays int8 (0/1 masks; sums fit in int32 for n < 2**24).
        """
        w = np.asarray(w)
        if w.ndim != 2 or w.shape[1] != self.n:
            raise ValueError(f"weights must have shape (R, {self.n}), got {w.shape}")
        if w.dtype == np.bool_:
            w = w.view(np.int8)
        wanted = getattr(self.impl, "weight_dtype", None)
        if wanted is not None:
            return w.astype(wanted, copy=False)
        if w.dtype.kind in "iu" and w.dtype != np.int8:
            fits = w.size == 0 or w.sum(axis=1, dtype=np.int64).max() < 2**31
            return w.astype(np.int32 if fits else np.int64, copy=False)
        return w


def prepare(kind: str, data: Data) -> Prepared:
    """Bind ``kind`` to a record once, for many evaluations (sorting is done here, not per chunk)."""
    return Prepared(kind, data)


def _metric(kind: str) -> Callable[[Data, np.ndarray], np.ndarray]:
    def evaluate(data: Data, w: np.ndarray) -> np.ndarray:
        return prepare(kind, data)(w)

    evaluate.__name__ = f"metric_{kind}"
    evaluate.__doc__ = f"The {kind!r} metric (R,) of ``data`` under weight rows ``w`` (R, n)."
    return evaluate


METRICS: dict[str, Callable[[Data, np.ndarray], np.ndarray]] = {kind: _metric(kind) for kind in _KINDS}


def score(kind: str, data: Data) -> float:
    """The full-sample main score of a record: every unit once."""
    return float(METRICS[kind](data, np.ones((1, n_units(data)), dtype=np.int64))[0])
