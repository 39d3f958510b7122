"""`compare` output: compare.csv, compare.md and a forest plot compare.png in `<output_dir>/compare/`, and a verdict.

Values are in points (100 x the fraction), as leaderboards show them; `p_value` is a probability. Every file is
written whole or not at all (`files.staged`), and the markdown states the method, the seed and the resamples so
a table never travels without them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from ..files import staged
from .compare import COLUMNS, compare_pair, kept_cells, model_runs, verdict
from .paired import MEAN_TASK, MEAN_TYPE
from .summary_files import markdown_table, summary_folder

METHOD = (
    "Δ = model − baseline, in points, from the result files' scores (the leaderboard's per-task score). "
    "`ci_low`/`ci_high`: {level}% paired bootstrap interval of Δ, the same resampled units (queries, pairs, test "
    "examples, ...) for both models, {resamples} resamples, seed {seed}. `p_value`: paired approximate randomization "
    "test (each unit's two models' data swapped with probability 1/2; ranks within each model for rank-based "
    "scores), p = (1 + #{{|Δ*| ≥ |Δ|}}) / (1 + R). `significant`: the task's Δ holds after Holm's correction over "
    "the tasks compared, at α = {alpha}. Means: `ci_low`/`ci_high` resample the units of every task jointly (this "
    "test set's examples); `task_ci_low`/`task_ci_high` resample the tasks (which tasks the benchmark holds). Neither "
    "includes batching or bf16 noise, a separate smaller floor (README, Batching noise floor)."
)


def run_compare(
    results_dirs: list[str],
    models: list[str],
    benchmark: str | None,
    tasks: tuple[str, ...],
    output_dir: str | None,
    resamples: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
    duplicates: str = "last",
) -> tuple[str, Path]:
    """Compare every model with the first (the baseline); write the files; return the verdict text and folder."""
    if len(models) < 2:
        raise UserError("--models needs a baseline and at least one model to compare with it")
    if benchmark is None and not tasks:
        raise UserError("compare needs --benchmark NAME or --tasks ...")
    if resamples < 100 or not 0 < alpha < 1 or seed < 0:
        raise UserError(f"need --resamples >= 100, 0 < --alpha < 1, --seed >= 0 (got {resamples}, {alpha}, {seed})")
    for d in results_dirs:
        if not Path(d).is_dir():
            raise UserError(f"results directory does not exist: {d}")
    if benchmark is not None:
        from ..recipe.benchmarks import canonical_benchmark

        benchmark = canonical_benchmark(benchmark)
    keep = kept_cells(benchmark, tasks, duplicates)
    if keep.empty:
        raise UserError(f"none of the tasks {', '.join(tasks)} is in {benchmark}")
    runs = model_runs(results_dirs, models, keep)
    options = {"resamples": resamples, "seed": seed, "alpha": alpha}
    frames = []
    for other in runs[1:]:
        print(f"comparing {other.label} with {runs[0].label} ...", file=sys.stderr, flush=True)
        frames.append(compare_pair(keep, runs[0], other, options, complete_means=benchmark is not None))
    frame = pd.concat(frames, ignore_index=True)
    if not (frame["task_type"] != "mean").any():
        raise UserError(f"no task has results for both {runs[0].label} and the compared model(s)")
    out = summary_folder(results_dirs, output_dir).parent / "compare"
    lines = verdict(frame)
    write_files(out, frame, lines, benchmark or ", ".join(tasks), options)
    return "\n".join(lines) + f"\n\nwritten: {out}/compare.(csv|md|png)", out


def write_files(out: Path, frame: pd.DataFrame, lines: list[str], what: str, options: dict) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with staged(out / "compare.csv") as tmp:
            frame[COLUMNS].to_csv(tmp, index=False, float_format="%.4f")
        with staged(out / "compare.md") as tmp:
            tmp.write_text(render_markdown(frame, lines, what, options), encoding="utf-8")
        with staged(out / "compare.png") as tmp:
            forest_plot(frame, what, tmp, options["alpha"])
    except OSError as exc:
        raise UserError(f"cannot write the comparison to {out}: {exc.strerror or exc}") from None


def render_markdown(frame: pd.DataFrame, lines: list[str], what: str, options: dict) -> str:
    method = METHOD.format(level=round(100 * (1 - options["alpha"])), **options)
    parts = [f"# Paired comparison: {what}", "", method, "", "## Verdict", "", *[f"- {line}" for line in lines]]
    for (base, model), rows in frame.groupby(["baseline", "model"], sort=False):
        shown = rows.copy()
        shown["interval"] = [
            "" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]"
            for lo, hi in zip(shown["ci_low"], shown["ci_high"], strict=True)
        ]
        shown["tasks interval"] = [
            "" if math.isnan(lo) else f"[{lo:+.2f}, {hi:+.2f}]"
            for lo, hi in zip(shown["task_ci_low"], shown["task_ci_high"], strict=True)
        ]
        shown["p"] = ["" if math.isnan(p) else f"{p:.4f}" for p in shown["p_value"]]
        shown["holds"] = ["" if s is None or (isinstance(s, float) and math.isnan(s)) else "yes" if s else "no"
                          for s in shown["significant"]]  # fmt: skip
        table = shown[["task", "task_type", "score_baseline", "score_model", "delta", "interval", "tasks interval",
                       "p", "holds", "note"]]  # fmt: skip
        parts += ["", f"## {model} vs {base}", "", markdown_table(table)]
    return "\n".join(parts) + "\n"


def forest_plot(frame: pd.DataFrame, what: str, path: Path, alpha: float = 0.05) -> None:
    """Δ per task and mean with its interval, one panel per compared model; tasks that hold after Holm in colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(frame.groupby(["baseline", "model"], sort=False))
    height = max(3.0, 0.22 * max(len(rows) for _, rows in pairs) + 1.5)
    fig, axes = plt.subplots(1, len(pairs), figsize=(7 * len(pairs), height), squeeze=False)
    for ax, ((base, model), rows) in zip(axes[0], pairs, strict=True):
        overall = rows[rows["task"].isin([MEAN_TASK, MEAN_TYPE])]
        types = rows[(rows["task_type"] == "mean") & ~rows["task"].isin([MEAN_TASK, MEAN_TYPE])]
        tasks = rows[rows["task_type"] != "mean"].sort_values(["task_type", "task"])
        ordered = pd.concat([overall, types.sort_values("task"), tasks])
        y = np.arange(len(ordered))[::-1]
        for yi, (_, row) in zip(y, ordered.iterrows(), strict=True):
            colour = "tab:blue" if row["significant"] is True else "0.35"
            if row["task_type"] == "mean":
                colour = "black"
                if not math.isnan(row["task_ci_low"]):
                    ax.plot([row["task_ci_low"], row["task_ci_high"]], [yi, yi], color="0.7", lw=6, alpha=0.6)
            if not math.isnan(row["ci_low"]):
                ax.plot([row["ci_low"], row["ci_high"]], [yi, yi], color=colour, lw=1.6)
            if not math.isnan(row["delta"]):
                ax.plot(row["delta"], yi, "o" if row["task_type"] != "mean" else "D", color=colour, ms=4)
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set_yticks(y, [str(t) for t in ordered["task"]], fontsize=7)
        ax.set_xlabel("Δ = model − baseline (points)")
        ax.set_title(f"{model}\nvs {base}", fontsize=8)
    level = f"{100 * (1 - alpha):g}%"
    fig.suptitle(f"{what}: paired {level} intervals (grey band: tasks resampled; blue: holds after Holm)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
