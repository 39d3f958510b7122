"""Leaderboard tables from result trees, checked against means computed by hand."""

import json

import pandas as pd
import pytest

from qzhou_eval.cli import main
from qzhou_eval.summary import load_tree, summary_table, task_scores
from qzhou_eval.tasks import benchmark_tasks

ENG, CMN = "MTEB(eng, v2)", "MTEB(cmn, v1)"
TYPE_VALUE = {
    "Classification": 0.80,
    "Clustering": 0.50,
    "PairClassification": 0.90,
    "Reranking": 0.60,
    "Retrieval": 0.40,
    "STS": 0.85,
    "Summarization": 0.30,
}


def write_result(root, model, revision, task, scores):
    folder = root / model.replace("/", "__") / revision
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{task}.json").write_text(
        json.dumps(
            {
                "dataset_revision": "x",
                "task_name": task,
                "mteb_version": "1.38.30",
                "evaluation_time": 1.0,
                "kg_co2_emissions": None,
                "scores": {
                    split: [{"hf_subset": sub, "main_score": v, "languages": []} for sub, v in cells.items()]
                    for split, cells in scores.items()
                },
            }
        )
    )
    (folder / "model_meta.json").write_text(json.dumps({"name": model, "revision": revision}))


def eng_tree(root, model="org/a", revision="r1", skip=(), shift=None):
    """Every English task at its type's value, except the subset-selection traps below."""
    for name, spec in benchmark_tasks(ENG).items():
        if name in skip:
            continue
        v = TYPE_VALUE[spec.type] + (shift[1] if shift and shift[0] == name else 0.0)
        scores = {"test": {"default": v}}
        if name == "STS17":  # only en-en counts
            scores = {"test": {"en-en": v, "ko-ko": 0.0, "ar-ar": 0.1}}
        elif name == "STS22.v2":
            scores = {"test": {"en": v, "de": 0.0}}
        elif name == "AmazonCounterfactualClassification":  # en counts, en-ext and validation do not
            scores = {"test": {"en": v, "en-ext": 0.0, "de": 0.1}, "validation": {"en": 0.0}}
        elif name in ("MTOPDomainClassification", "MassiveIntentClassification", "MassiveScenarioClassification"):
            scores = {"test": {"en": v, "fr": 0.0}, "validation": {"en": 0.0}}
        write_result(root, model, revision, name, scores)


def expected_means(values_by_type: dict[str, list[float]]) -> tuple[float, float]:
    flat = [v for vs in values_by_type.values() for v in vs]
    by_type = [sum(vs) / len(vs) for vs in values_by_type.values()]
    return round(100 * sum(flat) / len(flat), 2), round(100 * sum(by_type) / len(by_type), 2)


def eng_values(shift=None):
    out: dict[str, list[float]] = {}
    for name, spec in benchmark_tasks(ENG).items():
        out.setdefault(spec.type, []).append(TYPE_VALUE[spec.type] + (shift[1] if shift and shift[0] == name else 0))
    return out


def test_english_means_use_only_kept_splits_and_subsets(tmp_path):
    eng_tree(tmp_path, shift=("ArguAna", 0.1))
    row = summary_table(task_scores(load_tree(tmp_path), ENG), ENG).iloc[0]
    mean_task, mean_type = expected_means(eng_values(shift=("ArguAna", 0.1)))
    assert (row.n_tasks, row.n_missing) == (41, 0)
    assert row.mean_task == mean_task and row.mean_task_type == mean_type
    assert row.Retrieval == round(100 * (0.4 * 9 + 0.5) / 10, 2)
    assert row.STS == 85.0 and row.Classification == 80.0


def test_missing_task_empties_both_means_and_its_type_and_is_counted(tmp_path):
    eng_tree(tmp_path, skip=("SummEvalSummarization.v2", "STS12"))
    out = tmp_path / "summary"
    assert main(["summarize", "--results_dir", str(tmp_path), "--benchmark", ENG, "--output_dir", str(out)]) == 0
    csv = pd.read_csv(out / "summary.csv")
    assert list(csv.columns) == [
        "model",
        "revision",
        "benchmark",
        "n_tasks",
        "n_missing",
        "mean_task",
        "mean_task_type",
        "Classification",
        "Clustering",
        "PairClassification",
        "Reranking",
        "Retrieval",
        "STS",
        "Summarization",
    ]
    row = csv.iloc[0]
    assert row.n_missing == 2 and row.n_tasks == 39
    assert pd.isna(row.mean_task) and pd.isna(row.mean_task_type)
    assert pd.isna(row.STS) and pd.isna(row.Summarization) and row.Retrieval == 40.0
    md = (out / "summary.md").read_text()
    assert "## Missing tasks" in md and "STS12" in md.split("## Missing tasks")[1]
    per_task = pd.read_csv(out / "per_task.csv")
    assert list(per_task.columns) == ["model", "revision", "task", "task_type", "score"]
    assert pd.isna(per_task.set_index("task").loc["STS12", "score"])


def cmn_tree(root, model="org/c", revision="r1"):
    for name, spec in benchmark_tasks(CMN).items():
        v = TYPE_VALUE[spec.type]
        if name == "MultilingualSentiment":
            scores = {"validation": {"default": 0.6}, "test": {"default": 0.8}}
        elif name in ("ATEC", "BQ", "STSB"):  # the benchmark keeps test only
            scores = {"validation": {"default": 0.0}, "test": {"default": v}}
        else:
            scores = {split: {"default": v} for split in spec.splits}
        write_result(root, model, revision, name, scores)


@pytest.mark.parametrize("rule,sentiment", [("validation", 0.6), ("mean", 0.7)])
def test_duplicated_multilingual_sentiment_rule(tmp_path, rule, sentiment):
    cmn_tree(tmp_path)
    per_task = task_scores(load_tree(tmp_path), CMN, rule)
    assert per_task.set_index("task").loc["MultilingualSentiment", "score"] == pytest.approx(sentiment)
    assert len(per_task) == 31
    values: dict[str, list[float]] = {}
    for name, spec in benchmark_tasks(CMN).items():
        values.setdefault(spec.type, []).append(sentiment if name == "MultilingualSentiment" else TYPE_VALUE[spec.type])
    row = summary_table(per_task, CMN).iloc[0]
    assert (row.mean_task, row.mean_task_type) == expected_means(values)
    assert "Summarization" not in row.index


def test_models_and_revisions_side_by_side(tmp_path):
    eng_tree(tmp_path, "org/a", "r1")
    eng_tree(tmp_path, "org/a", "r2", shift=("STS12", 0.05))
    eng_tree(tmp_path, "org/b", "r1", skip=("ArguAna",))
    table = summary_table(task_scores(load_tree(tmp_path), ENG), ENG).set_index(["model", "revision"])
    assert len(table) == 3
    assert table.loc[("org/a", "r2"), "STS"] == round(100 * (0.85 * 8 + 0.90) / 9, 2)
    assert table.loc[("org/a", "r1"), "STS"] == 85.0
    assert table.loc[("org/b", "r1"), "n_missing"] == 1


def published_file(tree_root, path, model="org/a", revision="r1"):
    folder = tree_root / model.replace("/", "__") / revision
    tasks = {}
    for f in folder.glob("*.json"):
        if f.name != "model_meta.json":
            r = json.loads(f.read_text())
            tasks[r["task_name"]] = {
                "scores": {
                    s: [{"hf_subset": e["hf_subset"], "main_score": e["main_score"]} for e in es]
                    for s, es in r["scores"].items()
                }
            }
    path.write_text(json.dumps({"model": model, "model_revision": revision, "source": "test", "tasks": tasks}))
    return path


def test_reference_equal_to_run_gives_zero_deltas(tmp_path):
    eng_tree(tmp_path / "run")
    ref = published_file(tmp_path / "run", tmp_path / "ref.json")
    out = tmp_path / "o"
    assert (
        main(
            [
                "summarize",
                "--results_dir",
                str(tmp_path / "run"),
                "--benchmark",
                ENG,
                "--reference",
                str(ref),
                "--output_dir",
                str(out),
                "--max_delta",
                "0.0",
            ]
        )
        == 0
    )
    deltas = pd.read_csv(out / "deltas.csv")
    assert len(deltas) == 41 + 2 and (deltas["delta"] == 0).all()


def test_shifted_task_shows_its_delta_and_fails_the_gate(tmp_path, capsys):
    eng_tree(tmp_path / "ref")
    ref = published_file(tmp_path / "ref", tmp_path / "ref.json")
    eng_tree(tmp_path / "run", shift=("SCIDOCS", 0.01))
    out = tmp_path / "o"
    code = main(
        [
            "summarize",
            "--results_dir",
            str(tmp_path / "run"),
            "--benchmark",
            ENG,
            "--reference",
            str(ref),
            "--output_dir",
            str(out),
            "--max_delta",
            "0.5",
        ]
    )
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: |delta| > 0.5 points for: SCIDOCS"
    deltas = pd.read_csv(out / "deltas.csv").set_index("item")
    assert deltas.loc["SCIDOCS", "delta"] == 1.0
    assert deltas.loc["mean_task", "delta"] == round(
        round(100 * (sum(v for vs in eng_values(("SCIDOCS", 0.01)).values() for v in vs) / 41), 2)
        - round(100 * sum(v for vs in eng_values().values() for v in vs) / 41, 2),
        2,
    )
    assert "Deltas to org/a@r1" in (out / "summary.md").read_text()


def test_plot_is_a_real_png_with_one_group_per_model(tmp_path):
    eng_tree(tmp_path, "org/a", "r1")
    eng_tree(tmp_path, "org/b", "r1", shift=("STS12", -0.3))
    assert main(["summarize", "--results_dir", str(tmp_path), "--benchmark", ENG]) == 0
    png = (tmp_path / "summary.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_no_results_is_a_user_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["summarize", "--results_dir", str(tmp_path / "empty"), "--benchmark", CMN]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no MTEB(cmn, v1) results found")


@pytest.mark.parametrize("bench,mean_task,mean_type", [(ENG, 75.97, 69.52), (CMN, 76.99, 78.58)])
def test_published_qzhou_tree_gives_leaderboard_means(shared_data, bench, mean_task, mean_type):
    tree = shared_data / "published" / "results"
    row = summary_table(task_scores(load_tree(tree), bench), bench).iloc[0]
    assert (row.mean_task, row.mean_task_type, row.n_missing) == (mean_task, mean_type, 0)


def test_bundled_reference_matches_published_tree(shared_data):
    from qzhou_eval.reference import resolve_reference
    from qzhou_eval.summary import load_published

    for bench in (ENG, CMN):
        a = task_scores(load_published(resolve_reference("qzhou")), bench)
        b = task_scores(load_tree(shared_data / "published" / "results"), bench)
        assert a["score"].tolist() == pytest.approx(b["score"].tolist(), abs=1e-9)
