"""One plan per task: what the model saw is what the manifest, the resume fingerprint and the cache key record.

A spy on `Embedder.encode` records the prefix and batch size of every call the model really got; the manifest's
entry for the task must hold the same. The fingerprint and the cache key are derived from the plan: every
setting the plan holds changes them (a field dropped from either fails here), and the order of `--tasks` never
changes a batch size.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import fixture_data as fd
import pytest

from qzhou_eval import provenance
from qzhou_eval.config import EvalConfig
from qzhou_eval.errors import UserError
from qzhou_eval.evaluate import plan as plan_module
from qzhou_eval.evaluate.plan import build_plan
from qzhou_eval.evaluate.runner import run
from qzhou_eval.model.embedder import Embedder
from qzhou_eval.recipe.benchmarks import select_specs
from qzhou_eval.recipe.resolve import RECIPE_FIELDS, prepare
from qzhou_eval.store.cache import settings_key
from qzhou_eval.store.manifest import MANIFEST_NAME

HUBS = {"STS12": "mteb/sts12-sts", "SciFact": "mteb/scifact"}
# the only recipe fields a cache key may leave out: they change the model input string, which is hashed per text
MODEL_INPUT_FIELDS = {"preset", "use_instruction", "instruction", "empty_text", "text_suffix", "strip_documents"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    fd.sts(root, HUBS["STS12"], n=12)
    fd.beir_retrieval(root, HUBS["SciFact"])
    return root


@pytest.fixture
def spy(monkeypatch):
    """Every call the embedder got: (where, prefix, batch size, normalisation)."""
    calls = []
    real = Embedder.encode

    def encode(self, texts, prefix="", **kwargs):
        calls.append((kwargs["where"], prefix, kwargs["batch_size"], kwargs["normalize"]))
        return real(self, texts, prefix, **kwargs)

    monkeypatch.setattr(Embedder, "encode", encode)
    return calls


def config_for(model, data, out, **kw):
    base = {"tasks": ("SciFact", "STS12"), "data_dir": str(data), "output_dir": str(out), "dtype": "float32"}
    return EvalConfig(str(model), device="cpu", **{**base, **kw})


def manifest_of(report):
    return json.loads((report.folder / MANIFEST_NAME).read_text())


@pytest.mark.parametrize(
    "sort_by, expected", [("tokens", {"SciFact": 3, "STS12": 3}), ("reference", {"SciFact": 128, "STS12": 32})]
)
def test_the_batch_size_and_prefixes_the_model_saw_equal_the_manifests(
    qzhou_dir, data, tmp_path, spy, sort_by, expected
):
    report = run(config_for(qzhou_dir, data, tmp_path, sort_by=sort_by, batch_size=3, cache="off"))
    assert report.failed == {}
    tasks = manifest_of(report)["tasks"]
    seen = {}
    for where, prefix, batch_size, normalize in spy:
        task, kind = where.split(" (")[0], where.split("(")[1].split()[0]
        entry = tasks[task]
        assert batch_size == entry["plan"]["batch_size"] == entry["settings"]["batch_size"], where
        assert normalize is entry["plan"]["normalize"] is entry["settings"]["normalize_task"] is True, where
        assert prefix == entry["prefixes"][task][kind], where
        seen.setdefault(task, set()).add(kind)
        assert entry["fingerprint"] == provenance.fingerprint(entry["settings"])
    assert seen == {"SciFact": {"query", "passage"}, "STS12": {"none"}}
    assert {t: tasks[t]["plan"]["batch_size"] for t in expected} == expected
    assert all(tasks[t]["plan"]["batch_size_reason"] for t in expected)


def test_reference_batch_sizes_do_not_depend_on_the_order_of_tasks(qzhou_dir, data, tmp_path):
    def sizes(tasks, benchmark=None):
        config = config_for(qzhou_dir, data, tmp_path, tasks=tasks, benchmark=benchmark, sort_by="reference")
        recipe = prepare(config, quiet=True)
        return {s.name: build_plan(recipe, s, str(data)).batch_size for s in select_specs(benchmark, tasks)}

    assert sizes(("STS12", "SciFact")) == sizes(("SciFact", "STS12")) == {"STS12": 32, "SciFact": 128}
    # within a benchmark: its own order in one process (ArguAna, a retrieval task, comes first: 128 for all)
    in_benchmark = sizes(("STS12", "SCIDOCS"), "MTEB(eng, v2)")
    assert in_benchmark == sizes(("SCIDOCS", "STS12"), "MTEB(eng, v2)") == {"STS12": 128, "SCIDOCS": 128}


@pytest.fixture(scope="module")
def base_plan(qzhou_dir, data, tmp_path_factory):
    config = config_for(qzhou_dir, data, tmp_path_factory.mktemp("out"), tasks=("SciFact",))
    recipe = prepare(config, quiet=True)
    return build_plan(recipe, select_specs(None, ("SciFact",))[0], str(data))


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 + 0.125
    return f"{value}-other"


def test_every_recipe_field_is_in_the_fingerprint_and_every_vector_shaping_one_in_the_cache_key(base_plan):
    assert set(RECIPE_FIELDS) <= set(base_plan.recipe)
    fingerprint, key = base_plan.fingerprint(), settings_key(base_plan.cache_settings())
    for field in base_plan.recipe:
        other = replace(base_plan, recipe={**base_plan.recipe, field: changed(base_plan.recipe[field])})
        assert other.fingerprint() != fingerprint, field
        if field in MODEL_INPUT_FIELDS:
            assert settings_key(other.cache_settings()) == key, field
        else:
            assert settings_key(other.cache_settings()) != key, field


@pytest.mark.parametrize(
    "change, in_cache_key",
    [
        ({"batch_size": 7}, True),
        ({"devices": ("cpu", "cpu")}, True),  # the device count sets the reference chunking
        ({"devices": ("cuda:0",)}, True),
        ({"code": "0.2.0+000000000000"}, False),  # a change in evaluate code redoes results, not vectors
        ({"data_sha256": "0123456789abcdef"}, False),
        ({"data_source": "/elsewhere"}, False),
        ({"prefixes": {"SciFact": {"query": "Q: ", "passage": "", "none": ""}}}, False),
    ],
)
def test_each_effective_setting_changes_the_fingerprint(base_plan, change, in_cache_key):
    other = replace(base_plan, **change)
    assert other.fingerprint() != base_plan.fingerprint()
    assert (settings_key(other.cache_settings()) != settings_key(base_plan.cache_settings())) is in_cache_key


def test_the_vectors_code_is_in_the_cache_key_and_inside_the_scores_code(base_plan):
    other = replace(base_plan, embedding_code="0.2.0+000000000000")
    assert settings_key(other.cache_settings()) != settings_key(base_plan.cache_settings())
    # the result fingerprint holds the score's code identity, which hashes every file the vectors' identity does
    assert set(provenance.code_files("embedding")) < set(provenance.code_files("score"))
    assert base_plan.settings()["code"] == provenance.code_identity("score")


def test_code_identity_follows_the_files_that_shape_vectors_and_scores(tmp_path, monkeypatch):
    copy = tmp_path / "qzhou_eval"
    shutil.copytree(provenance.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))

    def identities():
        provenance.code_identity.cache_clear()
        provenance.code_files.cache_clear()
        return provenance.code_identity("embedding"), provenance.code_identity("score")

    monkeypatch.setattr(provenance, "PACKAGE", copy)
    try:
        before = identities()
        (copy / "report" / "summary.py").write_text("# a report change shapes no vector and no score\n")
        assert identities() == before
        (copy / "evaluate" / "adapter.py").write_text("# changed\n")
        after_adapter = identities()
        assert after_adapter[0] == before[0] and after_adapter[1] != before[1]
        (copy / "model" / "pooling.py").write_text("# changed\n")
        after_pooling = identities()
        assert after_pooling[0] != before[0] and after_pooling[1] != after_adapter[1]
        assert all(i.startswith(provenance.__version__ + "+") for i in after_pooling)
    finally:
        monkeypatch.undo()
        identities()


def test_an_upgrade_that_changes_the_code_redoes_results_unless_allow_code_change(
    qzhou_dir, data, tmp_path, monkeypatch
):
    config = config_for(qzhou_dir, data, tmp_path, tasks=("STS12",), cache="keep", cache_dir=str(tmp_path / "c"))
    first = run(config)
    assert first.done and not first.failed
    real = plan_module.code_identity
    monkeypatch.setattr(plan_module, "code_identity", lambda kind: real(kind) + "-upgraded")
    with pytest.raises(UserError, match=r"code.*--allow_code_change"):
        run(config)
    kept = run(replace(config, allow_code_change=True))
    assert kept.skipped == ["STS12"] and not kept.done
    accepted = manifest_of(kept)["tasks"]["STS12"]["accepted_code_change"]
    assert accepted["to"] == real("score") + "-upgraded" and accepted["from"] == real("score")
    # redone with the old vectors: --allow_code_change reads the cache key that differs in the code alone
    reused = run(replace(config, output_dir=str(tmp_path / "again"), allow_code_change=True))
    assert reused.done["STS12"] == first.done["STS12"]
    stats = manifest_of(reused)["tasks"]["STS12"]["inputs"]
    assert stats["texts_from_cache"] == stats["texts"] > 0
    # without it, vectors made by other code are never served
    fresh = run(replace(config, output_dir=str(tmp_path / "fresh")))
    assert manifest_of(fresh)["tasks"]["STS12"]["inputs"]["texts_from_cache"] == 0
    assert fresh.done["STS12"] == first.done["STS12"]  # the same code really ran: the same score


def test_cached_vectors_under_sort_by_reference_are_served_whole_and_give_the_same_score(qzhou_dir, data, tmp_path):
    config = config_for(
        qzhou_dir, data, tmp_path, tasks=("STS12",), sort_by="reference", cache="keep", cache_dir=str(tmp_path / "c")
    )
    first = run(config)
    second = run(replace(config, output_dir=str(tmp_path / "again")))
    inputs = manifest_of(second)["tasks"]["STS12"]["inputs"]
    assert inputs["texts_from_cache"] == inputs["texts"] > 0 and inputs["texts_encoded"] == 0
    assert second.done["STS12"] == first.done["STS12"]
    other = run(replace(config, output_dir=str(tmp_path / "b8"), batch_size=8, sort_by="tokens"))
    assert manifest_of(other)["tasks"]["STS12"]["inputs"]["texts_from_cache"] == 0  # another key
