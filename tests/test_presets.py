"""Presets: each family's recipe equals a hand-written implementation; detection; overrides."""

import json
import shutil

import fixture_models
import numpy as np
import pytest
import torch
from reference_impl import cosines

from qzhou_eval.cli import main
from qzhou_eval.recipe.checkpoint import locate
from qzhou_eval.recipe.instructions import make_rule, mteb_instruction
from qzhou_eval.recipe.presets import all_presets, detect, get_preset

QUERIES = ["How do I reset my password on Ubuntu?", "", "今天天气很好", "the cat sat on the mat " * 5]
DOCS = ["A girl is styling her hair.", "Stocks fell sharply after the announcement.", "x"]


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    return fixture_models.build_qwen3(tmp_path_factory.mktemp("ckpt") / "Qwen3-Embedding-tiny")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return fixture_models.build_bert(tmp_path_factory.mktemp("ckpt") / "bge-small-en-v1.5-tiny")


@pytest.fixture
def embed_cli(capsys):
    """`python -m qzhou_eval embed ...` in this process (the CLI's own main), returning (embeddings, stderr)."""

    def call(model, task, prompt_type, texts, tmp_path, *flags):
        src = tmp_path / f"{prompt_type}.txt"
        src.write_text("\n".join(texts) + "\n", encoding="utf-8")
        out = tmp_path / f"{prompt_type}.npy"
        capsys.readouterr()
        code = main(
            [
                "embed",
                "--model_name_or_path",
                str(model),
                "--task",
                task,
                "--prompt_type",
                prompt_type,
                "--input",
                str(src),
                "--output",
                str(out),
                "--dtype",
                "float32",
                "--batch_size",
                "2",
                "--max_padding",
                "1",  # fixed batches of 2: texts of other lengths share a batch, so padding really happens
                *flags,
            ]
        )
        err = capsys.readouterr().err
        assert code == 0, err
        return np.load(out), err

    return call


def hand_qwen3(path, texts):
    """Qwen3-Embedding model card recipe: causal model, left padding, the tokenizer appends
    <|endoftext|>, the last position's state, L2-normalised; empty texts pass through (no "Null")."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), padding_side="left")
    model = AutoModel.from_pretrained(str(path), torch_dtype=torch.float32, attn_implementation="eager").eval()
    enc = tok(texts, padding=True, truncation=True, max_length=8192, return_tensors="pt")
    assert (enc["input_ids"][:, -1] == tok.eos_token_id).all()
    with torch.no_grad():
        h = model(**enc).last_hidden_state[:, -1]
    return torch.nn.functional.normalize(h, dim=-1).numpy()


def test_qwen3_preset_matches_the_model_card_recipe(qwen3_dir, tmp_path, embed_cli):
    instruction = "Given a web search query, retrieve relevant passages"
    q, err = embed_cli(
        qwen3_dir, "SCIDOCS", "query", QUERIES, tmp_path, "--preset", "qwen3-embedding", "--instruction", instruction
    )
    assert "preset: qwen3-embedding (--preset" in err
    d, _ = embed_cli(
        qwen3_dir, "SCIDOCS", "passage", DOCS, tmp_path, "--preset", "qwen3-embedding", "--instruction", instruction
    )
    expected_q = hand_qwen3(qwen3_dir, [f"Instruct: {instruction}\nQuery:{t}" for t in QUERIES])
    assert cosines(q, expected_q).min() >= 0.99999
    assert cosines(d, hand_qwen3(qwen3_dir, DOCS)).min() >= 0.99999


def test_qwen3_preset_instructs_unprompted_texts_from_their_rules_and_keeps_empty_texts(qwen3_dir, tmp_path, embed_cli):
    """STS texts (mteb passes no prompt type) get their fixed STS instruction; "" stays "" (no "Null")."""
    texts = ["A man is playing a guitar.", "", "今天天气很好"]
    s, err = embed_cli(qwen3_dir, "STS12", "none", texts, tmp_path, "--preset", "qwen3-embedding")
    assert "prefix 'Instruct: Retrieve semantically similar text\\nQuery:'" in err
    expected = hand_qwen3(qwen3_dir, [f"Instruct: Retrieve semantically similar text\nQuery:{t}" for t in texts])
    assert cosines(s, expected).min() >= 0.99999


def test_bge_en_preset_cls_pooling_and_the_query_instruction_on_every_query_text(bert_dir, tmp_path, embed_cli):
    """As mteb's bge wrapper (which made the leaderboard's MTEB(eng, v2) numbers): the prompt on every query."""
    from transformers import AutoModel, AutoTokenizer

    q, err = embed_cli(bert_dir, "ArguAna", "query", QUERIES, tmp_path)
    assert "preset: bge-en (model name matches" in err
    s, _ = embed_cli(bert_dir, "STS12", "none", DOCS, tmp_path)
    tok = AutoTokenizer.from_pretrained(str(bert_dir))
    model = AutoModel.from_pretrained(str(bert_dir), torch_dtype=torch.float32).eval()

    def cls(texts):
        enc = tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.no_grad():
            return torch.nn.functional.normalize(model(**enc).last_hidden_state[:, 0], dim=-1).numpy()

    instruction = "Represent this sentence for searching relevant passages: "
    assert cosines(q, cls([instruction + t for t in QUERIES])).min() >= 0.99999  # no "Null": BGE keeps ""
    assert cosines(s, cls(DOCS)).min() >= 0.99999  # STS texts have no prompt type: no instruction
    rule = make_rule(get_preset("bge-en").prompt)
    assert rule.prefix("ArguAna", "passage") == "" and rule.prefix("AskUbuntuDupQuestions", "query") == instruction


def test_gte_qwen2_preset_builds_a_bidirectional_model_without_remote_code(stock_qwen2_dir, tmp_path, embed_cli):
    """gte-Qwen2 ships auto_map code; the preset builds its bidirectional Qwen2 natively instead, with mteb's
    gte wrapper recipe: the task's mteb instruction, each text followed by the string "<|endoftext|>"."""
    model_dir = tmp_path / "gte-Qwen2-tiny"
    shutil.copytree(stock_qwen2_dir, model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_qwen.Qwen2Model"}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    instruction = mteb_instruction("ArguAna", "query")
    assert instruction.startswith("Given a claim")
    q, err = embed_cli(model_dir, "ArguAna", "query", QUERIES, tmp_path)
    assert "preset: gte-qwen2" in err
    from transformers import AutoTokenizer, Qwen2Model

    tok = AutoTokenizer.from_pretrained(str(model_dir), padding_side="left")
    model = Qwen2Model.from_pretrained(str(model_dir), torch_dtype=torch.float32, attn_implementation="eager").eval()
    enc = tok([f"Instruct: {instruction}\nQuery: {t}<|endoftext|>" for t in QUERIES], padding=True, return_tensors="pt")
    assert (enc["input_ids"][:, -1] == tok.convert_tokens_to_ids("<|endoftext|>")).all()  # one token, not text
    mask4d = (1.0 - enc["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    with torch.no_grad():
        h = model(input_ids=enc["input_ids"], attention_mask=mask4d).last_hidden_state[:, -1]
    assert cosines(q, torch.nn.functional.normalize(h, dim=-1).numpy()).min() >= 0.99999


def test_detection_names_its_reason(qzhou_dir, stock_qwen2_dir, minilm_dir, qwen3_dir, bert_dir):
    def pick(path):
        p, config, _ = locate(str(path))
        return detect(p, config, str(path))

    assert pick(qzhou_dir) == (get_preset("qzhou"), "architecture QZhouModel")
    assert pick(minilm_dir)[0].name == "sentence-transformers"
    assert pick(qwen3_dir)[0].name == "qwen3-embedding"
    assert pick(bert_dir)[0].name == "bge-en"
    preset, reason = pick(stock_qwen2_dir)
    assert preset.name == "qzhou" and reason.startswith("no preset matched")


def test_flags_override_the_preset(qwen3_dir, tmp_path, embed_cli):
    a, _ = embed_cli(qwen3_dir, "SCIDOCS", "passage", DOCS, tmp_path, "--preset", "qwen3-embedding")
    b, _ = embed_cli(
        qwen3_dir, "SCIDOCS", "passage", DOCS, tmp_path, "--preset", "qwen3-embedding", "--pooling_mode", "mean"
    )
    assert cosines(a, b).max() < 0.9999  # mean pooling really replaced last-token pooling


def test_truncate_dim_keeps_d_dims_of_the_unit_vector(qzhou_dir, tmp_path, embed_cli):
    full, _ = embed_cli(qzhou_dir, "STS12", "none", DOCS, tmp_path, "--normalize", "false")
    cut, _ = embed_cli(qzhou_dir, "STS12", "none", DOCS, tmp_path, "--truncate_dim", "16")
    assert cut.shape == (len(DOCS), 16)
    assert np.allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
    expected = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    assert np.allclose(cut, expected, atol=1e-5)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n, p in all_presets().items()
        if p.prompt["rule"] == "sides" and p.prompt["instructions"] != "model_prompts"
    ],
)
def test_every_side_a_preset_instructs_gets_its_template_and_no_other_side_does(name):
    """Every (task, side) of MTEB(eng, v2): an instructed side must carry a non-empty instruction in the template
    (an empty one fails: dropping every prompt-type-none instruction is caught here), every other side none."""
    import mteb

    preset = get_preset(name)  # sentence-transformers is left out: its prompts come from a model directory
    rule = make_rule(preset.prompt)
    head, tail = preset.prompt["template"].split("{}")
    types, names = preset.prompt.get("task_types"), preset.prompt.get("task_names")
    by_type = preset.prompt.get("instruct_by_type") or {}
    for bench in ("MTEB(eng, v2)", "MTEB(cmn, v1)"):
        for task in mteb.get_benchmark(bench).tasks:
            name_, ttype = task.metadata.name, task.metadata.type
            for kind in ("query", "passage", "none"):
                cell = rule.cell(name_, kind)
                sides = by_type.get(ttype, preset.prompt["instruct"])
                instructed = (types is None or ttype in types) and (names is None or name_ in names)
                instructed = instructed and (kind in sides or name_ in rule.symmetric)
                if instructed:
                    assert len(cell.prefix) > len(head + tail) and cell.prefix.startswith(head), (name_, kind)
                    assert cell.prefix.endswith(tail) and cell.source != "none", (name_, kind)
                else:
                    assert cell[:2] == ("", "none"), (name_, kind)
    assert preset.source and preset.description


def test_each_preset_states_its_empty_text_rule_and_sources():
    """The empty-text rule is part of the recipe: only QZhou's scripts turn "" into "Null"."""
    rules = {name: get_preset(name).empty_text for name in all_presets()}
    assert rules.pop("qzhou") == "Null"
    assert set(rules.values()) == {None}
    assert get_preset("gte-qwen2").text_suffix == "<|endoftext|>"
    assert all(get_preset(n).text_suffix == "" for n in all_presets() if n != "gte-qwen2")
    for name in ("qwen3-embedding", "gte-qwen2", "e5-mistral", "multilingual-e5-instruct"):
        sources = get_preset(name).sources
        assert sources and sources["instructions"] and sources["empty_text"], name
    assert "gte_models.py" in get_preset("gte-qwen2").source and "microsoft/unilm" in get_preset("e5-mistral").source
    qwen3 = get_preset("qwen3-embedding").values
    assert (qwen3["dtype"], qwen3["attn_implementation"], qwen3["max_length"]) == ("float16", "flash_attention_2", 8192)


def test_sentence_transformers_preset_reads_the_model_config(minilm_dir):
    from qzhou_eval.recipe.presets import resolve_values

    values, prompts = resolve_values(get_preset("sentence-transformers"), minilm_dir)
    assert values["pooling"] == "mean" and values["normalize"] is True and values["max_length"] == 256
    assert prompts == {}  # its config_sentence_transformers.json declares no prompts


def test_e5_mistral_preset_appends_eos_after_truncation(stock_qwen2_dir, tmp_path, embed_cli):
    """e5 scripts (unilm e5/utils.py @ 16da2f1): tokenize at max_length - 1, append the EOS id, last token, L2 (a
    retrieval query); this tokenizer adds no EOS itself, so exactly one is appended."""
    from transformers import AutoModel, AutoTokenizer

    model_dir = tmp_path / "e5-mistral-7b-instruct-tiny"  # a causal decoder, named so detection picks the preset
    shutil.copytree(stock_qwen2_dir, model_dir)
    q, err = embed_cli(model_dir, "SCIDOCS", "query", QUERIES, tmp_path, "--max_length", "70")
    assert "preset: e5-mistral (model name matches" in err
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.padding_side = "left"
    model = AutoModel.from_pretrained(str(model_dir), torch_dtype=torch.float32, attn_implementation="eager").eval()
    instruction = mteb_instruction("SCIDOCS", "query")  # mteb's task instruction, as its e5 wrapper uses
    texts = [f"Instruct: {instruction}\nQuery: {t}" for t in QUERIES]
    ids = tok(texts, max_length=69, truncation=True, padding=False)["input_ids"]
    assert max(len(r) for r in tok(texts)["input_ids"]) > 69  # one query really is truncated
    batch = tok.pad({"input_ids": [row + [tok.eos_token_id] for row in ids]}, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state[:, -1]
    assert cosines(q, torch.nn.functional.normalize(h, dim=-1).numpy()).min() >= 0.99999
