"""Scale: token-budget batches, multi-process workers, shards and dry runs, the benchmark script."""

import json

import fixture_data as fd
import numpy as np
import pytest
from conftest import run_cli
from reference_impl import cosines

from qzhou_eval.embedder import Embedder, plan_batches
from qzhou_eval.loading import load_model, load_tokenizer, resolve_checkpoint
from qzhou_eval.shard import parse_shard, shard_tasks, task_cost
from qzhou_eval.tasks import benchmark_tasks

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
    costs = {name: task_cost(name, s.dataset_path, None) for name, s in specs.items()}
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
    ):
        assert report[key] > 0, key
    assert 0 <= report["padding_fraction"] <= report["reference_padding_fraction"] < 1
    assert 0.99999 <= report["min_cosine_vs_reference"] <= 1.00001
