"""The sentence-transformers preset embeds through the model's own modules and equals `SentenceTransformer.encode`.

Tiny models are built here with sentence_transformers itself (a 2-layer BERT or Qwen2 wrapped in its modules)
and saved with `SentenceTransformer.save`; `embed` (the CLI, in this process) must give what `encode` gives:
cosine >= 0.99999 per text and the same dimension.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fixture_models
import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer, models

from qzhou_eval.cli import main

TEXTS = [
    "A girl is styling her hair.",
    "  The cat sat on the mat while the dog slept.  ",
    "x",
    "How do I reset my password on Ubuntu? " * 12,  # longer than max_seq_length 48: truncated
    "Stocks FELL sharply after the announcement.",
    "",  # sentence-transformers passes empty texts through (no "Null")
    "   ",  # and strips this one to empty
]
MAX_SEQ = 48


def save_st(path: Path, base: Path, *extra: torch.nn.Module, pooling: str = "cls", **kwargs) -> Path:
    """base model + Pooling + `extra` modules, saved as sentence-transformers saves a model."""
    transformer = models.Transformer(str(base), max_seq_length=MAX_SEQ, do_lower_case=kwargs.pop("lower", False))
    dim = transformer.get_word_embedding_dimension()
    pool = models.Pooling(dim, pooling_mode=pooling, include_prompt=kwargs.pop("include_prompt", True))
    model = SentenceTransformer(modules=[transformer, pool, *extra], device="cpu", **kwargs)
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return fixture_models.build_bert(tmp_path_factory.mktemp("ckpt") / "bert")


@pytest.fixture(scope="module")
def cls_dense_dir(bert_dir, tmp_path_factory) -> Path:
    """CLS pooling, then Dense(32 -> 96, tanh), then Normalize: LaBSE's shape."""
    torch.manual_seed(3)
    dense = models.Dense(32, 96, activation_function=torch.nn.Tanh())
    return save_st(tmp_path_factory.mktemp("st") / "cls-dense", bert_dir, dense, models.Normalize())


@pytest.fixture(scope="module")
def no_prompt_dir(bert_dir, tmp_path_factory) -> Path:
    """Mean pooling that leaves the prompt tokens out (INSTRUCTOR style), prompts in its config."""
    prompts = {"query": "query: the cat ", "document": "passage: "}
    return save_st(
        tmp_path_factory.mktemp("st") / "no-prompt",
        bert_dir,
        models.Normalize(),
        pooling="mean",
        include_prompt=False,
        prompts=prompts,
    )


@pytest.fixture(scope="module")
def lower_dir(bert_dir, tmp_path_factory) -> Path:
    """A cased tokenizer (upper-case words are unknown to it) under do_lower_case, and a LayerNorm module."""
    from transformers import BertTokenizerFast

    base = tmp_path_factory.mktemp("ckpt") / "bert-cased"
    shutil.copytree(bert_dir, base)
    BertTokenizerFast(vocab_file=str(base / "vocab.txt"), do_lower_case=False).save_pretrained(base)
    torch.manual_seed(4)
    norm = models.LayerNorm(32)
    torch.nn.init.normal_(norm.norm.weight)
    return save_st(tmp_path_factory.mktemp("st") / "lower", base, norm, pooling="mean", lower=True)


def st_encode(path: Path, texts: list[str], prompt_name: str | None = None) -> np.ndarray:
    return SentenceTransformer(str(path), device="cpu").encode(texts, prompt_name=prompt_name, batch_size=3)


@pytest.fixture
def embed(capsys, tmp_path):
    """`python -m qzhou_eval embed --preset sentence-transformers ...` in this process; returns the array."""

    def call(model: Path, texts: list[str], prompt_type: str = "none", *flags: str) -> np.ndarray:
        src, out = tmp_path / "in.txt", tmp_path / "out.npy"
        src.write_text("\n".join(texts) + "\n", encoding="utf-8")
        argv = ["embed", "--model_name_or_path", str(model), "--preset", "sentence-transformers"]
        argv += ["--task", "STSBenchmark", "--prompt_type", prompt_type, "--input", str(src), "--output", str(out)]
        argv += ["--dtype", "float32", "--device", "cpu", "--batch_size", "2", "--max_padding", "1", *flags]
        code = main(argv)
        assert code == 0, capsys.readouterr().err
        return np.load(out)

    return call


def assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999, cos
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1), rtol=1e-4)


def test_cls_dense_model_equals_encode_with_the_dense_dimension(cls_dense_dir, embed):
    ours = embed(cls_dense_dir, TEXTS)
    assert ours.shape == (len(TEXTS), 96)
    assert_same(ours, st_encode(cls_dense_dir, TEXTS))


def test_truncate_dim_cuts_after_the_modules_as_encode_does(cls_dense_dir, embed):
    ours = embed(cls_dense_dir, TEXTS, "none", "--truncate_dim", "16")
    ref = SentenceTransformer(str(cls_dense_dir), device="cpu", truncate_dim=16).encode(TEXTS)
    assert_same(ours, ref)
    assert np.linalg.norm(ours, axis=1).max() < 0.99  # cut after Normalize, not normalised again


def test_a_flag_the_modules_would_override_is_refused(cls_dense_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("hello\n")
    argv = ["embed", "--model_name_or_path", str(cls_dense_dir), "--preset", "sentence-transformers", "--task"]
    argv += ["STSBenchmark", "--prompt_type", "none", "--input", str(tmp_path / "in.txt")]
    argv += ["--output", str(tmp_path / "o.npy"), "--device", "cpu", "--pooling_mode", "mean"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "--pooling_mode 'mean'" in err and "'cls'" in err


def test_include_prompt_false_pools_without_the_prompt_tokens_as_encode_does(no_prompt_dir, embed):
    ours = embed(no_prompt_dir, TEXTS, "query")
    ref = st_encode(no_prompt_dir, TEXTS, "query")
    assert_same(ours, ref)
    # the prompt changes the embedding (it is attended to), yet its tokens are not pooled
    with_prompt_pooled = SentenceTransformer(str(no_prompt_dir), device="cpu")
    with_prompt_pooled.set_pooling_include_prompt(True)
    pooled = with_prompt_pooled.encode(TEXTS, prompt_name="query")
    assert ((ours * pooled).sum(1) < 0.9999).all()


def test_two_worker_processes_give_the_prompt_length_to_every_batch(no_prompt_dir, embed):
    ours = embed(no_prompt_dir, TEXTS, "query", "--devices", "cpu,cpu")
    assert_same(ours, st_encode(no_prompt_dir, TEXTS, "query"))


def test_lower_casing_and_layer_norm_follow_the_transformer_module(lower_dir, embed):
    ours = embed(lower_dir, TEXTS)
    assert_same(ours, st_encode(lower_dir, TEXTS))


def test_bpe_model_strips_texts_and_pools_the_last_token_as_encode_does(stock_qwen2_dir, tmp_path, embed):
    model = save_st(tmp_path / "qwen2-st", stock_qwen2_dir, models.Normalize(), pooling="lasttoken")
    texts = [" A girl is styling her hair. ", "Null", "\tthe quick brown fox\n".strip("\n"), "今天天气很好"]
    assert_same(embed(model, texts), st_encode(model, texts))


def test_minilm_equals_encode(minilm_dir, embed):
    texts = TEXTS + ["A man is playing a flute.", "今天天气很好"]
    assert_same(embed(minilm_dir, texts), st_encode(minilm_dir, texts))


def copy_with_modules(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    entries = json.loads((dst / "modules.json").read_text())
    edit(entries)
    (dst / "modules.json").write_text(json.dumps(entries))
    return dst


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda e: e[1].update(type="custom_code.MyPooling"), "custom_code.MyPooling"),
        (lambda e: e[1].update(type="sentence_transformers.models.Asym"), "sentence_transformers.models.Asym"),
        (lambda e: e[1].update(path="../elsewhere"), "../elsewhere"),
        (lambda e: e[1].update(path="/etc"), "/etc"),
    ],
    ids=["custom-class", "unsupported-st-class", "dotdot-path", "absolute-path"],
)
def test_unrunnable_modules_json_is_an_error_naming_it(cls_dense_dir, tmp_path, capsys, edit, named):
    model = copy_with_modules(cls_dense_dir, tmp_path / "bad", edit)
    (tmp_path / "in.txt").write_text("hello\n")
    argv = ["embed", "--model_name_or_path", str(model), "--preset", "sentence-transformers", "--task"]
    argv += ["STSBenchmark", "--prompt_type", "none", "--input", str(tmp_path / "in.txt")]
    argv += ["--output", str(tmp_path / "o.npy")]
    assert main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and named in err
    assert not (tmp_path / "o.npy").exists()


def test_dense_activation_outside_torch_is_refused(cls_dense_dir, tmp_path, capsys):
    model = tmp_path / "bad-activation"
    shutil.copytree(cls_dense_dir, model)
    cfg = json.loads((model / "2_Dense" / "config.json").read_text())
    cfg["activation_function"] = "os.getcwd"
    (model / "2_Dense" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "in.txt").write_text("hello\n")
    argv = ["embed", "--model_name_or_path", str(model), "--preset", "sentence-transformers", "--task"]
    argv += ["STSBenchmark", "--prompt_type", "none", "--input", str(tmp_path / "in.txt")]
    argv += ["--output", str(tmp_path / "o.npy")]
    assert main([*argv, "--device", "cpu"]) == 2
    assert "os.getcwd" in capsys.readouterr().err.strip().splitlines()[-1]


def test_transformer_weights_missing_a_layer_are_an_error(cls_dense_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    model = tmp_path / "missing-layer"
    shutil.copytree(cls_dense_dir, model)
    weights = load_file(model / "model.safetensors")
    kept = {k: v for k, v in weights.items() if ".layer.1." not in k}
    assert len(kept) < len(weights)
    save_file(kept, model / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "in.txt").write_text("hello\n")
    argv = ["embed", "--model_name_or_path", str(model), "--preset", "sentence-transformers", "--task"]
    argv += ["STSBenchmark", "--prompt_type", "none", "--input", str(tmp_path / "in.txt")]
    argv += ["--output", str(tmp_path / "o.npy"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and "layer.1." in err and "missing" in err
    assert not (tmp_path / "o.npy").exists()


def test_dense_head_missing_a_tensor_is_an_error(cls_dense_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    model = tmp_path / "dense-without-bias"
    shutil.copytree(cls_dense_dir, model)
    dense = next(p for p in model.iterdir() if p.is_dir() and p.name.endswith("Dense"))
    weights = next(dense.glob("model.safetensors"))
    tensors = load_file(weights)
    assert "linear.bias" in tensors
    save_file({k: v for k, v in tensors.items() if k != "linear.bias"}, weights, metadata={"format": "pt"})
    (tmp_path / "in.txt").write_text("hello\n")
    argv = ["embed", "--model_name_or_path", str(model), "--preset", "sentence-transformers", "--task"]
    argv += ["STSBenchmark", "--prompt_type", "none", "--input", str(tmp_path / "in.txt")]
    argv += ["--output", str(tmp_path / "o.npy"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "Dense" in last and "linear.bias" in last
    assert not (tmp_path / "o.npy").exists()


def test_config_prompts_are_picked_in_mtebs_order(bert_dir, tmp_path, capsys):
    """mteb 1.38.30 Wrapper.get_prompt_name: task-side, task, type-side, type, side; "document" for passages last."""
    prompts = {
        "SciFact-query": "sf-q: ",
        "Retrieval-query": "ret-q: ",
        "Retrieval": "ret: ",
        "STS": "sts: ",
        "STS22": "sts22: ",
        "query": "q: ",
        "document": "d: ",
    }
    model = save_st(tmp_path / "prompted", bert_dir, models.Normalize(), pooling="mean", prompts=prompts)
    argv = ["prompts", "--model_name_or_path", str(model), "--preset", "sentence-transformers", "--format", "json"]
    assert main([*argv, "--tasks", "SciFact", "NFCorpus", "STSBenchmark", "STS22", "Banking77Classification"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["SciFact"]["query"] == "sf-q: " and got["SciFact"]["passage"] == "ret: "
    assert got["NFCorpus"]["query"] == "ret-q: " and got["NFCorpus"]["passage"] == "ret: "
    assert got["STSBenchmark"]["none"] == "sts: " and got["STS22"]["none"] == "sts22: "
    assert got["Banking77Classification"]["none"] == ""  # no prompt type: only task and task type are looked up
    assert got["Banking77Classification"]["passage"] == "d: "
    # mteb's own function on the prompts it accepts (it would drop a dict holding "document")
    from mteb.encoder_interface import PromptType
    from mteb.models.wrapper import Wrapper

    accepted = {k: v for k, v in prompts.items() if k != "document"}
    Wrapper.validate_task_to_prompt_name(accepted)
    model2 = save_st(tmp_path / "prompted2", bert_dir, models.Normalize(), pooling="mean", prompts=accepted)
    tasks = ["SciFact", "NFCorpus", "STSBenchmark", "STS22", "Banking77Classification", "SprintDuplicateQuestions"]
    assert main(["prompts", "--model_name_or_path", str(model2), "--format", "json", "--tasks", *tasks]) == 0
    got = json.loads(capsys.readouterr().out)
    for task in tasks:
        for kind, prompt_type in (("query", PromptType.query), ("passage", PromptType.passage), ("none", None)):
            name = Wrapper.get_prompt_name(accepted, task, prompt_type)
            assert got[task][kind] == (accepted[name] if name else ""), (task, kind)
