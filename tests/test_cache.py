"""Embedding cache: keys that never mix settings or model inputs, segments that survive kills, and reruns
that take from the cache exactly what they can (issue 12)."""

import json
import os
import signal
import subprocess
import sys
import time

import fixture_data as fd
import numpy as np
import pytest
from conftest import REPO, run_cli
from test_reliability import command

from qzhou_eval.config import EvalConfig
from qzhou_eval.errors import UserError
from qzhou_eval.evaluate.runner import run
from qzhou_eval.model.embedder import Embedder, EncodeStats
from qzhou_eval.model.weights import load_model
from qzhou_eval.recipe.checkpoint import resolve_checkpoint
from qzhou_eval.recipe.tokenizer import load_tokenizer
from qzhou_eval.store.cache import FLUSH_ENV, EmbeddingCache, flush_interval
from qzhou_eval.store.manifest import MANIFEST_NAME

TEXTS = [f"sentence number {i} " + "word " * (i % 9) for i in range(30)] + [""]
SETTINGS = {"model": "local/tiny", "revision": "r1"}


@pytest.fixture(scope="module")
def parts(qzhou_dir):
    ckpt = resolve_checkpoint(str(qzhou_dir))
    return load_model(ckpt, "float32", "sdpa", "cpu", False), load_tokenizer(ckpt, "auto", False)


class Spy(Embedder):
    """The real embedder, recording which texts reach `encode` (i.e. were not taken from the cache)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    def encode(self, texts, prefix="", stats=None, on_batch=None, **kwargs):
        self.seen += texts
        return super().encode(texts, prefix, stats=stats, on_batch=on_batch, **kwargs)


def spy(parts, **kw) -> Spy:
    return Spy(parts[0], parts[1], batch_size=4, max_padding=1.0, **kw)


def test_only_missing_texts_are_encoded_and_output_keeps_order_and_dtype(parts, tmp_path):
    plain = spy(parts).encode(TEXTS, "q: ")
    emb = spy(parts)
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)
    first = EncodeStats()
    cache.encode(emb, "T", TEXTS[::2], "q: ", first)
    assert first.texts_encoded == len(TEXTS[::2]) and first.texts_from_cache == 0

    emb.seen.clear()
    stats = EncodeStats()
    out = EmbeddingCache(tmp_path, SETTINGS, flush_s=60).encode(emb, "T", TEXTS, "q: ", stats)  # a later run
    assert emb.seen == TEXTS[1::2]  # one call, the missing texts in their order
    assert out.dtype == np.float32 and out.shape == plain.shape
    assert np.abs(out - plain).max() <= 1e-5
    assert (stats.texts, stats.texts_from_cache, stats.texts_encoded) == (31, 16, 15)
    assert stats.empty_replaced == 1  # the empty text came from the cache and is still counted


def test_query_and_passage_of_the_same_text_never_share_a_vector(parts, tmp_path):
    emb = spy(parts)
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)
    query = cache.encode(emb, "T", ["same text"], "Instruct: find\nQuery: ", EncodeStats())
    stats = EncodeStats()
    passage = cache.encode(emb, "T", ["same text"], "", stats)
    assert stats.texts_from_cache == 0 and stats.texts_encoded == 1
    assert np.abs(query - passage).max() > 1e-3
    again = EncodeStats()
    assert np.array_equal(EmbeddingCache(tmp_path, SETTINGS).encode(emb, "T", ["same text"], "", again), passage)
    assert again.texts_from_cache == 1


def test_a_run_never_serves_its_own_vectors_back(parts, tmp_path):
    """Within one run the cache changes nothing: a text mteb passes twice is encoded twice, as without it."""
    emb = spy(parts)
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)
    cache.encode(emb, "T", TEXTS[:4], "", EncodeStats())
    stats = EncodeStats()
    cache.encode(emb, "T", TEXTS[:4], "", stats)
    assert stats.texts_from_cache == 0 and emb.seen == TEXTS[:4] * 2


def test_vectors_are_flushed_during_a_call_and_kept_when_it_fails(parts, tmp_path):
    emb = spy(parts)
    real_forward = emb.runner.forward_fitting
    calls = []

    def fail_on_third(rows, stats):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("device lost (injected)")
        return real_forward(rows, stats)

    emb.runner.forward_fitting = fail_on_third
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=0)
    with pytest.raises(RuntimeError, match="injected"):
        cache.encode(emb, "T", TEXTS, "", EncodeStats())
    segments = sorted(cache.task_folder("T").glob("*.idx"))
    assert len(segments) == 2  # one per finished batch
    emb.runner.forward_fitting = real_forward
    fresh = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)  # a new process after the crash
    stats = EncodeStats()
    out = fresh.encode(emb, "T", TEXTS, "", stats)
    assert stats.texts_from_cache == 8 and stats.texts_encoded == len(TEXTS) - 8
    assert np.abs(out - spy(parts).encode(TEXTS)).max() <= 1e-5


def test_torn_or_foreign_segments_are_ignored(parts, tmp_path):
    emb = spy(parts)
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)
    cache.encode(emb, "T", TEXTS[:10], "", EncodeStats())
    cache.encode(emb, "T", TEXTS[10:20], "", EncodeStats())
    folder = cache.task_folder("T")
    torn, whole = sorted(folder.glob("*.npy"))
    torn.write_bytes(torn.read_bytes()[:-100])  # cut short, as a crashed copy would leave it
    (folder / "stray.idx").write_text("0" * 64 + "\n")  # an index without vectors
    (folder / ".half.npy.tmp").write_bytes(b"\x93NUMPY")
    fresh = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)
    stats = EncodeStats()
    out = fresh.encode(emb, "T", TEXTS[:20], "", stats)
    assert stats.texts_from_cache == 10 and stats.texts_encoded == 10
    assert sorted(fresh.store("T").ignored) == sorted([torn.stem, "stray"])
    assert np.abs(out - spy(parts).encode(TEXTS[:20])).max() <= 1e-5


def test_non_finite_vectors_are_never_saved(parts, tmp_path):
    emb = spy(parts)
    real_forward = emb.runner.forward_fitting

    def nan_rows(rows, stats):
        out = real_forward(rows, stats)
        out[0] = np.nan
        return out

    emb.runner.forward_fitting = nan_rows
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=0)
    with pytest.raises(FloatingPointError):
        cache.encode(emb, "T", TEXTS[:8], "", EncodeStats())
    saved = np.concatenate([np.load(p) for p in cache.task_folder("T").glob("*.npy")])
    assert len(saved) == 6 and np.isfinite(saved).all()  # 2 batches of 4, first row of each dropped


def base_config(tmp_path, **kw):
    return EvalConfig(model_name_or_path="m", benchmark="MTEB(eng, v2)", device="cpu", output_dir=str(tmp_path), **kw)


def test_bad_cache_values_are_user_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="--cache must be one of task, keep, off"):
        base_config(tmp_path, cache="always")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--cache_dir is a file"):
        base_config(tmp_path, cache_dir=str(tmp_path / "file"))
    monkeypatch.setenv(FLUSH_ENV, "soon")
    with pytest.raises(UserError, match=FLUSH_ENV):
        flush_interval()
    monkeypatch.setenv(FLUSH_ENV, "2.5")
    assert flush_interval() == 2.5


# ------------------------------------------------------------------ full runs through mteb


def inputs(out, task):
    (path,) = out.glob(f"*/*/{MANIFEST_NAME}")
    rev = path.parent
    manifest = json.loads(path.read_text())
    score = json.loads((rev / f"{task}.json").read_text())["scores"]["test"][0]["main_score"]
    return manifest["tasks"][task]["inputs"], score


@pytest.fixture(scope="module")
def retrieval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    fd.beir_retrieval(root, "mteb/arguana", n_queries=6)
    fd.sts(root, "mteb/sts12-sts", n=50)
    return root


def evaluate(model, data, out, task, **kw):
    config = EvalConfig(
        model_name_or_path=str(model),
        benchmark="MTEB(eng, v2)",
        tasks=(task,),
        data_dir=str(data),
        output_dir=str(out),
        dtype="float32",
        device="cpu",
        **kw,
    )
    report = run(config)
    assert report.done, report.failed
    return inputs(out, task)


def test_instruction_ablation_reencodes_only_the_queries(qzhou_dir, retrieval_data, tmp_path):
    cache = str(tmp_path / "cache")
    kw = {"preset": "multilingual-e5-instruct", "cache": "keep", "cache_dir": cache}
    first, _ = evaluate(qzhou_dir, retrieval_data, tmp_path / "a", "ArguAna", **kw)
    assert first["texts_from_cache"] == 0
    second, score = evaluate(qzhou_dir, retrieval_data, tmp_path / "b", "ArguAna", instruction="Find it", **kw)
    # 24 documents from the cache; the 5 queries mteb keeps (the 6th has no qrels) encoded again
    assert (second["texts_from_cache"], second["texts_encoded"], second["texts"]) == (24, 5, first["texts"])
    _, uncached = evaluate(
        qzhou_dir, retrieval_data, tmp_path / "c", "ArguAna", preset=kw["preset"], instruction="Find it", cache="off"
    )
    assert score == pytest.approx(uncached, abs=1e-6)
    assert not (tmp_path / "c" / "embedding_cache").exists()


def test_fully_cached_rerun_encodes_nothing_and_max_length_change_takes_nothing(qzhou_dir, retrieval_data, tmp_path):
    kw = {"cache": "keep", "cache_dir": str(tmp_path / "cache")}
    first, score = evaluate(qzhou_dir, retrieval_data, tmp_path / "a", "STS12", **kw)
    again, score2 = evaluate(qzhou_dir, retrieval_data, tmp_path / "b", "STS12", **kw)
    assert (again["texts_from_cache"], again["texts_encoded"], again["texts"]) == (100, 0, 100)
    assert {k: again[k] for k in ("truncated", "longest_tokens", "empty_replaced")} == {
        k: first[k] for k in ("truncated", "longest_tokens", "empty_replaced")
    }
    assert score2 == score
    short, _ = evaluate(qzhou_dir, retrieval_data, tmp_path / "c", "STS12", max_length=32, **kw)
    assert short["texts_from_cache"] == 0 and short["texts_encoded"] == 100


def test_task_mode_deletes_a_tasks_vectors_once_its_result_is_written(qzhou_dir, retrieval_data, tmp_path):
    evaluate(qzhou_dir, retrieval_data, tmp_path / "a", "ArguAna")  # default: --cache task
    assert not (tmp_path / "a" / "embedding_cache").exists()


def test_kill_9_mid_task_then_rerun_takes_flushed_vectors_from_the_cache(qzhou_dir, retrieval_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), FLUSH_ENV: "0.2"}
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, *command(qzhou_dir, retrieval_data, out, tasks=["STS12"])],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not list((out / "embedding_cache").glob("*/STS12/*.idx")):
        assert proc.poll() is None, "the run ended before its first flush"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(out.glob("*/*/STS12.json")), "the kill came too late to test anything"

    res = run_cli(*command(qzhou_dir, retrieval_data, out, tasks=["STS12"]))
    assert res.returncode == 0, res.stderr
    resumed, score = inputs(out, "STS12")
    assert resumed["texts_from_cache"] >= 1
    assert resumed["texts_from_cache"] + resumed["texts_encoded"] == resumed["texts"] == 100
    assert "STS12" in res.stdout and f"{resumed['texts_from_cache']:8d}" in res.stdout  # the end table shows it
    assert not (out / "embedding_cache").exists()  # --cache task: gone once the result is written

    _, full = evaluate(qzhou_dir, retrieval_data, tmp_path / "full", "STS12", batch_size=1, cache="off")
    assert score == pytest.approx(full, abs=1e-6)


def test_a_late_result_of_a_failed_call_is_never_taken_by_the_next_call(qzhou_dir, parts):
    """Worker results are keyed by (call, job): a call that stops early leaves results in flight."""
    from qzhou_eval.model.build import RunnerFactory
    from qzhou_eval.model.workers import WorkerPool
    from qzhou_eval.recipe.resolve import prepare

    config = EvalConfig(model_name_or_path=str(qzhou_dir), benchmark="MTEB(eng, v2)", dtype="float32", device="cpu")
    recipe = prepare(config, quiet=True)
    pool = WorkerPool(["cpu", "cpu"], RunnerFactory(recipe.config, recipe.checkpoint, recipe.st), threads=1)
    try:
        emb = Embedder(None, recipe.tokenizer, batch_size=2, max_padding=1.0, runner=pool)

        def stop(positions, vectors):
            raise RuntimeError("stop after the first batch (injected)")

        with pytest.raises(RuntimeError, match="injected"):
            emb.encode(TEXTS, on_batch=stop)  # 16 jobs queued, 15 results left behind
        got = emb.encode(TEXTS[:4])
    finally:
        pool.close()
    assert np.abs(got - spy(parts).encode(TEXTS[:4])).max() <= 1e-5


def test_two_writers_share_one_cache_folder(parts, tmp_path):
    """Shard jobs write into one cache: segment names never collide, a later run reads both."""
    emb = spy(parts)
    one, two = EmbeddingCache(tmp_path, SETTINGS, flush_s=0), EmbeddingCache(tmp_path, SETTINGS, flush_s=0)
    one.encode(emb, "T", TEXTS[:8], "", EncodeStats())
    two.encode(emb, "T", TEXTS[8:16], "", EncodeStats())
    assert len(list(one.task_folder("T").glob("*.idx"))) == 4  # 2 batches each, none overwritten
    stats = EncodeStats()
    EmbeddingCache(tmp_path, SETTINGS).encode(emb, "T", TEXTS[:16], "", stats)
    assert stats.texts_from_cache == 16


def test_task_mode_drops_its_own_vectors_but_never_those_a_keep_run_kept(parts, tmp_path):
    kept = EmbeddingCache(tmp_path, SETTINGS, flush_s=60, keep=True)
    kept.encode(spy(parts), "T", TEXTS[:10], "q: ", EncodeStats())
    task_mode = EmbeddingCache(tmp_path, SETTINGS, flush_s=60)
    stats = EncodeStats()
    task_mode.encode(spy(parts), "T", TEXTS, "q: ", stats)
    assert (stats.texts_from_cache, stats.texts_encoded) == (10, 21)
    task_mode.drop_task("T")
    later = EncodeStats()
    EmbeddingCache(tmp_path, SETTINGS, flush_s=60).encode(spy(parts), "T", TEXTS, "q: ", later)
    assert (later.texts_from_cache, later.texts_encoded) == (10, 21)  # the kept 10 survive, the rest is gone
    assert tmp_path.is_dir()  # a --cache_dir the user named is never removed


def test_a_cache_that_cannot_be_written_never_fails_the_encode(parts, tmp_path, capsys):
    cache = EmbeddingCache(tmp_path, SETTINGS, flush_s=0)
    cache.task_folder("T").parent.mkdir(parents=True)
    cache.task_folder("T").write_text("a file where the task folder should be")  # every write fails
    plain = spy(parts).encode(TEXTS, "q: ")
    out = cache.encode(spy(parts), "T", TEXTS, "q: ", EncodeStats())
    assert np.abs(out - plain).max() <= 1e-5
    assert capsys.readouterr().err.count("embedding cache write failed") == 1
