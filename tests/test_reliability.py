"""Faults and reruns: kill -9, SIGINT, changed settings, corrupt files, failing tasks, out of memory."""

import hashlib
import json
import signal
import subprocess
import sys
import time

import fixture_data as fd
import numpy as np
import pytest
import torch
from conftest import REPO, run_cli

TASKS = ["STS12", "STS13", "STS14"]
HUBS = {"STS12": "mteb/sts12-sts", "STS13": "mteb/sts13-sts", "STS14": "mteb/sts14-sts"}


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory):
    """Three STS tasks big enough (with batch size 1) that a kill lands mid-suite."""
    root = tmp_path_factory.mktemp("hub")
    for i, task in enumerate(TASKS):
        fd.sts(root, HUBS[task], n=300, seed=i)
    return root


def command(model, data, out, *extra, tasks=TASKS):
    return [
        "run_mteb_all_v2.py",
        "--model_name_or_path",
        str(model),
        "--tasks",
        *tasks,
        "--data_dir",
        str(data),
        "--output_dir",
        str(out),
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "--batch_size",
        "1",
        *extra,
    ]


def folder_of(out):
    (model_dir,) = [p for p in out.iterdir() if p.is_dir() and p.name not in ("summary", "embedding_cache")]
    (rev,) = [p for p in model_dir.iterdir() if p.is_dir()]
    return rev


def snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def main_scores(folder):
    return {t: json.loads((folder / f"{t}.json").read_text())["scores"]["test"][0]["main_score"] for t in TASKS}


@pytest.fixture(scope="module")
def uninterrupted(qzhou_dir, slow_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    res = run_cli(*command(qzhou_dir, slow_data, out))
    assert res.returncode == 0, res.stderr
    return folder_of(out)


def start(args):
    env_cmd = [sys.executable, *args]
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(env_cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=300):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, "run ended before the expected file appeared"
        assert time.time() < deadline
        time.sleep(0.02)


def test_kill_9_mid_suite_then_rerun_finishes_without_touching_done_tasks(
    qzhou_dir, slow_data, tmp_path, uninterrupted
):
    proc = start(command(qzhou_dir, slow_data, tmp_path))
    wait_for(tmp_path / "local__qzhou", proc)
    folder = folder_of(tmp_path)
    wait_for(folder / "STS12.json", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (folder / "STS14.json").exists(), "the kill came too late to test anything"
    assert not list(folder.glob(".*.tmp"))
    first = (folder / "STS12.json").read_bytes()
    before_mtime = (folder / "STS12.json").stat().st_mtime_ns

    res = run_cli(*command(qzhou_dir, slow_data, tmp_path))
    assert res.returncode == 0, res.stderr
    assert "skip STS12 (done)" in res.stderr
    assert (folder / "STS12.json").read_bytes() == first
    assert (folder / "STS12.json").stat().st_mtime_ns == before_mtime
    ours, full = main_scores(folder), main_scores(uninterrupted)
    assert all(abs(ours[t] - full[t]) <= 5e-4 for t in TASKS), (ours, full)
    manifest = json.loads((folder / "qzhou_eval_manifest.json").read_text())
    assert all(manifest["tasks"][t]["status"] == "done" for t in TASKS)


def test_rerun_with_other_settings_is_refused_and_changes_nothing(qzhou_dir, slow_data, uninterrupted):
    out = uninterrupted.parent.parent
    before = snapshot(uninterrupted)
    res = run_cli(*command(qzhou_dir, slow_data, out, "--max_length", "16"))
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "max_length: 512 -> 16" in last
    assert "--overwrite" in last and "--output_dir" in last and "Traceback" not in res.stderr
    assert snapshot(uninterrupted) == before


def test_same_command_again_skips_everything(qzhou_dir, slow_data, uninterrupted):
    before = snapshot(uninterrupted)
    res = run_cli(*command(qzhou_dir, slow_data, uninterrupted.parent.parent))
    assert res.returncode == 0
    assert all(f"skip {t} (done)" in res.stderr for t in TASKS) and "loading" not in res.stderr
    after = snapshot(uninterrupted)
    assert {k: v for k, v in after.items() if k.endswith(".json")} == {
        k: v for k, v in before.items() if k.endswith(".json")
    }


def copy_run(src, dst):
    import shutil

    shutil.copytree(src.parent.parent, dst)
    return folder_of(dst)


def test_overwrite_recomputes_tasks_made_with_other_settings(qzhou_dir, slow_data, uninterrupted, tmp_path):
    folder = copy_run(uninterrupted, tmp_path / "o")
    res = run_cli(*command(qzhou_dir, slow_data, tmp_path / "o", "--max_length", "20", "--overwrite", tasks=["STS12"]))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((folder / "qzhou_eval_manifest.json").read_text())
    assert manifest["tasks"]["STS12"]["settings"]["max_length"] == 20
    assert manifest["tasks"]["STS12"]["inputs"]["truncated"] > 0
    assert manifest["tasks"]["STS13"]["settings"]["max_length"] == 512  # untouched; resolved (1024 capped at 512)
    assert main_scores(folder)["STS12"] != main_scores(uninterrupted)["STS12"]


def test_truncated_result_file_is_reported_and_recomputed(qzhou_dir, slow_data, uninterrupted, tmp_path):
    folder = copy_run(uninterrupted, tmp_path / "o")
    text = (folder / "STS13.json").read_text()
    (folder / "STS13.json").write_text(text[: len(text) // 2])
    res = run_cli(*command(qzhou_dir, slow_data, tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    assert "redo STS13: its result file cannot be used (unreadable" in res.stderr
    assert "skip STS12 (done)" in res.stderr and "skip STS14 (done)" in res.stderr
    assert main_scores(folder)["STS13"] == pytest.approx(main_scores(uninterrupted)["STS13"], abs=1e-6)


def test_sigint_stops_leaves_no_partial_file_and_says_how_to_resume(qzhou_dir, slow_data, tmp_path):
    proc = start(command(qzhou_dir, slow_data, tmp_path))
    wait_for(tmp_path / "local__qzhou", proc)
    folder = folder_of(tmp_path)
    wait_for(folder / "qzhou_eval_manifest.json", proc)
    time.sleep(3)  # inside a task
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 10
    assert proc.returncode == 130
    assert "To resume, rerun:" in err and "run_mteb_all_v2.py" in err.strip().splitlines()[-1]
    assert not list(folder.glob(".*.tmp"))
    for f in folder.glob("*.json"):
        json.loads(f.read_text())  # every file complete


def test_failing_task_does_not_stop_the_suite_and_sets_exit_1(qzhou_dir, slow_data, tmp_path):
    data = tmp_path / "hub"
    fd.sts(data, "mteb/sts12-sts", n=20)
    res = run_cli(
        "run_mteb_all_v2.py",
        "--model_name_or_path",
        str(qzhou_dir),
        "--tasks",
        "STS13,STS12",
        "--data_dir",
        str(data),
        "--output_dir",
        str(tmp_path / "o"),
        "--dtype",
        "float32",
    )
    assert res.returncode == 1
    assert "STS13" in res.stdout and "failed" in res.stdout and "1 done, 0 skipped, 1 failed" in res.stdout
    folder = folder_of(tmp_path / "o")
    manifest = json.loads((folder / "qzhou_eval_manifest.json").read_text())
    assert manifest["tasks"]["STS13"]["status"] == "failed"
    assert (
        "mteb/sts13-sts" in manifest["tasks"]["STS13"]["error"]
        and "Traceback" in manifest["tasks"]["STS13"]["traceback"]
    )
    assert (folder / "STS12.json").exists()


def test_out_of_memory_halves_the_batch_and_gives_identical_embeddings(qzhou_dir):
    from qzhou_eval.model.embedder import Embedder, EncodeStats
    from qzhou_eval.model.weights import load_model
    from qzhou_eval.recipe.checkpoint import resolve_checkpoint
    from qzhou_eval.recipe.tokenizer import load_tokenizer

    ckpt = resolve_checkpoint(str(qzhou_dir))
    model = load_model(ckpt, "float32", "sdpa", "cpu", False)
    tok = load_tokenizer(ckpt, "auto", False)
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(23)]
    clean = Embedder(model, tok, batch_size=8, max_padding=1.0).encode(texts, "Instruct: x\nQuery: ")
    assert len(texts) > 8  # several batches, each split on the faulty device

    class OomAbove3(torch.nn.Module):
        """The real model, failing like a full GPU whenever a forward holds more than 3 texts."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, **batch):
            if batch["input_ids"].shape[0] > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
            return self.inner(**batch)

    stats = EncodeStats()
    emb = Embedder(OomAbove3(model), tok, batch_size=8, max_padding=1.0)
    faulty = emb.encode(texts, "Instruct: x\nQuery: ", stats=stats)
    assert stats.oom_splits == 2 and emb.runner.max_rows == 2
    assert np.array_equal(faulty, clean)


def test_max_length_that_leaves_no_room_after_the_instruction_is_refused(qzhou_dir, slow_data, tmp_path):
    res = run_cli(*command(qzhou_dir, slow_data, tmp_path, "--max_length", "8"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: --max_length 8 leaves no room for text")


def test_non_finite_embedding_fails_loudly(qzhou_dir):
    from qzhou_eval.model.embedder import Embedder
    from qzhou_eval.model.weights import load_model
    from qzhou_eval.recipe.checkpoint import resolve_checkpoint
    from qzhou_eval.recipe.tokenizer import load_tokenizer

    ckpt = resolve_checkpoint(str(qzhou_dir))
    model = load_model(ckpt, "float32", "sdpa", "cpu", False)
    with torch.no_grad():
        model.norm.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="not finite"):
        Embedder(model, load_tokenizer(ckpt, "auto", False)).encode(["a", "b"])
