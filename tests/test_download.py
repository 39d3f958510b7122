"""`download`: dataset repositories at mteb's pinned revisions and the model, fetched through a local
stand-in of the hub's HTTP interface (HF_ENDPOINT) in a subprocess; then an offline run reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import fixture_data as fd
import pytest
from conftest import REPO
from hub_stub import HubStub

from qzhou_eval.cli import main
from qzhou_eval.evaluate.download import MARKER, Repo, dataset_repos, drop_damaged, is_complete, mark_complete
from qzhou_eval.recipe.benchmarks import benchmark_tasks, select_specs

STS12 = ("mteb/sts12-sts", "a0d554a64d88156834ff5ae9920b964011b16384")
COVID = ("C-MTEB/CovidRetrieval", "1271c7809071a13532e05f25fb53511ffce77117")
COVID_QRELS = ("C-MTEB/CovidRetrieval-qrels", "a9f41b7cdf24785531d12417ce0d1157ed4b39ca")
MODEL = ("tiny-org/tiny-qzhou", "0123456789abcdef0123456789abcdef01234567")
MTOP = ("mteb/mtop_domain", "d80d48c1eb48d3562165c59d59d0034df9fff0bf")  # a script-based repo


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(
        [sys.executable, "-m", "qzhou_eval", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600
    )


def test_cmteb_retrieval_needs_its_qrels_sibling_at_the_pinned_revision():
    specs = [benchmark_tasks("MTEB(cmn, v1)")[name] for name in ("T2Retrieval", "MultilingualSentiment")]
    repos = dataset_repos(specs)
    assert [(r.repo_id, r.revision) for r in repos] == [
        ("C-MTEB/T2Retrieval", "8731a845f1bf500a4f111cf1070785c793d10e64"),
        ("C-MTEB/T2Retrieval-qrels", "1c83b8d1544e529875e3f6930f3a1fcf749a8e97"),
        ("C-MTEB/MultilingualSentiment-classification", "46958b007a63fdbf239b7672c25d0bea67b5ea1a"),
    ]
    whole = dataset_repos(select_specs("MTEB(cmn, v1)", ()))
    assert len(whole) == 31 + 8  # one repository per task, plus the 8 retrieval qrels
    assert all(len(r.revision or "") == 40 for r in whole)


def test_a_repository_is_complete_only_with_its_marker_revision_and_sizes(tmp_path):
    repo = Repo("mteb/sts12-sts", "a" * 40, "dataset", "STS12")
    fd.sts(tmp_path, "", n=5)
    assert not is_complete(tmp_path, repo)  # files without a marker: a download that did not finish
    mark_complete(tmp_path, repo)
    assert is_complete(tmp_path, repo)
    assert json.loads((tmp_path / MARKER).read_text())["files"] == {
        "test.jsonl": (tmp_path / "test.jsonl").stat().st_size
    }
    assert not is_complete(tmp_path, Repo(repo.repo_id, "b" * 40, "dataset", "STS12"))
    data = tmp_path / "test.jsonl"
    data.write_bytes(data.read_bytes()[:-10])
    assert not is_complete(tmp_path, repo)
    assert drop_damaged(tmp_path) == ["test.jsonl"] and not data.exists()


def test_download_refuses_bad_names_and_offline_mode(tmp_path, capsys):
    assert main(["download", "--benchmark", "MTEB(eng, v2)", "--tasks", "STS13x", "--data_dir", str(tmp_path)]) == 2
    assert "Did you mean: STS13" in capsys.readouterr().err
    assert main(["download", "--benchmark", "MTEB(eng v2)", "--data_dir", str(tmp_path)]) == 2
    assert "Did you mean: MTEB(eng, v2)" in capsys.readouterr().err
    assert main(["download", "--tasks", "STS12"]) == 2
    assert "--data_dir is required" in capsys.readouterr().err
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: tests are offline
    assert main(["download", "--tasks", "STS12", "--data_dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("unset it for this command")
    assert not any(tmp_path.iterdir())


@pytest.fixture
def hub(tmp_path, qzhou_dir):
    """The stub serving STS12, CovidRetrieval + its qrels (each only at mteb's pinned commit) and a tiny model."""
    src = tmp_path / "src"
    fd.sts(src, STS12[0], n=20)
    fd.cmteb_retrieval(src, COVID[0])
    fd.classification(src, MTOP[0], lang="en")
    (src / MTOP[0] / "mtop_domain.py").write_text("raise SystemExit('a loading script never runs')\n")
    stub = HubStub()
    for repo_id, sha in (STS12, COVID, COVID_QRELS, MTOP):
        stub.add("datasets", repo_id, sha, src / repo_id)
    stub.add("models", MODEL[0], MODEL[1], qzhou_dir)
    url = stub.start()
    yield stub, url
    stub.stop()


def test_download_then_offline_run_and_a_rerun_transfers_nothing(hub, tmp_path):
    stub, url = hub
    data = tmp_path / "data"
    env = {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    tasks = ("STS12", "CovidRetrieval", "MTOPDomainClassification")
    args = ("download", "--tasks", *tasks, "--data_dir", str(data), "--model", MODEL[0])

    stub.failing = {"dev.jsonl"}  # the qrels file fails: that repository stays incomplete
    first = cli(*args, env=env)
    assert first.returncode == 1, first.stderr
    assert (
        "download:" in first.stderr and "Fetching" not in first.stderr and "test.jsonl" not in first.stderr
    )  # one bar
    assert f"failed: dataset {COVID_QRELS[0]}@{COVID_QRELS[1][:12]}" in first.stderr
    assert "note: MTOPDomainClassification: its dataset repository at the pinned revision is a loading script" in (
        first.stderr
    )
    assert (data / STS12[0] / "test.jsonl").is_file() and (data / COVID[0] / MARKER).is_file()
    assert not (data / COVID_QRELS[0] / "dev.jsonl").exists() and not (data / COVID_QRELS[0] / MARKER).exists()

    stub.failing = set()
    before = len(stub.requests)
    second = cli(*args, env=env)
    assert second.returncode == 0, second.stderr
    assert "1 dataset repositories fetched, 3 already complete, 0 failed" in second.stderr
    fetched = {path for _, path, _ in stub.requests[before:] if "/resolve/" in path}
    assert fetched and all(COVID_QRELS[0] in path for path in fetched)  # only what was missing
    assert sorted(json.loads((data / COVID_QRELS[0] / MARKER).read_text())["files"]) == ["README.md", "dev.jsonl"]

    before = len(stub.requests)
    third = cli(*args, env=env)
    assert third.returncode == 0 and "0 dataset repositories fetched, 4 already complete" in third.stderr
    again = stub.requests[before:]
    assert not [r for r in again if "/resolve/" in r[1]]  # no file is transferred twice
    assert [r[1] for r in again] == [f"/api/models/{MODEL[0]}/revision/main"]  # the model's ref is checked

    before = len(stub.requests)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "out"
    run = cli(
        "run", "--tasks", "STS12", "CovidRetrieval", "--data_dir", str(data), "--model_name_or_path", MODEL[0],
        "--output_dir", str(out), "--dtype", "float32", "--device", "cpu", env=offline,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert len(stub.requests) == before  # offline: nothing asked of the hub
    folder = out / "tiny-org__tiny-qzhou" / MODEL[1]
    assert (folder / "STS12.json").is_file() and (folder / "CovidRetrieval.json").is_file()
