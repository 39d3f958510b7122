"""How big a task is: distinct texts and characters, for shard balancing, the suite ETA and `--dry_run`.

Source, in order: mteb's measured statistics carried in `data/task_stats.json` (distinct texts, not raw
samples: MindSmallReranking has 2.4 M samples but 42 k distinct texts), summed over the splits the run
evaluates and scaled to the share of subsets it keeps; else the size on disk of the task's local data
under `--data_dir` (bytes stand in for characters, the text count is unknown); else unknown, costed as
the median task of the statistics so one unmeasured task neither dominates nor vanishes.
Characters are the cost unit: encoding time grows with input length, and one shard plan covers one
benchmark, so the characters-per-token ratio of its language is roughly the same for every task.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..files import REPO_ROOT

STATS_FILE = REPO_ROOT / "data" / "task_stats.json"


@dataclass(frozen=True)
class TaskSize:
    texts: int | None  # distinct texts; None when only the local data's bytes are known
    chars: int  # characters of those texts (bytes of local files for the local fallback)
    source: str  # "mteb stats", "mteb stats, k/n subsets", "local data (bytes)", "unknown"

    @property
    def cost(self) -> float:
        return float(max(self.chars, 1))

    @property
    def exact(self) -> bool:
        """Measured for exactly what runs (not scaled, not bytes, not a guess)."""
        return self.source == "mteb stats"


@cache
def stats() -> dict[str, Any]:
    return json.loads(STATS_FILE.read_text(encoding="utf-8"))["tasks"]


@cache
def _median_chars() -> int:
    return int(statistics.median(sum(s["chars"] for s in t["splits"].values()) for t in stats().values()))


def _dir_bytes(path: Path) -> int:
    """Data files only: hub metadata (.cache/, .gitattributes) is not data."""
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
    )


def _from_stats(name: str, splits: tuple[str, ...], subsets: tuple[str, ...]) -> TaskSize | None:
    entry = stats().get(name)
    if entry is None:
        return None
    cells = [entry["splits"][s] for s in splits if s in entry["splits"]]
    if not cells or len(cells) < len(splits):
        return None
    texts, chars = sum(c["texts"] for c in cells), sum(c["chars"] for c in cells)
    total = entry.get("subsets", 1)
    kept = len(subsets) if subsets else total
    if kept >= total:
        return TaskSize(texts, chars, "mteb stats")
    share = kept / total
    return TaskSize(round(texts * share), round(chars * share), f"mteb stats, {kept}/{total} subsets")


def task_size(
    name: str,
    splits: tuple[str, ...] = (),
    subsets: tuple[str, ...] = (),
    dataset_path: str | None = None,
    data_dir: str | None = None,
) -> TaskSize:
    """The size of one task as a run evaluates it (its splits, its subsets). Empty `splits` = all measured."""
    entry = stats().get(name)
    if entry is not None and not splits:
        splits = tuple(entry["splits"])
    measured = _from_stats(name, tuple(splits), tuple(subsets))
    if measured is not None:
        return measured
    if data_dir and dataset_path:
        local = Path(data_dir) / dataset_path
        if local.is_dir():
            qrels = Path(str(local) + "-qrels")
            size = _dir_bytes(local) + (_dir_bytes(qrels) if qrels.is_dir() else 0)
            return TaskSize(None, size, "local data (bytes)")
    return TaskSize(None, _median_chars(), "unknown")


def spec_size(spec: Any, data_dir: str | None) -> TaskSize:
    """`task_size` of a `recipe.benchmarks.BenchmarkTask`-like object (name, splits, subsets, dataset_path); an
    aggregate is the sum of its subtasks, which mteb runs."""
    if getattr(spec, "subtasks", ()):
        parts = [spec_size(sub, data_dir) for sub in spec.subtasks]
        texts = None if any(p.texts is None for p in parts) else sum(p.texts for p in parts)
        sources = sorted({p.source for p in parts})
        return TaskSize(texts, sum(p.chars for p in parts), f"{len(parts)} subtasks: {', '.join(sources)}")
    return task_size(
        spec.name,
        tuple(getattr(spec, "splits", ()) or ()),
        tuple(getattr(spec, "subsets", ()) or ()),
        getattr(spec, "dataset_path", None),
        data_dir,
    )


def human(n: float) -> str:
    """1234567 -> '1.23 M' (three significant digits): sizes span 100 to 10^9."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def size_table(sizes: dict[str, TaskSize]) -> str:
    """Per task distinct texts and characters, then the total; `~` marks estimates, `?` unknowns."""
    lines = [f"{'task':40s} {'texts':>10s} {'characters':>12s}  source"]
    for name, s in sizes.items():
        mark = "" if s.exact else "~"
        texts = "?" if s.texts is None else f"{mark}{s.texts:,}"
        chars = "?" if s.source == "unknown" else f"{mark}{s.chars:,}"
        lines.append(f"{name:40s} {texts:>10s} {chars:>12s}  {s.source}")
    known_texts = sum(s.texts for s in sizes.values() if s.texts is not None)
    known_chars = sum(s.chars for s in sizes.values() if s.source != "unknown")
    missing = [n for n, s in sizes.items() if s.texts is None]
    note = f" ({len(missing)} task(s) without a text count)" if missing else ""
    lines.append(f"{'total':40s} {known_texts:>10,} {known_chars:>12,}  {len(sizes)} tasks{note}")
    return "\n".join(lines)
