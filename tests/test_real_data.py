"""Real model, real data: all-MiniLM-L6-v2 reproduces its published STSBenchmark score offline."""

import json

import pytest
from conftest import REPO, run_cli

PUBLISHED = "sentence-transformers__all-MiniLM-L6-v2.json"
NAME, REVISION = "sentence-transformers/all-MiniLM-L6-v2", "8b3219a92973c328a8e22fadcfa821b5dc75636a"


def published_sts(folder) -> float:
    ref = json.loads((folder / PUBLISHED).read_text())
    return ref["tasks"]["STSBenchmark"]["scores"]["test"][0]["main_score"]


def test_minilm_reproduces_published_stsbenchmark_from_shared_data(minilm_dir, shared_data, tmp_path):
    out = run_cli(
        "run_mteb_all_v2.py",
        "--model_name_or_path",
        str(minilm_dir),
        "--model_name",
        NAME,
        "--revision",
        REVISION,
        "--use_instruction",
        "false",
        "--pooling_mode",
        "mean",
        "--normalize",
        "true",
        "--dtype",
        "float32",
        "--tasks",
        "STSBenchmark",
        "--data_dir",
        str(shared_data / "hub"),
        "--output_dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(
        (tmp_path / "sentence-transformers__all-MiniLM-L6-v2" / REVISION / "STSBenchmark.json").read_text()
    )
    score = result["scores"]["test"][0]["main_score"]
    assert score == pytest.approx(published_sts(shared_data / "published"), abs=5e-4)
    assert score == pytest.approx(0.8203247283, abs=5e-4)


def test_demo_runs_offline_from_a_clone_and_prints_the_comparison(minilm_dir, tmp_path):
    out = run_cli("run_mteb_all_v2.py", "--demo", "--output_dir", str(tmp_path), "--reference", "minilm")
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("demo:"))
    assert "published 82.03" in line
    score = json.loads(
        (tmp_path / "sentence-transformers__all-MiniLM-L6-v2" / REVISION / "STSBenchmark.json").read_text()
    )
    got = score["scores"]["test"][0]["main_score"]
    assert got == pytest.approx(published_sts(REPO / "results" / "reference"), abs=5e-4)
    assert f"STSBenchmark cosine_spearman {100 * got:.2f}" in line
    # the run ends with its leaderboard table (one of 41 tasks: means honestly empty) and the deltas
    assert "n_missing" in out.stdout and "deltas to sentence-transformers/all-MiniLM-L6-v2@8b3219a" in out.stdout
    after = out.stdout.split("deltas to")[1].splitlines()
    delta_line = next(line for line in after if line.strip().startswith("STSBenchmark"))
    assert delta_line.split()[1:] == [f"{100 * got:.2f}", "82.03", f"{round(100 * got, 2) - 82.03:.2f}"]
