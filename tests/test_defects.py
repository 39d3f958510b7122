"""Defects found where a setting was decided twice or an input was trusted (issue 15), each pinned by a test.

Aggregate tasks, manifest read errors, incomplete tasks in summaries, run summaries, files outside the model
folder, zero-token texts, tracebacks instead of `error:` lines, file locks, memoised data hashes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path

import fixture_data as fd
import numpy as np
import pandas as pd
import pytest

from qzhou_eval.cli import main
from qzhou_eval.config import EvalConfig
from qzhou_eval.errors import UserError
from qzhou_eval.evaluate.runner import run
from qzhou_eval.model.embedder import Embedder
from qzhou_eval.recipe.benchmarks import select_specs
from qzhou_eval.store import lock as lock_module
from qzhou_eval.store import manifest as manifest_module
from qzhou_eval.store.cache import EmbeddingCache
from qzhou_eval.store.manifest import MANIFEST_NAME, Manifest

CQA = [spec for spec in select_specs(None, ("CQADupstackRetrieval",))][0]


def last_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


# --- aggregate tasks: data, prefixes, cache and manifest follow the subtasks mteb runs ---------------------------


@pytest.fixture(scope="module")
def cqa_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    for i, sub in enumerate(CQA.subtasks):
        fd.beir_retrieval(root, sub.dataset_path, n_queries=3, seed=i)
    return root


def test_an_aggregate_task_runs_its_subtasks_from_their_own_data_folders(qzhou_dir, cqa_data, tmp_path, monkeypatch):
    seen: dict[tuple[str, str], set[str]] = {}
    cached: set[str] = set()
    real, real_cached = Embedder.encode, EmbeddingCache.encode

    def encode(self, texts, prefix="", **kwargs):
        where = kwargs["where"]
        task, kind = where.split(" (")[0], where.split("(")[1].split()[0]
        seen.setdefault((task, kind), set()).add(prefix)
        return real(self, texts, prefix, **kwargs)

    def cache_encode(self, embedder, task, *args, **kwargs):
        cached.add(task)
        return real_cached(self, embedder, task, *args, **kwargs)

    monkeypatch.setattr(Embedder, "encode", encode)
    monkeypatch.setattr(EmbeddingCache, "encode", cache_encode)
    config = EvalConfig(
        str(qzhou_dir), tasks=("CQADupstackRetrieval",), data_dir=str(cqa_data), output_dir=str(tmp_path),
        dtype="float32", device="cpu", batch_size=8,
    )  # fmt: skip
    report = run(config)
    assert report.failed == {} and list(report.done) == ["CQADupstackRetrieval"]
    entry = json.loads((report.folder / MANIFEST_NAME).read_text())["tasks"]["CQADupstackRetrieval"]
    names = [sub.name for sub in CQA.subtasks]
    assert entry["plan"]["subtasks"] == names and set(entry["prefixes"]) == set(names)
    assert {task for task, _ in seen} == set(names)
    for (task, kind), prefixes in seen.items():
        assert prefixes == {entry["prefixes"][task][kind]}, (task, kind)
    # the two symmetric subtasks of QZhou's table instruct documents too; the others (task metadata) only queries
    assert entry["prefixes"]["CQADupstackGamingRetrieval"]["passage"].startswith("Instruct: ")
    assert entry["prefixes"]["CQADupstackAndroidRetrieval"]["passage"] == ""
    assert entry["data_source"].count(str(cqa_data.resolve())) == len(names)
    assert cached == set(names)  # every subtask's vectors went through the cache ...
    assert not (tmp_path / "embedding_cache").exists()  # ... and were dropped once the result is safe
    result = json.loads((report.folder / "CQADupstackRetrieval.json").read_text())
    assert result["scores"]["test"][0]["main_score"] == pytest.approx(
        report.done["CQADupstackRetrieval"]["test/default"]
    )


def test_prompts_lists_an_aggregates_subtasks(capsys):
    assert main(["prompts", "--tasks", "CQADupstackRetrieval", "--format", "json"]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert list(cells) == [sub.name for sub in CQA.subtasks]
    assert cells["CQADupstackUnixRetrieval"]["query"].startswith("Instruct: ")


# --- the manifest: a read error is never turned into an empty manifest -------------------------------------------


def test_a_manifest_that_cannot_be_read_is_retried_then_an_error_and_left_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "READ_BACKOFF_S", 0.0)
    path = tmp_path / MANIFEST_NAME
    path.write_text('{"tasks": {"other-shard-task": {"status": "done"}}')  # cut short
    before = path.read_bytes()
    with pytest.raises(UserError, match="after 5 tries"):
        Manifest(path, {"job": 1}).record_task("mine", {"status": "done"})
    assert path.read_bytes() == before


def test_a_transient_read_error_is_retried_and_every_shards_record_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "READ_BACKOFF_S", 0.0)
    path = tmp_path / MANIFEST_NAME
    Manifest(path, {"job": 1}).record_task("other-shard-task", {"status": "done"})
    real, failures = Path.read_text, []

    def flaky(self, *args, **kwargs):
        if self == path and len(failures) < 2:
            failures.append(1)
            raise OSError(errno.ESTALE, "Stale file handle")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", flaky)
    Manifest(path, {"job": 2}).record_task("mine", {"status": "done"})
    assert len(failures) == 2
    assert set(json.loads(real(path))["tasks"]) == {"other-shard-task", "mine"}


def test_a_run_stops_before_loading_when_its_manifest_cannot_be_read(
    qzhou_dir, sts_data, tmp_path, capsys, monkeypatch
):
    from qzhou_eval.recipe.resolve import prepare

    monkeypatch.setattr(manifest_module, "READ_BACKOFF_S", 0.0)
    revision = prepare(EvalConfig(str(qzhou_dir), tasks=("STS12",), device="cpu"), quiet=True).checkpoint.revision
    folder = tmp_path / "out" / "local__qzhou" / revision
    folder.mkdir(parents=True)
    (folder / MANIFEST_NAME).write_text("{")
    args = ["--model_name_or_path", str(qzhou_dir), "--tasks", "STS12", "--data_dir", str(sts_data)]
    args += ["--output_dir", str(tmp_path / "out"), "--device", "cpu", "--dtype", "float32"]
    assert main(args, benchmark="MTEB(eng, v2)") == 2
    err = capsys.readouterr().err
    assert "cannot read" in err.strip().splitlines()[-1] and "loading" not in err
    assert (folder / MANIFEST_NAME).read_text() == "{" and sorted(p.name for p in folder.iterdir()) == [MANIFEST_NAME]


# --- summaries ----------------------------------------------------------------------------------------------------


def result_file(folder: Path, task: str, scores: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = {"task_name": task, "mteb_version": "1.38.30", "dataset_revision": "x", "scores": scores}
    (folder / f"{task}.json").write_text(json.dumps(body))


def test_a_task_missing_a_required_subset_is_incomplete_not_scored(tmp_path, capsys):
    tree = tmp_path / "results"
    folder = tree / "org__m" / "r1"
    result_file(folder, "STS17", {"test": [{"hf_subset": "en-en", "main_score": 0.8}]})
    args = ["summarize", "--results_dir", str(tree), "--output_dir", str(tmp_path / "a")]
    assert main([*args, "--benchmark", "MTEB(Multilingual, v2)"]) == 0
    per_task = pd.read_csv(tmp_path / "a" / "summary" / "per_task.csv").set_index("task")
    assert np.isnan(per_task.loc["STS17", "score"])  # 1 of its 11 subsets: not STS17's score
    assert "STS17" in (tmp_path / "a" / "summary" / "summary.md").read_text().split("## Missing tasks")[1]
    args[-1] = str(tmp_path / "b")
    assert main([*args, "--benchmark", "MTEB(eng, v2)"]) == 0  # there, en-en is the only subset it needs
    per_task = pd.read_csv(tmp_path / "b" / "summary" / "per_task.csv").set_index("task")
    assert per_task.loc["STS17", "score"] == 80.0


def test_malformed_entries_of_a_results_tree_are_skipped_without_a_traceback(tmp_path, capsys):
    folder = tmp_path / "results" / "org__m" / "r1"
    result_file(folder, "STS12", {"test": [{"hf_subset": "default", "main_score": 0.5}]})
    result_file(folder, "STS13", {"test": [1, "x", {"hf_subset": "default", "main_score": "high"}]})
    result_file(folder, "STS14", {"test": {"hf_subset": "default"}})
    result_file(folder, "STS15", [])
    (folder / "BIOSSES.json").write_text('["not", "a", "result"]')
    (folder / "model_meta.json").write_text('["a list"]')
    (folder / MANIFEST_NAME).write_text('{"tasks": ["a list"]}')
    args = ["summarize", "--results_dir", str(tmp_path / "results"), "--benchmark", "MTEB(eng, v2)"]
    assert main([*args, "--output_dir", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    per_task = pd.read_csv(tmp_path / "summary" / "per_task.csv").set_index("task")
    assert (
        per_task.loc["STS12", "score"] == 50.0
        and per_task.loc[["STS13", "STS14", "STS15", "BIOSSES"], "score"].isna().all()
    )


@pytest.fixture(scope="module")
def sts_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    fd.sts(root, "mteb/sts12-sts", n=12)
    fd.sts(root, "mteb/sts13-sts", n=12, seed=1)
    return root


def test_a_run_never_rewrites_a_summary_of_several_models_nor_another_shards(qzhou_dir, sts_data, tmp_path, capsys):
    second = tmp_path / "second-model"
    shutil.copytree(qzhou_dir, second)
    out = tmp_path / "out"

    def run_model(model, *extra):
        args = ["--model_name_or_path", str(model), "--tasks", "STS12", "STS13", "--data_dir", str(sts_data)]
        args += ["--output_dir", str(out), "--device", "cpu", "--dtype", "float32", *extra]
        assert main(args, benchmark="MTEB(eng, v2)") == 0, capsys.readouterr().err

    run_model(qzhou_dir)
    run_model(second, "--revision", "r2")
    assert main(["summarize", "--results_dir", str(out), "--benchmark", "MTEB(eng, v2)"]) == 0
    table = out / "summary" / "summary.csv"
    before = table.read_bytes()
    assert len(pd.read_csv(table)) == 2
    run_model(qzhou_dir, "--overwrite", "--batch_size", "4")  # a rerun of one model
    assert table.read_bytes() == before
    runs = sorted(p.relative_to(out / "summary" / "runs").as_posix() for p in (out / "summary" / "runs").glob("*/*"))
    revision = next((out / "local__qzhou").iterdir()).name
    assert runs == [f"local__qzhou@{revision}/MTEB_eng_v2", "local__second-model@r2/MTEB_eng_v2"]
    for shard in ("1/2", "2/2"):
        run_model(second, "--revision", "r3", "--shard", shard)
    shards = sorted(p.name for p in (out / "summary" / "runs" / "local__second-model@r3").iterdir())
    assert shards == ["MTEB_eng_v2-shard-1-of-2", "MTEB_eng_v2-shard-2-of-2"]
    # revisions that share their first 12 characters, and another benchmark, keep their own tables too
    run_model(second, "--revision", "experiment-2024-a")
    run_model(second, "--revision", "experiment-2024-b", "--normalize", "false")
    assert {p.name for p in (out / "summary" / "runs").iterdir()} >= {
        "local__second-model@experiment-2024-a", "local__second-model@experiment-2024-b",
    }  # fmt: skip
    assert table.read_bytes() == before


# --- a model folder's files cannot reach outside it ---------------------------------------------------------------


@pytest.fixture(scope="module")
def st_dir(tmp_path_factory):
    import fixture_models
    import torch
    from sentence_transformers import SentenceTransformer, models

    bert = fixture_models.build_bert(tmp_path_factory.mktemp("ckpt") / "bert")
    torch.manual_seed(0)
    transformer = models.Transformer(str(bert), max_seq_length=32)
    pool = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    path = tmp_path_factory.mktemp("st") / "st-model"
    SentenceTransformer(modules=[transformer, pool], device="cpu").save(str(path))
    return path


def embed_args(model: Path, tmp_path: Path, text: str = "a\nb\n", *extra: str) -> list[str]:
    src = tmp_path / "in.txt"
    src.write_text(text, encoding="utf-8")
    args = ["embed", "--model_name_or_path", str(model), "--task", "STSBenchmark", "--prompt_type", "none"]
    return [*args, "--input", str(src), "--output", str(tmp_path / "out.npy"), "--device", "cpu", *extra]


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"tokenizer_name_or_path": "../elsewhere"}, "leaves the model folder"),
        ({"tokenizer_name_or_path": "/tmp"}, "leaves the model folder"),
        ({"cache_dir": "/tmp/other"}, "would load files from elsewhere"),
        ({"backend": "onnx"}, "backend 'onnx'"),
        ({"model_args": {"cache_dir": "/tmp"}}, "would load files from elsewhere"),
    ],
)
def test_sentence_transformers_configs_cannot_point_outside_the_model_folder(st_dir, tmp_path, capsys, edit, message):
    model = tmp_path / "m"
    shutil.copytree(st_dir, model)
    (tmp_path / "elsewhere").mkdir()
    cfg_path = model / "sentence_bert_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), **edit}))
    assert main(embed_args(model, tmp_path, "a\n", "--preset", "sentence-transformers")) == 2
    assert message in last_error(capsys)


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("config.json", "[1, 2]", "is a JSON list, not an object"),
        ("config_sentence_transformers.json", "{not json", "cannot read"),
        ("config_sentence_transformers.json", '{"prompts": ["query: "]}', "'prompts' must map prompt names to texts"),
        ("config_sentence_transformers.json", "[]", "is not a JSON object"),
        ("sentence_bert_config.json", '"text"', "is not a JSON object"),
    ],
)
def test_malformed_model_files_are_one_error_line(st_dir, tmp_path, capsys, file, content, message):
    model = tmp_path / "m"
    shutil.copytree(st_dir, model)
    (model / file).write_text(content)
    assert main(embed_args(model, tmp_path, "a\n", "--preset", "sentence-transformers")) == 2
    assert message in last_error(capsys)


def test_embed_writes_exactly_the_output_path_it_prints(st_dir, tmp_path, capsys):
    args = embed_args(st_dir, tmp_path, "a\nb\n", "--preset", "sentence-transformers")
    out = tmp_path / "vectors.bin"
    args[args.index("--output") + 1] = str(out)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert out.is_file() and not Path(str(out) + ".npy").exists()
    assert f"{out}: 2 x 32 float32" in err and np.load(out).shape == (2, 32)


# --- zero-token texts ---------------------------------------------------------------------------------------------


def test_a_text_with_no_token_is_an_error_naming_the_task_and_index(stock_qwen2_dir, tmp_path, capsys):
    # qwen3-embedding keeps empty texts, and this tokenizer adds no special token: "" has no token at all
    args = embed_args(stock_qwen2_dir, tmp_path, "first\n\nthird\n", "--preset", "qwen3-embedding")
    args[args.index("--task") + 1], args[args.index("--prompt_type") + 1] = "SciFact", "passage"
    assert main(args) == 2
    line = last_error(capsys)
    assert "SciFact (passage texts" in line and "text 1 (of 3) tokenizes to zero tokens" in line
    assert not (tmp_path / "out.npy").exists()


def test_zero_token_texts_fail_their_task_with_an_error_line_and_the_suite_goes_on(stock_qwen2_dir, tmp_path, capsys):
    data = tmp_path / "hub"
    fd.sts(data, "mteb/sts12-sts", n=12)
    rows = [json.loads(line) for line in (data / "mteb/sts12-sts/test.jsonl").read_text().splitlines()]
    rows[3]["sentence2"] = ""
    (data / "mteb/sts13-sts").mkdir(parents=True)
    (data / "mteb/sts13-sts/test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--model_name_or_path", str(stock_qwen2_dir), "--preset", "qwen3-embedding", "--use_instruction", "false"]
    args += ["--tasks", "STS12", "STS13"]
    args += ["--data_dir", str(data), "--output_dir", str(tmp_path / "out"), "--device", "cpu", "--dtype", "float32"]
    assert main(args, benchmark="MTEB(eng, v2)") == 1
    err = capsys.readouterr().err
    assert "error: STS13: STS13 (none texts): text" in err and "tokenizes to zero tokens" in err
    assert "Traceback" not in err and "STS12: test/default" in err


# --- file locks ---------------------------------------------------------------------------------------------------


def test_a_file_system_without_flock_falls_back_to_record_locks_and_says_so_once(tmp_path, monkeypatch, capsys):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    monkeypatch.setattr(lock_module, "_fallback_said", [])
    path = tmp_path / MANIFEST_NAME
    for i in range(3):
        Manifest(path, {}).record_task(f"t{i}", {"status": "done"})
    assert set(json.loads(path.read_text())["tasks"]) == {"t0", "t1", "t2"}
    assert capsys.readouterr().err.count("using fcntl record locks") == 1


def test_a_file_system_without_any_lock_is_refused_before_the_model_loads(
    qzhou_dir, sts_data, tmp_path, monkeypatch, capsys
):
    def refuse(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    monkeypatch.setattr(fcntl, "lockf", refuse)
    args = ["--model_name_or_path", str(qzhou_dir), "--tasks", "STS12", "--data_dir", str(sts_data)]
    args += ["--output_dir", str(tmp_path / "out"), "--device", "cpu"]
    assert main(args, benchmark="MTEB(eng, v2)") == 2
    err = capsys.readouterr().err
    assert "file locks do not work in" in err.strip().splitlines()[-1] and "loading" not in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".qzhou_eval*"))


# --- hashes of local data are remembered like weights -------------------------------------------------------------


def test_local_data_is_hashed_once_and_remembered_across_processes(tmp_path, monkeypatch):
    from qzhou_eval import files
    from qzhou_eval.evaluate.data import data_sha256

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "_memo", None)
    data = tmp_path / "hub"
    fd.sts(data, "mteb/sts12-sts", n=12)
    big = data / "mteb/sts12-sts/zz.bin"  # hashed after the small files
    big.write_bytes(b"a" * (2 << 20))  # over the on-disk memo threshold
    (spec,) = select_specs(None, ("STS12",))
    first = data_sha256(spec, str(data))
    on_disk = json.loads((tmp_path / "cache/qzhou_eval/file_sha256.json").read_text())
    assert [key.split("|")[0] for key in on_disk] == [str(big.resolve())]  # small files are only hashed again
    stat = big.stat()
    big.write_bytes(b"b" * (2 << 20))  # same size; mtime put back: only a re-read could see the change
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(files, "_memo", None)  # a new process: the memo comes from disk
    assert data_sha256(spec, str(data)) == first
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # a real edit moves the mtime
    assert data_sha256(spec, str(data)) != first


# --- two local copies of one dataset are never confused by the `datasets` cache -----------------------------------


def test_a_second_local_copy_of_a_dataset_is_read_as_itself_not_from_the_first_ones_cache(qzhou_dir, tmp_path):
    counts = {}
    for name, n_queries in (("a", 6), ("b", 3)):
        data = tmp_path / name / "hub"
        fd.beir_retrieval(data, "mteb/scifact", n_queries=n_queries, seed=n_queries)  # same folder name, README
        config = EvalConfig(
            str(qzhou_dir), tasks=("SciFact",), data_dir=str(data), output_dir=str(tmp_path / name / "out"),
            dtype="float32", device="cpu", cache="off",
        )  # fmt: skip
        report = run(config)
        counts[name] = report.inputs["SciFact"]["texts"]
    assert counts["b"] == 24 + 3 and counts["a"] > counts["b"]  # b's own 3 queries, not a's 6


# --- found in review: the runner in the cache key, files outside the folder, malformed entries, default prompts ---


def test_the_runner_that_embeds_is_part_of_the_settings_and_the_cache_key(st_dir):
    from qzhou_eval.evaluate.plan import build_plan
    from qzhou_eval.recipe.resolve import prepare
    from qzhou_eval.store.cache import settings_key

    (spec,) = select_specs(None, ("STS12",))
    plans = {}
    for preset in ("sentence-transformers", "qzhou"):
        config = EvalConfig(str(st_dir), tasks=("STS12",), preset=preset, device="cpu", dtype="float32",
                            max_length=32, use_instruction=False, pooling_mode="mean", normalize=False)  # fmt: skip
        plans[preset] = build_plan(prepare(config, quiet=True), spec, None)
    assert plans["sentence-transformers"].recipe["runner"].startswith("sentence-transformers: Transformer(.)")
    assert plans["qzhou"].recipe["runner"] == "transformers"
    keys = {p: settings_key(plan.cache_settings()) for p, plan in plans.items()}
    assert keys["sentence-transformers"] != keys["qzhou"]


def test_library_versions_are_in_the_cache_key_and_the_fingerprint(qzhou_dir, monkeypatch):
    from qzhou_eval.evaluate import plan as plan_module
    from qzhou_eval.recipe.resolve import prepare
    from qzhou_eval.store.cache import settings_key

    (spec,) = select_specs(None, ("STS12",))
    plan = plan_module.build_plan(
        prepare(EvalConfig(str(qzhou_dir), tasks=("STS12",), device="cpu"), quiet=True), spec, None
    )
    before = settings_key(plan.cache_settings()), plan.fingerprint()
    real = plan_module.versions_of
    monkeypatch.setattr(plan_module, "versions_of", lambda names: {**real(names), "version:torch": "99.0"})
    after = settings_key(plan.cache_settings()), plan.fingerprint()
    assert after[0] != before[0] and after[1] != before[1]


@pytest.mark.parametrize("where", ["tokenizer_args", "tokenizer_config"])
def test_a_tokenizer_file_outside_the_model_folder_is_refused(st_dir, tmp_path, capsys, where):
    model = tmp_path / "m"
    shutil.copytree(st_dir, model)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(model / "vocab.txt", outside / "vocab.txt")
    if where == "tokenizer_args":
        cfg = json.loads((model / "sentence_bert_config.json").read_text())
        cfg["tokenizer_args"] = {"vocab_file": str(outside / "vocab.txt")}
        (model / "sentence_bert_config.json").write_text(json.dumps(cfg))
        (model / "tokenizer.json").unlink()
    else:
        cfg = json.loads((model / "tokenizer_config.json").read_text())
        cfg["vocab_file"] = str(outside / "vocab.txt")
        (model / "tokenizer_config.json").write_text(json.dumps(cfg))
        (model / "tokenizer.json").unlink()
        (model / "vocab.txt").unlink()
    preset = "sentence-transformers" if where == "tokenizer_args" else "bge-en"
    assert main(embed_args(model, tmp_path, "a\n", "--preset", preset)) == 2
    assert "lies outside the model folder" in last_error(capsys)


def test_malformed_numbers_in_model_configs_are_one_error_line(st_dir, tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(st_dir, model)
    (model / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": "long"}))
    assert main(embed_args(model, tmp_path, "a\n", "--preset", "sentence-transformers")) == 2
    assert "max_seq_length 'long'" in last_error(capsys)
    assert main(embed_args(st_dir, tmp_path, "", "--preset", "sentence-transformers")) == 2
    assert "input file is empty" in last_error(capsys)


def test_a_hand_edited_manifest_entry_is_no_record_not_a_traceback(qzhou_dir, sts_data, tmp_path, capsys):
    args = ["--model_name_or_path", str(qzhou_dir), "--tasks", "STS12", "--data_dir", str(sts_data)]
    args += ["--output_dir", str(tmp_path), "--device", "cpu", "--dtype", "float32"]
    assert main(args, benchmark="MTEB(eng, v2)") == 0
    path = next(tmp_path.rglob(MANIFEST_NAME))
    for broken in ("done", {"status": "done", "settings": [1, 2]}):
        data = json.loads(path.read_text())
        data["tasks"]["STS12"] = broken
        path.write_text(json.dumps(data))
        capsys.readouterr()
        assert main(args, benchmark="MTEB(eng, v2)") == 2  # no record of these settings: refused, as documented
        assert "provenance" in last_error(capsys)


def test_a_transient_error_while_resuming_is_retried_not_taken_for_no_record(
    qzhou_dir, sts_data, tmp_path, monkeypatch
):
    args = ["--model_name_or_path", str(qzhou_dir), "--tasks", "STS12", "--data_dir", str(sts_data)]
    args += ["--output_dir", str(tmp_path), "--device", "cpu", "--dtype", "float32"]
    assert main(args, benchmark="MTEB(eng, v2)") == 0
    monkeypatch.setattr(manifest_module, "READ_BACKOFF_S", 0.0)
    real, calls = Path.read_text, []

    def flaky(self, *a, **k):
        if self.name == MANIFEST_NAME:
            calls.append(1)
            if len(calls) == 2:  # the second read of the run: resume's
                raise OSError(errno.ESTALE, "Stale file handle")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", flaky)
    assert main(args, benchmark="MTEB(eng, v2)") == 0  # skipped as done, not refused as "no record"


def test_a_sentence_transformers_default_prompt_applies_where_no_prompt_name_matches(st_dir, tmp_path, capsys):
    model = tmp_path / "m"
    shutil.copytree(st_dir, model)
    cfg = {"prompts": {"query": "q: ", "passage": "p: "}, "default_prompt_name": "query"}
    (model / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    base = ["prompts", "--preset", "sentence-transformers", "--model_name_or_path", str(model), "--format", "json"]
    assert main([*base, "--tasks", "STSBenchmark", "SciFact"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["STSBenchmark"]["none"] == "q: " and rows["SciFact"]["passage"] == "p: "
    cfg["default_prompt_name"] = "nope"
    (model / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    assert main([*base, "--tasks", "STSBenchmark"]) == 2
    assert "default_prompt_name 'nope'" in last_error(capsys)
