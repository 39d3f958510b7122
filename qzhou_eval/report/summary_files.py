"""Summary tables to files and screens: summary.csv, per_task.csv, intervals.csv, deltas.csv, summary.md, summary.png.

Each writer takes the frames built by `summary.py` and only formats them; the averaging rule and
the provenance columns are stated in every markdown file so a table never travels without them.
Files go to `<output_dir>/summary/`, never into mteb's `<org__model>/<revision>/` folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..files import staged
from ..recipe.benchmarks import canonical_benchmark
from ..store.manifest import MANIFEST_NAME
from .intervals import score_intervals
from .reference import resolve_reference
from .summary import (
    KEY,
    benchmark_cells,
    delta_table,
    duplicate_rule,
    load_published,
    load_tree,
    merge_cells,
    points,
    select_reference,
    summary_table,
    task_scores,
    type_columns,
)

RULE = (
    "Scores in points (round(100 * x, 2)). A task's score is the mean main_score over the (split, subset) "
    "cells the benchmark keeps; Mean(Task) averages tasks, Mean(TaskType) averages the per-type means "
    "(mteb 1.38.30 leaderboard formulas). A missing task leaves its type mean and both means empty. "
    "`settings` fingerprints the embedding recipe the results' manifest records (`unknown`: no record); "
    "`data` says where the task data came from (hub / local / unknown). `a ± b`: b is half the width of the "
    "score's 95% bootstrap interval over its units (queries, pairs, test examples), where the run kept per-example "
    "records (per_task.csv: `ci_low`, `ci_high`; the means' in intervals.csv); none where it did not."
)


def labels(df: pd.DataFrame) -> list[str]:
    """`model@revision` per row; the settings are added where one (model, revision) has several."""
    pairs = list(zip(df["model"], df["revision"], strict=True))
    settings_per_pair: dict[tuple[str, str], set[str]] = {}
    for pair, settings in zip(pairs, df["settings"], strict=True):
        settings_per_pair.setdefault(pair, set()).add(settings)
    return [
        f"{m}@{r[:12]}" + (f" [{s}]" if len(settings_per_pair[(m, r)]) > 1 else "")
        for (m, r), s in zip(pairs, df["settings"], strict=True)
    ]


def _fmt(x: object) -> str:
    if isinstance(x, (float, np.floating)):
        return "" if np.isnan(x) else f"{x:.2f}"
    return str(x)


def markdown_table(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def per_task_points(per_task: pd.DataFrame) -> pd.DataFrame:
    out = per_task.copy()
    for column in ("score", "ci_low", "ci_high"):
        if column in out:
            out[column] = points(out[column])
    return out


def _shown(score: float, low: float, high: float) -> str:
    """`82.03 ± 0.95` (half the interval's width) where the score has an interval, else the score alone."""
    if np.isnan(score):
        return ""
    return f"{score:.2f}" if np.isnan(low) else f"{score:.2f} ± {(high - low) / 2:.2f}"


def task_matrix(per_task: pd.DataFrame) -> pd.DataFrame:
    """Tasks as rows (grouped by type), one column per (model, revision)."""
    df = per_task_points(per_task)
    df["column"] = labels(df)
    low = df["ci_low"] if "ci_low" in df else pd.Series(np.nan, index=df.index)
    high = df["ci_high"] if "ci_high" in df else pd.Series(np.nan, index=df.index)
    df["shown"] = [_shown(*v) for v in zip(df["score"], low, high, strict=True)]
    wide = df.pivot_table(index=["task_type", "task"], columns="column", values="shown", aggfunc="first", sort=True)
    wide = wide.reindex(columns=list(dict.fromkeys(df["column"]))).fillna("")
    return wide.reset_index()


def missing_tasks(per_task: pd.DataFrame) -> dict[str, list[str]]:
    """Row label -> the benchmark's tasks it has no score for."""
    missing = per_task[per_task["score"].isna()]
    if missing.empty:
        return {}
    out: dict[str, list[str]] = {}
    for label, task in zip(labels(missing), missing["task"], strict=True):
        out.setdefault(label, []).append(task)
    return out


def overall_table(summary: pd.DataFrame, mean_ci: pd.DataFrame | None) -> pd.DataFrame:
    """The overall columns; a mean with an interval (every task of the row kept records) shown as `a ± b`."""
    table = summary[[*KEY, "data", "n_tasks", "n_missing", "mean_task", "mean_task_type"]].copy()
    if mean_ci is None or mean_ci.empty:
        return table
    merged = table.merge(mean_ci, on=KEY, how="left")
    for column in ("mean_task", "mean_task_type"):
        table[column] = [
            _shown(v, lo, hi)
            for v, lo, hi in zip(merged[column], merged[f"{column}_ci_low"], merged[f"{column}_ci_high"], strict=True)
        ]
    return table


def render_markdown(
    benchmark: str,
    summary: pd.DataFrame,
    per_task: pd.DataFrame,
    deltas: pd.DataFrame | None,
    mean_ci: pd.DataFrame | None = None,
) -> str:
    parts = [
        f"# {benchmark}",
        "",
        RULE,
        "",
        "## Overall",
        "",
        markdown_table(overall_table(summary, mean_ci)),
    ]
    parts += ["", "## Per task type", "", markdown_table(summary[[*KEY, *type_columns(summary)]])]
    parts += ["", "## Per task", "", markdown_table(task_matrix(per_task))]
    missing = missing_tasks(per_task)
    if missing:
        parts += ["", "## Missing tasks", ""]
        parts += [f"- {label}: {', '.join(tasks)}" for label, tasks in missing.items()]
    if deltas is not None and len(deltas):
        parts += ["", f"## Deltas to {deltas['reference'].iloc[0]} (run - published, points)", ""]
        parts.append(markdown_table(deltas[[*KEY, "item", "task_type", "run", "published", "delta"]]))
    return "\n".join(parts) + "\n"


def render_console(summary: pd.DataFrame, per_task: pd.DataFrame, deltas: pd.DataFrame | None) -> str:
    """A compact table for the end of a run: the tasks that have scores, then the leaderboard row."""
    two = {"na_rep": "", "float_format": lambda v: f"{v:.2f}", "index": False}
    scored = per_task_points(per_task.dropna(subset=["score"]))
    text = scored[["task", "task_type", "score"]].to_string(**two) + "\n\n" if len(scored) else ""
    cols = [*KEY, "data", "n_tasks", "n_missing", "mean_task", "mean_task_type", *type_columns(summary)]
    df = summary[cols].copy()
    df["revision"] = df["revision"].str[:12]
    text += df.to_string(**two)
    for label, tasks in missing_tasks(per_task).items():
        shown = ", ".join(tasks[:10]) + (f" and {len(tasks) - 10} more (see summary.md)" if len(tasks) > 10 else "")
        text += f"\nmissing for {label}: {shown}"
    if deltas is not None and len(deltas):
        shown = deltas[deltas[["run", "published"]].notna().any(axis=1)]
        shown = shown[["item", "run", "published", "delta"]].to_string(**two)
        text += f"\n\ndeltas to {deltas['reference'].iloc[0]}:\n{shown}"
    return text


def plot(summary: pd.DataFrame, benchmark: str, path: Path) -> None:
    """Grouped bars: one group per task type (and the two means), one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ["mean_task", "mean_task_type", *type_columns(summary)]
    n = len(summary)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(groups) + 0.3 * n), 4.8))
    x = np.arange(len(groups))
    for i, (label, (_, row)) in enumerate(zip(labels(summary), summary.iterrows(), strict=True)):
        values = np.array([row[g] for g in groups], dtype=float)
        bars = ax.bar(
            x + (i - (n - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            label=label,
            hatch="//" if np.isnan(values).any() else None,
        )
        for bar, v in zip(bars, values, strict=True):
            ax.annotate(
                "n/a" if np.isnan(v) else f"{v:.1f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90 if n > 2 else 0,
            )
    ax.set_xticks(x, ["Mean(Task)", "Mean(TaskType)", *groups[2:]], rotation=20, ha="right")
    ax.set_ylabel("score (points)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{benchmark}: per task type")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(n, 2))
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _is_revision_folder(path: Path) -> bool:
    """mteb's `<org__model>/<revision>/` folder: it holds model_meta.json or our manifest."""
    return (path / "model_meta.json").is_file() or (path / MANIFEST_NAME).is_file()


def summary_folder(results_dirs: list[str], output_dir: str | None) -> Path:
    """`<output_dir>/summary/`; by default the first results dir, or the tree root above it when it is
    a revision folder itself (as after a run), or `./summary/` when that tree is read-only (its mode bits:
    root may write anyway, and must not). Never inside a revision folder."""
    if output_dir is not None:
        base = Path(output_dir)
        if _is_revision_folder(base) or _is_revision_folder(base.parent):
            raise UserError(
                f"--output_dir {output_dir} is inside a model's result folder; pick the tree root or another"
            )
        return base / "summary"
    first = Path(results_dirs[0])
    root = first.parent.parent if _is_revision_folder(first) else first
    if not root.stat().st_mode & 0o222 or not os.access(root, os.W_OK):  # read-only (mode bits: root writes anyway)
        return Path("summary")
    return root / "summary"


def summarize(
    results_dirs: list[str],
    benchmark: str,
    references: list[str] | None = None,
    output_dir: str | None = None,
    duplicates: str = "last",
    max_delta: float | None = None,
    allow_mixed: bool = False,
    reference_model: str | None = None,
    folder: Path | None = None,
) -> tuple[str, list[str]]:
    """Read trees, check provenance, compute, write every file; returns the console text and the tasks
    (or means) whose |delta| exceeds `max_delta`. `folder` (a run's own summary folder) replaces the
    default `<output_dir>/summary/`."""
    duplicates = duplicate_rule(duplicates)
    if max_delta is not None and (not references or not max_delta >= 0):
        raise UserError("--max_delta needs --reference and a value >= 0")
    for d in results_dirs:
        if not Path(d).is_dir():
            raise UserError(f"results directory does not exist: {d}")
    out = Path(folder) if folder is not None else summary_folder(results_dirs, output_dir)
    ref_paths = [resolve_reference(ref) for ref in references or []]
    benchmark = canonical_benchmark(benchmark)

    tasks = set(benchmark_cells(benchmark, duplicates)["task"])

    def of_benchmark(cells: pd.DataFrame) -> pd.DataFrame:
        """Only the benchmark's tasks take part: other results in the same folders never block a table."""
        return cells[cells["task"].isin(tasks)]

    cells = merge_cells(of_benchmark(pd.concat([load_tree(d) for d in results_dirs], ignore_index=True)), allow_mixed)
    per_task = task_scores(cells, benchmark, duplicates)
    if per_task.empty:
        raise UserError(f"no {benchmark} results found under {', '.join(results_dirs)}")
    summary = summary_table(per_task, benchmark)
    task_ci, mean_ci = score_intervals(cells, per_task, benchmark, duplicates)
    per_task = per_task.merge(task_ci, on=[*KEY, "task"], how="left")
    mean_ci = mean_ci.assign(**{c: points(mean_ci[c]) for c in mean_ci.columns[len(KEY) :]})
    ref_frames, delta_frames = [], []
    for path in ref_paths:
        ref_cells = select_reference(of_benchmark(load_published(path)), str(path), reference_model)
        hint = f"The reference {path} must hold one model's results made with one set of settings."
        ref_tasks = task_scores(merge_cells(ref_cells, hint=hint), benchmark, duplicates)
        if ref_tasks.empty:
            raise UserError(f"reference {path} holds no {benchmark} results")
        ref_summary = summary_table(ref_tasks, benchmark)
        delta_frames.append(delta_table(per_task, ref_tasks, summary, ref_summary))
        ref_tasks["model"] = ref_tasks["model"] + " (published)"
        ref_summary["model"] = ref_summary["model"] + " (published)"
        ref_frames.append((ref_tasks, ref_summary))
    deltas = pd.concat(delta_frames, ignore_index=True) if delta_frames else None
    all_tasks = pd.concat([per_task, *(t for t, _ in ref_frames)], ignore_index=True)
    all_summary = pd.concat([summary, *(s for _, s in ref_frames)], ignore_index=True)

    try:
        out.mkdir(parents=True, exist_ok=True)
        with staged(out / "summary.csv") as tmp:
            all_summary.to_csv(tmp, index=False, float_format="%.2f")
        with staged(out / "per_task.csv") as tmp:
            per_task_points(all_tasks).to_csv(tmp, index=False, float_format="%.2f")
        if deltas is not None:
            with staged(out / "deltas.csv") as tmp:
                deltas.to_csv(tmp, index=False, float_format="%.2f")
        else:
            (out / "deltas.csv").unlink(missing_ok=True)  # an earlier summary's deltas would mislead
        with staged(out / "summary.md") as tmp:
            tmp.write_text(render_markdown(benchmark, all_summary, all_tasks, deltas, mean_ci), encoding="utf-8")
        if mean_ci.iloc[:, len(KEY) :].notna().any().any():  # only where some row's means have an interval
            with staged(out / "intervals.csv") as tmp:
                mean_ci.to_csv(tmp, index=False, float_format="%.2f")
        else:
            (out / "intervals.csv").unlink(missing_ok=True)
        with staged(out / "summary.png") as tmp:
            plot(all_summary, benchmark, tmp)
    except OSError as exc:
        raise UserError(f"cannot write the summary to {out}: {exc.strerror or exc}") from None

    exceeded: list[str] = []
    if max_delta is not None and deltas is not None:
        over = deltas[deltas["delta"].abs() > max_delta]
        exceeded = list(dict.fromkeys(over["item"]))
    written = f"written: {out}/summary.(csv|md|png), per_task.csv" + (", deltas.csv" if deltas is not None else "")
    written += ", intervals.csv" if (out / "intervals.csv").exists() else ""
    return render_console(summary, per_task, deltas) + "\n\n" + written, exceeded
