"""The command line: user errors give one `error:` line and exit 2; `embed` uses the evaluation path."""

import numpy as np
import pytest
from conftest import run_cli
from reference_impl import cosines, reference_embed

from qzhou_eval.cli import main


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["--model_name_or_path", "/no/such/model"], "model path does not exist"),
        (["--model_name_or_path", "{tmp}"], "no config.json"),
        (["--model_name_or_path", "{model}", "--tasks", "STSBenchmarkk"], "Did you mean: STSBenchmark"),
        (["--model_name_or_path", "{model}", "--tasks", "T2Retrieval"], "run_cmteb_all.py"),
        (["--model_name_or_path", "{model}", "--pooling_mode", "max"], "--pooling_mode"),
        (["--model_name_or_path", "{model}", "--normalize", "maybe"], "--normalize"),
        (["--model_name_or_path", "{model}", "--dtype", "int8"], "--dtype"),
        (["--model_name_or_path", "{model}", "--padding_side", "middle"], "--padding_side"),
        (["--model_name_or_path", "{model}", "--batch_size", "0"], "--batch_size"),
        (["--model_name_or_path", "{model}", "--max_length", "-3"], "--max_length"),
        (["--model_name_or_path", "{model}", "--data_dir", "/no/such/dir"], "--data_dir"),
        (["--model_name_or_path", "{model}", "--output_dir", "{file}"], "--output_dir"),
        (["--model_name_or_path", "{model}", "--output_dir", "{file}/sub"], "--output_dir is not a directory"),
        (["--model_name_or_path", "{model}", "--model_name", "noslash"], "organization/model_name"),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_2(argv, fragment, qzhou_dir, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    argv = [a.format(tmp=tmp_path, model=qzhou_dir, file=tmp_path / "a_file") for a in argv]
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv, benchmark="MTEB(eng, v2)"))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert last_line(err).startswith("error: ") and fragment in last_line(err)
    assert "Traceback" not in err


def test_weightless_model_directory_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    assert main(["--model_name_or_path", str(tmp_path)], benchmark="MTEB(cmn, v1)") == 2
    assert "no weight files" in capsys.readouterr().err


def test_script_reports_errors_without_traceback(tmp_path):
    out = run_cli("run_cmteb_all.py", "--model_name_or_path", str(tmp_path / "missing"))
    assert out.returncode == 2
    assert last_line(out.stderr) == f"error: model path does not exist: {tmp_path / 'missing'}"
    assert "Traceback" not in out.stderr


def test_remote_code_in_model_directory_never_runs_without_the_flag(stock_qwen2_dir, tmp_path, capsys):
    import json
    import shutil

    model = tmp_path / "remote"
    shutil.copytree(stock_qwen2_dir, model)
    marker = tmp_path / "marker"
    (model / "evil_modeling.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"], cfg["auto_map"] = ["EvilModel"], {"AutoModel": "evil_modeling.EvilModel"}
    (model / "config.json").write_text(json.dumps(cfg))
    assert main(["--model_name_or_path", str(model), "--tasks", "STS12"], benchmark="MTEB(eng, v2)") == 2
    assert "--trust_remote_code" in capsys.readouterr().err
    assert not marker.exists()


def test_qzhou_auto_map_module_is_never_imported(qzhou_dir, tmp_path):
    """The QZhou checkpoint's auto_map names modeling_qzhou.py; the native build must not run it."""
    import shutil

    model = tmp_path / "qz"
    shutil.copytree(qzhou_dir, model)
    marker = tmp_path / "marker"
    (model / "modeling_qzhou.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    texts = tmp_path / "in.txt"
    texts.write_text("hello\n")
    out = run_cli(
        "-m",
        "qzhou_eval",
        "embed",
        "--model_name_or_path",
        str(model),
        "--task",
        "STS12",
        "--prompt_type",
        "none",
        "--input",
        str(texts),
        "--output",
        str(tmp_path / "o.npy"),
        "--dtype",
        "float32",
    )
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


def test_embed_matches_independent_reference(qzhou_dir, tmp_path):
    texts = [
        "A girl is styling her hair.",
        "",
        "今天天气很好，我们去公园散步。" * 3,
        "How do I reset my password on Ubuntu?",
        "x",
        "The cat sat on the mat while the dog slept.",
    ]
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = run_cli(
        "-m",
        "qzhou_eval",
        "embed",
        "--model_name_or_path",
        str(qzhou_dir),
        "--task",
        "ArguAna",
        "--prompt_type",
        "query",
        "--input",
        str(src),
        "--output",
        str(tmp_path / "e.npy"),
        "--dtype",
        "float32",
        "--batch_size",
        "2",
        "--max_padding",
        "1",
        "--max_length",
        "20",
        "--device",
        "cpu",
    )
    assert out.returncode == 0, out.stderr
    emb = np.load(tmp_path / "e.npy")
    assert emb.dtype == np.float32 and emb.shape == (len(texts), 64)
    prefix = "Instruct: Given a claim, find documents that refute the claim\nQuery: "
    ref = reference_embed(qzhou_dir, texts, prefix, max_length=20, batch_size=2)
    assert cosines(emb, ref).min() >= 0.99999


def test_embed_rejects_missing_input_and_bad_prompt_type(qzhou_dir, tmp_path, capsys):
    base = ["embed", "--model_name_or_path", str(qzhou_dir), "--task", "STS12", "--output", str(tmp_path / "o.npy")]
    assert main([*base, "--prompt_type", "none", "--input", str(tmp_path / "none.txt")]) == 2
    assert last_line(capsys.readouterr().err) == f"error: input file not found: {tmp_path / 'none.txt'}"
    with pytest.raises(SystemExit) as exc:
        main([*base, "--prompt_type", "document", "--input", "x"])
    assert exc.value.code == 2 and last_line(capsys.readouterr().err).startswith("error: argument --prompt_type")


def test_embed_encodes_with_the_plan_a_run_would_use(qzhou_dir, tmp_path, capsys, monkeypatch):
    """`embed` takes its call from the task's plan: under --sort_by reference SciFact's passages get mteb's
    retrieval batch size (128), not --batch_size; an aggregate names the subtasks mteb really encodes."""
    from qzhou_eval.model.embedder import Embedder

    seen = []
    original = Embedder.encode

    def spy(self, texts, prefix="", **kwargs):
        seen.append((prefix, kwargs))
        return original(self, texts, prefix, **kwargs)

    monkeypatch.setattr(Embedder, "encode", spy)
    src = tmp_path / "texts.txt"
    src.write_text("a passage\nanother passage\n", encoding="utf-8")
    base = ["embed", "--model_name_or_path", str(qzhou_dir), "--input", str(src), "--output", str(tmp_path / "e.npy")]
    flags = ["--dtype", "float32", "--device", "cpu", "--batch_size", "2", "--sort_by", "reference"]
    assert main([*base, "--task", "SciFact", "--prompt_type", "passage", *flags]) == 0
    assert [(prefix, kw["batch_size"], kw["normalize"]) for prefix, kw in seen] == [("", 128, True)]
    assert main([*base, "--task", "CQADupstackRetrieval", "--prompt_type", "query", *flags]) == 2
    assert "CQADupstackAndroidRetrieval" in last_line(capsys.readouterr().err)
