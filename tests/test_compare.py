"""`compare` (issue 17): Δ from the result files, paired intervals from the records, against an independent bootstrap
from the models' own embeddings; A/A gives nothing; published trees without records give Δ and say why."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from scipy.stats import spearmanr

from qzhou_eval.cli import main

STS = REPO / "data" / "hub" / "mteb" / "stsbenchmark-sts" / "test.jsonl"
BASE, SHORT = "sentence-transformers/all-MiniLM-L6-v2", "local/minilm-max16"


@pytest.fixture(scope="module")
def two_runs(minilm_dir, tmp_path_factory):
    """The real MiniLM on the real STSBenchmark, as it is and cut at 16 tokens: two real embedders."""
    out = tmp_path_factory.mktemp("results")
    common = [
        "--model_name_or_path",
        str(minilm_dir),
        "--tasks",
        "STSBenchmark",
        "--data_dir",
        str(REPO / "data" / "hub"),
    ]
    common += ["--output_dir", str(out), "--use_instruction", "false", "--dtype", "float32", "--device", "cpu"]
    common += ["--revision", "main"]
    assert main(["run", *common, "--model_name", BASE]) == 0
    assert main(["run", *common, "--model_name", SHORT, "--max_length", "16"]) == 0
    return out


def compare_csv(results, *models, out=None, extra=()):
    args = ["compare", "--results_dir", str(results), "--models", *models, "--tasks", "STSBenchmark"]
    args += ["--output_dir", str(out or results)]
    assert main([*args, "--resamples", "2000", *extra]) == 0
    return pd.read_csv((out or results) / "compare" / "compare.csv").set_index("task")


def file_score(results, model):
    path = next((results / model.replace("/", "__")).glob("*/STSBenchmark.json"))
    return json.loads(path.read_text())["scores"]["test"][0]["main_score"]


def test_delta_is_the_files_difference_and_the_interval_matches_a_bootstrap_of_the_embeddings(two_runs, minilm_dir):
    from sentence_transformers import SentenceTransformer

    row = compare_csv(two_runs, BASE, SHORT).loc["STSBenchmark"]
    assert row["delta"] == pytest.approx(100 * (file_score(two_runs, SHORT) - file_score(two_runs, BASE)), abs=1e-4)
    assert row["ci_low"] < row["delta"] < row["ci_high"] < 0 and row["p_value"] < 0.01 and row["significant"]
    # independent: the models' own embeddings (sentence-transformers, not this harness), a plain resampling loop
    pairs = [json.loads(line) for line in STS.read_text().splitlines()]
    gold = np.array([p["score"] for p in pairs])
    cosines = []
    for max_seq in (256, 16):
        model = SentenceTransformer(str(minilm_dir), device="cpu")
        model.max_seq_length = max_seq
        a = model.encode([p["sentence1"] for p in pairs], normalize_embeddings=True, batch_size=64)
        b = model.encode([p["sentence2"] for p in pairs], normalize_embeddings=True, batch_size=64)
        cosines.append((a * b).sum(1))
    rng = np.random.default_rng(7)
    deltas = []
    for _ in range(2000):
        i = rng.integers(0, len(gold), len(gold))
        deltas.append(spearmanr(gold[i], cosines[1][i])[0] - spearmanr(gold[i], cosines[0][i])[0])
    low, high = 100 * np.quantile(deltas, [0.025, 0.975])
    tolerance = max(0.25, 0.1 * (high - low))
    assert abs(row["ci_low"] - low) <= tolerance and abs(row["ci_high"] - high) <= tolerance, (row, low, high)


def test_a_model_against_itself_gives_zero_and_p_one(two_runs, tmp_path):
    shutil.copytree(two_runs / BASE.replace("/", "__"), tmp_path / BASE.replace("/", "__"))
    shutil.copytree(two_runs / BASE.replace("/", "__"), tmp_path / "local__twin")  # the same records, another name
    meta = next((tmp_path / "local__twin").glob("*/model_meta.json"))
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "name": "local/twin"}))
    frame = compare_csv(tmp_path, BASE, "local/twin")
    for task in ("STSBenchmark", "Mean(Task)"):
        row = frame.loc[task]
        assert (row["delta"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0), task
    assert frame.loc["STSBenchmark", "p_value"] == 1.0 and not frame.loc["STSBenchmark", "significant"]


def test_the_same_seed_gives_the_same_table_and_another_seed_another_interval(two_runs, tmp_path):
    first = compare_csv(two_runs, BASE, SHORT, out=tmp_path / "a")
    again = compare_csv(two_runs, BASE, SHORT, out=tmp_path / "b")
    other = compare_csv(two_runs, BASE, SHORT, out=tmp_path / "c", extra=("--seed", "5"))
    assert (tmp_path / "a" / "compare" / "compare.csv").read_bytes() == (
        tmp_path / "b" / "compare" / "compare.csv"
    ).read_bytes()
    assert first.loc["STSBenchmark", "ci_low"] != other.loc["STSBenchmark", "ci_low"]
    assert (
        first.loc["STSBenchmark", "delta"] == other.loc["STSBenchmark", "delta"] == again.loc["STSBenchmark", "delta"]
    )
    md = (tmp_path / "c" / "compare" / "compare.md").read_text()
    assert "seed 5" in md and "2000 resamples" in md
    assert (tmp_path / "c" / "compare" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_summarize_shows_each_scores_own_interval_where_records_exist(two_runs, tmp_path):
    args = ["summarize", "--results_dir", str(two_runs), "--benchmark", "MTEB(eng, v2)", "--output_dir", str(tmp_path)]
    assert main(args) == 0
    per_task = pd.read_csv(tmp_path / "summary" / "per_task.csv").set_index(["model", "task"])
    row = per_task.loc[(BASE, "STSBenchmark")]
    assert row["ci_low"] < row["score"] < row["ci_high"] and row["ci_high"] - row["ci_low"] < 10
    assert " ± " in (tmp_path / "summary" / "summary.md").read_text()


def test_published_trees_without_records_give_delta_and_say_so(shared_data, tmp_path, capsys):
    results = shared_data / "published" / "results"
    args = ["compare", "--results_dir", str(results), "--benchmark", "MTEB(eng, v2)", "--output_dir", str(tmp_path)]
    assert main([*args, "--models", "Qwen/Qwen3-Embedding-0.6B", "Kingsoft-LLM/QZhou-Embedding"]) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv(tmp_path / "compare" / "compare.csv")
    tasks = frame[frame["task_type"] != "mean"]
    assert len(tasks) == 41 and tasks["ci_low"].isna().all() and tasks["p_value"].isna().all()
    assert tasks["note"].str.contains("no per-example records").all()
    mean = frame.set_index("task").loc["Mean(Task)"]
    assert mean["delta"] == pytest.approx(75.97 - 70.70, abs=0.011)  # the two published Mean(Task)s
    assert math.isnan(mean["ci_low"]) and mean["task_ci_low"] < mean["delta"] < mean["task_ci_high"]
    assert "over tasks, on Mean(Task); 0 of 41 tasks hold after Holm (0 tested)" in out


def test_unknown_or_ambiguous_models_are_one_error_line(two_runs, capsys):
    args = ["compare", "--results_dir", str(two_runs), "--tasks", "STSBenchmark", "--models", BASE]
    assert main([*args, "org/none"]) == 2
    assert "org/none: not in the result trees" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main(args) == 2
    assert "needs a baseline and at least one model" in capsys.readouterr().err
