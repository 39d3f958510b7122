"""Scale: token-budget batches, multi-process workers, shards and dry runs, the benchmark script."""

import json

import fixture_data as fd
import numpy as np
import pytest
from conftest import run_cli
from reference_impl import cosines

from qzhou_eval.cli import main
from qzhou_eval.errors import UserError
from qzhou_eval.evaluate.shard import launcher_device, parse_shard, shard_from_env, shard_tasks
from qzhou_eval.evaluate.sizes import size_table, spec_size, task_size
from qzhou_eval.model.batching import plan_batches
from qzhou_eval.model.embedder import Embedder
from qzhou_eval.model.weights import load_model
from qzhou_eval.recipe.benchmarks import benchmark_tasks
from qzhou_eval.recipe.checkpoint import resolve_checkpoint
from qzhou_eval.recipe.tokenizer import load_tokenizer

TEXTS = [("word " * (i % 37)) + f"text {i}" for i in range(90)] + [""]


@pytest.fixture(scope="module")
def parts(qzhou_dir):
    ckpt = resolve_checkpoint(str(qzhou_dir))
    return load_model(ckpt, "float32", "sdpa", "cpu", False), load_tokenizer(ckpt, "auto", False)


def test_plan_batches_respects_the_token_budget_and_covers_every_text():
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(1, 60, size=200))
    order = np.argsort([-n for n in lengths])
    batches = plan_batches(lengths, order, batch_size=32, batch_tokens=1000)
    assert sorted(int(i) for b in batches for i in b) == list(range(200))
    assert all(len(b) * max(lengths[i] for i in b) <= 1000 for b in batches)
    assert max(len(b) for b in batches) > 32  # short texts fill the budget beyond batch_size


def test_token_budget_batches_give_the_same_embeddings(parts):
    model, tok = parts
    fixed = Embedder(model, tok, batch_size=8, max_length=64).encode(TEXTS, "Instruct: x\nQuery: ")
    budget = Embedder(model, tok, batch_size=8, batch_tokens=300, max_length=64)
    out = budget.encode(TEXTS, "Instruct: x\nQuery: ")
    assert cosines(out, fixed).min() >= 0.99999


def test_token_sort_pads_less_than_character_sort(parts):
    model, tok = parts
    chars = Embedder(model, tok, sort_by="chars", batch_size=8)
    tokens = Embedder(model, tok, batch_size=8)
    a = chars.encode(TEXTS)
    b = tokens.encode(TEXTS)
    assert cosines(a, b).min() >= 0.99999
    assert tokens.last_padding[0] <= chars.last_padding[0]


def test_two_cpu_workers_equal_one_process(qzhou_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n")
    common = [
        "-m",
        "qzhou_eval",
        "embed",
        "--model_name_or_path",
        str(qzhou_dir),
        "--task",
        "SCIDOCS",
        "--prompt_type",
        "query",
        "--input",
        str(src),
        "--dtype",
        "float32",
        "--batch_size",
        "4",
    ]
    one = run_cli(*common, "--output", str(tmp_path / "one.npy"), "--device", "cpu")
    two = run_cli(*common, "--output", str(tmp_path / "two.npy"), "--devices", "cpu,cpu")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    a, b = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert a.shape == b.shape == (len(TEXTS), 64)
    assert np.abs(a - b).max() <= 1e-5


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_partition_the_task_list_stably(n):
    specs = benchmark_tasks("MTEB(eng, v2)")
    costs = {name: spec_size(s, None).cost for name, s in specs.items()}
    parts = [shard_tasks(costs, k, n) for k in range(1, n + 1)]
    flat = [t for p in parts for t in p]
    assert sorted(flat) == sorted(specs) and len(flat) == len(set(flat)) == 41
    assert parts == [shard_tasks(costs, k, n) for k in range(1, n + 1)]  # the same in every job
    reordered = dict(reversed(costs.items()))
    assert [set(p) for p in parts] == [set(shard_tasks(reordered, k, n)) for k in range(1, n + 1)]
    loads = [sum(costs[t] for t in p) for p in parts]
    assert max(loads) <= max(costs.values()) + sum(costs.values()) / n  # greedy balance bound


def test_shard_flag_is_validated():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1-3", ""):
        with pytest.raises(Exception, match="K/N"):
            parse_shard(bad)


LAUNCHER_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_STEP")
LAUNCHER_VARS += ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def dry_run_tasks(qzhou_dir, tmp_path, capsys, shard: str) -> list[str]:
    """stdout of an in-process `--dry_run` over MTEB(eng, v2) with `--shard shard`."""
    argv = ["--model_name_or_path", str(qzhou_dir), "--shard", shard, "--dry_run", "--output_dir", str(tmp_path)]
    capsys.readouterr()
    assert main(argv, benchmark="MTEB(eng, v2)") == 0, capsys.readouterr().err
    return capsys.readouterr().out.splitlines()


def test_shard_auto_equals_the_explicit_shard_under_slurm_and_torchrun(qzhou_dir, tmp_path, capsys, monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    explicit = {k: dry_run_tasks(qzhou_dir, tmp_path, capsys, f"{k}/3") for k in (1, 2)}
    assert explicit[1] and explicit[2] and not set(explicit[1]) & set(explicit[2])
    # an array --array=4-6: the second job has id 5
    for var, value in (("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "4"), ("SLURM_ARRAY_TASK_COUNT", "3")):
        monkeypatch.setenv(var, value)
    assert dry_run_tasks(qzhou_dir, tmp_path, capsys, "auto") == explicit[2]
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert dry_run_tasks(qzhou_dir, tmp_path, capsys, "auto") == explicit[1]
    assert not any(tmp_path.iterdir())


def test_shard_auto_without_a_launcher_is_an_error(qzhou_dir, tmp_path, capsys, monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    argv = ["--model_name_or_path", str(qzhou_dir), "--shard", "auto", "--dry_run", "--output_dir", str(tmp_path)]
    assert main(argv, benchmark="MTEB(eng, v2)") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1].startswith("error: --shard auto found no launcher")


def test_shard_auto_positions_from_launcher_variables():
    slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "8"}
    assert parse_shard("auto", slurm) == (8, 8)
    assert shard_from_env({**slurm, "SLURM_ARRAY_TASK_ID": "0"}) == (1, 8)
    # --array=0-12:4 gives ids 0, 4, 8, 12 and a count of 4
    stepped = {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shard_from_env({**stepped, "SLURM_ARRAY_TASK_STEP": "4"}) == (3, 4)
    assert shard_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (4, 4)
    # torchrun with 2 ranks inside array job 1 (of 0-2): every process of the allocation gets its own part
    both = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}
    parts = [
        shard_from_env({**both, "SLURM_ARRAY_TASK_ID": str(a), "RANK": str(r), "WORLD_SIZE": "2"})
        for a in range(3)
        for r in range(2)
    ]
    assert parts == [(k, 6) for k in range(1, 7)]


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({}, "found no launcher"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, "TASK_ID=3"),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"}, "TASK_ID=0"),
        ({"SLURM_ARRAY_TASK_ID": "2"}, "SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT not set"),
        ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, "not integers"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is outside"),
        ({"RANK": "0"}, "WORLD_SIZE not set"),
    ],
)
def test_shard_auto_refuses_inconsistent_launcher_variables(env, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_shard("auto", env)


def test_each_torchrun_rank_gets_its_own_gpu():
    assert launcher_device({"RANK": "5", "LOCAL_RANK": "1"}, n_gpus=4) == "cuda:1"
    assert launcher_device({"RANK": "5", "LOCAL_RANK": "1"}, n_gpus=1) is None  # no such GPU here
    assert launcher_device({"SLURM_ARRAY_TASK_ID": "1"}, n_gpus=4) is None  # SLURM gives each job its GPUs


def test_task_sizes_are_distinct_texts_of_the_evaluated_splits_and_subsets(tmp_path):
    # mteb's statistics: 2.37 M reranking samples, 42,439 distinct texts
    assert task_size("MindSmallReranking", ("test",)) == task_size("MindSmallReranking")
    assert task_size("MindSmallReranking", ("test",)).texts == 42439
    both = task_size("MultilingualSentiment", ("test", "validation"))
    assert both.texts == 2998 + 2989 and both.exact
    assert task_size("MultilingualSentiment", ("validation",)).texts == 2989
    en = task_size("MassiveIntentClassification", ("test",), ("en",))
    assert en.texts == round(148972 / 51) and en.source == "mteb stats, 1/51 subsets"
    fd.sts(tmp_path, "org/not-in-stats", n=10)
    local = task_size("NotInStats", ("test",), (), "org/not-in-stats", str(tmp_path))
    assert local.texts is None and local.source == "local data (bytes)"
    assert local.chars == (tmp_path / "org/not-in-stats/test.jsonl").stat().st_size
    assert task_size("NotInStats", ("test",), (), "org/elsewhere", str(tmp_path)).source == "unknown"


def test_dry_run_prints_distinct_texts_and_characters_per_task_and_total(qzhou_dir, tmp_path, capsys):
    argv = ["--model_name_or_path", str(qzhou_dir), "--tasks", "STSBenchmark", "MindSmallReranking"]
    assert main([*argv, "--dry_run", "--output_dir", str(tmp_path)], benchmark="MTEB(eng, v2)") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["STSBenchmark", "MindSmallReranking"]
    rows = {line.split()[0]: line.split()[1:3] for line in captured.err.splitlines() if line.split()}
    assert rows["STSBenchmark"] == ["2,593", "139,029"]
    assert rows["MindSmallReranking"] == ["42,439", "2,895,933"]
    assert rows["total"] == [f"{2593 + 42439:,}", f"{139029 + 2895933:,}"]


def test_size_table_marks_estimates_and_unknowns():
    table = size_table({"A": task_size("STS17", ("test",), ("en-en",)), "B": task_size("Nope", ("test",))}).splitlines()
    assert table[1].split()[1].startswith("~") and table[2].split()[1:3] == ["?", "?"]
    assert table[-1].endswith("2 tasks (1 task(s) without a text count)")


def test_dry_run_prints_only_task_names_on_stdout(qzhou_dir, tmp_path):
    outs = []
    for k in (1, 2, 3):
        res = run_cli(
            "run_mteb_all_v2.py",
            "--model_name_or_path",
            str(qzhou_dir),
            "--shard",
            f"{k}/3",
            "--dry_run",
            "--output_dir",
            str(tmp_path),
        )
        assert res.returncode == 0, res.stderr
        outs.append(res.stdout.splitlines())
        assert f"shard {k}/3" in res.stderr
    flat = [t for o in outs for t in o]
    assert sorted(flat) == sorted(benchmark_tasks("MTEB(eng, v2)")) and len(set(flat)) == 41
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_dry_run_leaves_out_finished_tasks(qzhou_dir, tmp_path):
    data = tmp_path / "hub"
    fd.sts(data, "mteb/sts12-sts", n=10)
    fd.sts(data, "mteb/sts13-sts", n=10)
    base = [
        "run_mteb_all_v2.py",
        "--model_name_or_path",
        str(qzhou_dir),
        "--data_dir",
        str(data),
        "--output_dir",
        str(tmp_path / "o"),
        "--dtype",
        "float32",
        "--tasks",
    ]
    assert run_cli(*base, "STS12").returncode == 0
    res = run_cli(*base, "STS12", "STS13", "--dry_run")
    assert res.returncode == 0 and res.stdout.splitlines() == ["STS13"]


def test_benchmark_script_reports_positive_speeds(qzhou_dir):
    res = run_cli(
        "benchmarks/bench_embed.py",
        "--model_name_or_path",
        str(qzhou_dir),
        "--n_texts",
        "60",
        "--dtype",
        "float32",
        "--rounds",
        "1",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout.strip().splitlines()[-1])
    for key in (
        "ours_texts_per_s",
        "reference_texts_per_s",
        "st_texts_per_s",
        "ratio_vs_reference",
        "ratio_vs_sentence_transformers",
        "cache_cold_texts_per_s",
        "ratio_cache_cold_vs_off",
        "cache_warm_texts_per_s",
    ):
        assert report[key] > 0, key
    assert 0 <= report["padding_fraction"] <= report["reference_padding_fraction"] < 1
    assert 0.99999 <= report["min_cosine_vs_reference"] <= 1.00001
