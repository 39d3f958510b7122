"""Summary tables to files and screens: summary.csv, per_task.csv, deltas.csv, summary.md, summary.png.

Each writer takes the frames built by `summary.py` and only formats them; the averaging rule is
stated in every markdown file so a table never travels without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .summary import points

RULE = (
    "Scores in points (round(100 * x, 2)). A task's score is the mean main_score over the (split, subset) "
    "cells the benchmark keeps; Mean(Task) averages tasks, Mean(TaskType) averages the per-type means "
    "(mteb 1.38.30 leaderboard formulas). A missing task leaves its type mean and both means empty."
)


def _label(model: str, revision: str) -> str:
    return f"{model}@{revision[:12]}"


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
    out["score"] = points(out["score"])
    return out


def task_matrix(per_task: pd.DataFrame) -> pd.DataFrame:
    """Tasks as rows (grouped by type), one column per (model, revision)."""
    df = per_task_points(per_task)
    df["column"] = [_label(m, r) for m, r in zip(df["model"], df["revision"], strict=True)]
    wide = df.pivot_table(index=["task_type", "task"], columns="column", values="score", dropna=False, sort=True)
    wide = wide.reindex(columns=list(dict.fromkeys(df["column"])))
    return wide.reset_index()


def render_markdown(benchmark: str, summary: pd.DataFrame, per_task: pd.DataFrame, deltas: pd.DataFrame | None) -> str:
    parts = [
        f"# {benchmark}",
        "",
        RULE,
        "",
        "## Overall",
        "",
        markdown_table(summary[["model", "revision", "n_tasks", "n_missing", "mean_task", "mean_task_type"]]),
    ]
    types = [c for c in summary.columns[7:]]
    parts += ["", "## Per task type", "", markdown_table(summary[["model", "revision", *types]])]
    parts += ["", "## Per task", "", markdown_table(task_matrix(per_task))]
    missing = per_task[per_task["score"].isna()]
    if len(missing):
        parts += ["", "## Missing tasks", ""]
        for (model, revision), group in missing.groupby(["model", "revision"], sort=False):
            parts.append(f"- {_label(model, revision)}: {', '.join(group['task'])}")
    if deltas is not None and len(deltas):
        parts += ["", f"## Deltas to {deltas['reference'].iloc[0]} (run - published, points)", ""]
        parts.append(markdown_table(deltas[["model", "revision", "item", "task_type", "run", "published", "delta"]]))
    return "\n".join(parts) + "\n"


def render_console(summary: pd.DataFrame, per_task: pd.DataFrame, deltas: pd.DataFrame | None) -> str:
    """A compact table for the end of a run: the tasks that have scores, then the leaderboard row."""
    two = {"na_rep": "", "float_format": lambda v: f"{v:.2f}", "index": False}
    scored = per_task_points(per_task.dropna(subset=["score"]))
    text = scored[["task", "task_type", "score"]].to_string(**two) + "\n\n" if len(scored) else ""
    cols = ["model", "revision", "n_tasks", "n_missing", "mean_task", "mean_task_type", *summary.columns[7:]]
    df = summary[cols].copy()
    df["revision"] = df["revision"].str[:12]
    text += df.to_string(**two)
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

    groups = ["mean_task", "mean_task_type", *summary.columns[7:]]
    n = len(summary)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(groups) + 0.3 * n), 4.8))
    x = np.arange(len(groups))
    for i, row in enumerate(summary.itertuples(index=False)):
        values = np.array([getattr(row, g) for g in groups], dtype=float)
        bars = ax.bar(
            x + (i - (n - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            label=_label(row.model, row.revision),
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(
    results_dirs: list[str],
    benchmark: str,
    references: list[str] | None = None,
    output_dir: str | None = None,
    duplicates: str = "validation",
    max_delta: float | None = None,
) -> tuple[str, list[str]]:
    """Read trees, compute, write every file; returns the console text and the tasks over max_delta."""
    from .errors import UserError
    from .reference import resolve_reference
    from .summary import delta_table, load_published, load_tree, summary_table, task_scores

    cells = pd.concat([load_tree(d) for d in results_dirs], ignore_index=True)
    per_task = task_scores(cells, benchmark, duplicates)
    if per_task.empty or not cells["task"].isin(set(per_task["task"])).any():
        raise UserError(f"no {benchmark} results found under {', '.join(results_dirs)}")
    summary = summary_table(per_task, benchmark)
    ref_frames, delta_frames = [], []
    for ref in references or []:
        ref_tasks = task_scores(load_published(resolve_reference(ref)), benchmark, duplicates)
        ref_summary = summary_table(ref_tasks, benchmark)
        delta_frames.append(delta_table(per_task, ref_tasks, summary, ref_summary))
        ref_tasks["model"] = ref_tasks["model"] + " (published)"
        ref_summary["model"] = ref_summary["model"] + " (published)"
        ref_frames.append((ref_tasks, ref_summary))
    deltas = pd.concat(delta_frames, ignore_index=True) if delta_frames else None
    all_tasks = pd.concat([per_task, *(t for t, _ in ref_frames)], ignore_index=True)
    all_summary = pd.concat([summary, *(s for _, s in ref_frames)], ignore_index=True)

    out = Path(output_dir or results_dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    all_summary.to_csv(out / "summary.csv", index=False, float_format="%.2f")
    per_task_points(all_tasks).to_csv(out / "per_task.csv", index=False, float_format="%.2f")
    if deltas is not None:
        deltas.to_csv(out / "deltas.csv", index=False, float_format="%.2f")
    (out / "summary.md").write_text(render_markdown(benchmark, all_summary, all_tasks, deltas), encoding="utf-8")
    plot(all_summary, benchmark, out / "summary.png")

    exceeded: list[str] = []
    if max_delta is not None and deltas is not None:
        over = deltas[deltas["delta"].abs() > max_delta]
        exceeded = list(dict.fromkeys(over["item"]))
    return render_console(
        summary, per_task, deltas
    ) + f"\n\nwritten: {out}/summary.(csv|md|png), per_task.csv", exceeded
