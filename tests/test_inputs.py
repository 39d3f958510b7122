"""Every input is checked before any download, weight load or write: one `error:` line, exit 2, nothing written.

Also: weights that do not fit stop the run, a dataset script in --data_dir never runs, the preset's whole
recipe follows from `EvalConfig(preset=...)`, and any mteb task runs outside the two seed benchmarks.
"""

import json
import shutil

import fixture_data
import pytest
from safetensors.torch import load_file, save_file

from qzhou_eval.cli import main
from qzhou_eval.config import EvalConfig
from qzhou_eval.errors import UserError
from qzhou_eval.recipe.checkpoint import resolve_checkpoint
from qzhou_eval.recipe.resolve import prepare


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def broken_dir(qzhou_dir, tmp_path_factory):
    """The tiny QZhou checkpoint with every tensor of its second layer removed."""
    path = tmp_path_factory.mktemp("broken") / "qzhou-missing-layer"
    shutil.copytree(qzhou_dir, path)
    weights = path / "model.safetensors"
    tensors = {k: v for k, v in load_file(weights).items() if not k.startswith("layers.1.")}
    save_file(tensors, weights, metadata={"format": "pt"})
    return path


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--revision", "../../../x"], "--revision"),
        (["--model_name", "../../evil"], "--model_name"),
        (["--model_name", "org/.."], "--model_name"),
        (["--device", "cuda:7"], "not available"),
        (["--device", "gpu"], "unknown device"),
        (["--devices", "cpu,gpu"], "unknown device"),
        (["--truncate_dim", "100000"], "exceeds the model's 64 dimensions"),
        (["--reference", "no-such-reference"], "reference not found"),
        (["--tasks", ","], "names no task"),
        (["--tasks", "STSBenchmark", "--sort_by", "bogus"], "--sort_by"),
        (["--model_name_or_path", "{broken}"], "do not fit"),
    ],
)
def test_bad_input_stops_before_anything_is_written(extra, fragment, qzhou_dir, broken_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(qzhou_dir), "--output_dir", str(out), "--device", "cpu", "--tasks"]
    argv += ["STSBenchmark"]
    argv += [a.format(broken=broken_dir) for a in extra]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv, benchmark="MTEB(eng, v2)"))
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert last_line(err).startswith("error: ") and fragment in last_line(err), last_line(err)
    assert "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_missing_layer_names_the_missing_keys(broken_dir):
    from qzhou_eval.model.weights import load_model

    ckpt = resolve_checkpoint(str(broken_dir))
    with pytest.raises(UserError) as exc:
        load_model(ckpt, "float32", "sdpa", "cpu", False)
    assert "missing" in str(exc.value) and "layers.1." in str(exc.value)


def test_evalconfig_with_a_preset_alone_means_its_whole_recipe(stock_qwen2_dir):
    config = prepare(
        EvalConfig(str(stock_qwen2_dir), tasks=("STSBenchmark",), preset="qwen3-embedding", device="cpu"), quiet=True
    ).config
    assert config.resolved and config.preset == "qwen3-embedding" and config.preset_reason == "--preset"
    assert (config.pooling_mode, config.attention, config.padding_side) == ("last_token", "causal", "left")
    assert config.max_length == 512  # the preset's 8192, capped at the tiny model's 512 positions
    assert config.attn_implementation == "sdpa"  # flash-attention-2 cannot run on this CPU
    assert config.normalize is True


def test_a_flag_beats_the_preset_and_the_detected_preset_fills_the_rest(qzhou_dir):
    config = prepare(EvalConfig(str(qzhou_dir), tasks=("STSBenchmark",), pooling_mode="last_token"), quiet=True).config
    assert config.preset == "qzhou" and "QZhouModel" in config.preset_reason
    assert config.pooling_mode == "last_token"  # the flag
    assert (config.dtype, config.max_length, config.empty_text) == ("bfloat16", 512, "Null")  # the preset's


def test_local_revision_changes_when_the_tokenizer_changes(qzhou_dir, tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(qzhou_dir, copy)
    before = resolve_checkpoint(str(copy)).revision
    cfg = json.loads((copy / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 77
    (copy / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert resolve_checkpoint(str(copy)).revision != before


def test_dataset_script_in_data_dir_never_runs(qzhou_dir, tmp_path, capsys):
    data = tmp_path / "hub"
    fixture_data.multilingual_slow(data, "mteb/mtop_domain")
    marker = tmp_path / "script_ran"
    (data / "mteb" / "mtop_domain" / "mtop_domain.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    out = tmp_path / "out"
    code = main(
        [
            "--model_name_or_path", str(qzhou_dir), "--tasks", "MTOPDomainClassification", "--data_dir", str(data),
            "--output_dir", str(out), "--device", "cpu", "--dtype", "float32",
        ],
        benchmark="MTEB(eng, v2)",
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and not marker.exists()
    assert "loading script (mtop_domain.py)" in err and "never run" in err
    manifest = json.loads(next(out.rglob("qzhou_eval_manifest.json")).read_text())
    assert manifest["tasks"]["MTOPDomainClassification"]["status"] == "failed"


def test_local_data_is_loaded_without_remote_code(tmp_path):
    import mteb

    from qzhou_eval.evaluate.data import use_local_data

    fixture_data.multilingual_slow(tmp_path, "mteb/mtop_domain")
    task = mteb.get_task("MTOPDomainClassification")
    assert task.metadata.dataset.get("trust_remote_code") is True  # what mteb asks for on the hub
    use_local_data(task, tmp_path)
    assert task.metadata.dataset["trust_remote_code"] is False
    assert mteb.get_task("MTOPDomainClassification").metadata.dataset["trust_remote_code"] is True  # not shared


@pytest.fixture(scope="module")
def scifact_run(qzhou_dir, tmp_path_factory):
    """A retrieval task of neither seed benchmark, run on its own splits through `python -m qzhou_eval run`."""
    data = tmp_path_factory.mktemp("hub")
    fixture_data.beir_retrieval(data, "mteb/scifact")
    out = tmp_path_factory.mktemp("out")
    argv = ["run", "--model_name_or_path", str(qzhou_dir), "--tasks", "SciFact", "--data_dir", str(data)]
    argv += ["--output_dir", str(out), "--device", "cpu", "--dtype", "float32"]
    code = main(argv)
    return code, data, out, argv


def test_any_mteb_task_runs_without_a_benchmark(scifact_run):
    code, _, out, _ = scifact_run
    assert code == 0
    result = json.loads(next(out.rglob("SciFact.json")).read_text())
    cell = result["scores"]["test"][0]
    assert cell["hf_subset"] == "default" and 0 < cell["main_score"] <= 1
    assert cell["main_score"] == pytest.approx(cell["ndcg_at_10"])
    manifest = json.loads(next(out.rglob("qzhou_eval_manifest.json")).read_text())
    entry = manifest["tasks"]["SciFact"]
    assert entry["status"] == "done" and entry["settings"]["data_sha256"] != "hub"
    assert manifest["benchmark"] is None


def test_edited_local_data_is_a_settings_change(scifact_run, capsys):
    _, data, out, argv = scifact_run
    assert main([*argv, "--dry_run"]) == 0  # unchanged: nothing to run
    assert capsys.readouterr().out.strip() == ""
    queries = data / "mteb" / "scifact" / "queries.jsonl"
    original = queries.read_text()
    try:
        queries.write_text(original.replace("q0", "q0x", 1))
        assert main([*argv, "--dry_run"]) == 2
        assert "data_sha256" in last_line(capsys.readouterr().err)
    finally:
        queries.write_text(original)


def test_result_file_the_manifest_does_not_vouch_for_is_redone_not_refused(scifact_run, capsys):
    _, _, out, argv = scifact_run
    path = next(out.rglob("SciFact.json"))
    original = path.read_text()
    try:
        path.write_text(original.replace('"evaluation_time"', '"evaluation_time_edited"'))  # as if left by a kill
        assert main([*argv, "--dry_run"]) == 0
        captured = capsys.readouterr()
        assert captured.out.split() == ["SciFact"]
        assert "not the file the manifest records" in captured.err
    finally:
        path.write_text(original)


def test_benchmark_task_outside_its_benchmark_says_how_to_run_it(qzhou_dir, capsys):
    assert main(["--model_name_or_path", str(qzhou_dir), "--tasks", "SciFact"], benchmark="MTEB(eng, v2)") == 2
    assert "python -m qzhou_eval run --tasks SciFact" in last_line(capsys.readouterr().err)


def test_any_benchmark_name_is_accepted_and_bad_ones_get_close_matches(qzhou_dir, tmp_path, capsys):
    argv = ["run", "--model_name_or_path", str(qzhou_dir), "--output_dir", str(tmp_path), "--device", "cpu"]
    assert main([*argv, "--benchmark", "MTEB(Code, v1)", "--dry_run"]) == 0
    assert len(capsys.readouterr().out.split()) == 12
    assert main([*argv, "--benchmark", "MTEB(Code, v2)", "--dry_run"]) == 2
    assert "Did you mean: MTEB(Code, v1)" in last_line(capsys.readouterr().err)


def test_every_flag_of_every_command_has_help():
    import argparse

    from qzhou_eval.cli import build_parser

    parsers = [build_parser("MTEB(eng, v2)"), build_parser("MTEB(cmn, v1)")]
    top = build_parser()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    silent = [
        (p.prog, a.option_strings)
        for p in parsers
        for a in p._actions
        if a.option_strings and "-h" not in a.option_strings and not (a.help or "").strip()
    ]
    assert len(parsers) >= 6 and not silent, silent


def test_hub_model_weights_are_fetched_only_after_every_check_and_never_for_a_dry_run(qzhou_dir, tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO
    from hub_stub import HubStub

    stub = HubStub()
    stub.add("models", "tiny-org/tiny-qzhou", "0123456789abcdef0123456789abcdef01234567", qzhou_dir)
    url = stub.start()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")

    def run(*extra: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "run_mteb_all_v2.py", "--model_name_or_path", "tiny-org/tiny-qzhou"]
        argv += ["--output_dir", str(tmp_path / "out"), "--device", "cpu", *extra]
        return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    try:
        bad = run("--tasks", "STS12x")
        assert bad.returncode == 2 and not stub.requests  # a bad task name asks nothing of the hub
        dry = run("--tasks", "STS12", "--dry_run")
        assert dry.returncode == 0 and dry.stdout.split() == ["STS12"], dry.stderr
        fetched = [path for _, path, _ in stub.requests if "/resolve/" in path]
        assert any(p.endswith("config.json") for p in fetched)
        assert not [p for p in fetched if p.endswith(".safetensors")], fetched  # configs and tokenizer only
        assert not (tmp_path / "out").exists()
    finally:
        stub.stop()


def test_local_revision_changes_when_a_middle_tensor_changes_but_not_the_file_size(qzhou_dir, tmp_path):
    import torch

    copy = tmp_path / "m"
    shutil.copytree(qzhou_dir, copy)
    weights = copy / "model.safetensors"
    tensors = load_file(weights)
    # 2 MiB on either side: the changed tensor lies beyond the first and the last MiB of the file
    pad = torch.zeros(1 << 20, dtype=torch.bfloat16)
    tensors.update({"aaa_pad": pad, "zzz_pad": pad.clone()})
    save_file(tensors, weights, metadata={"format": "pt"})
    before = resolve_checkpoint(str(copy)).revision
    tensors["layers.0.mlp.up_proj.weight"] = tensors["layers.0.mlp.up_proj.weight"] / 2
    size = weights.stat().st_size
    save_file(tensors, weights, metadata={"format": "pt"})
    assert weights.stat().st_size == size
    assert resolve_checkpoint(str(copy)).revision != before


def test_a_revision_label_never_hides_a_changed_checkpoint(qzhou_dir, tmp_path):
    from qzhou_eval.recipe.resolve import prepare

    copy = tmp_path / "m"
    shutil.copytree(qzhou_dir, copy)
    before = resolve_checkpoint(str(copy), revision="v1")
    tensors = load_file(copy / "model.safetensors")
    tensors["norm.weight"] = tensors["norm.weight"] * 2
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    after = resolve_checkpoint(str(copy), revision="v1")
    assert before.revision == after.revision == "v1" and before.content != after.content
    config = EvalConfig(str(copy), tasks=("STS12",), device="cpu", revision="v1")
    assert prepare(config, quiet=True).settings()["content"] == after.content != before.content
