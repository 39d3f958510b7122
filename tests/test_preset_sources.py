"""Presets are the code that made each family's published numbers (issue 16).

Every expectation here is rendered independently of the preset files and of instructions/: from the families'
own evaluation code as read (microsoft/unilm e5/ scripts, FlagEmbedding C_MTEB/eval_C-MTEB.py, mteb 1.38.30's
gte wrapper), and from mteb's own task metadata, whose prompts mteb copied from the e5 table (checked below).
"""

from __future__ import annotations

import json
import re

import fixture_models
import numpy as np
import pytest
import torch

from qzhou_eval.cli import main
from qzhou_eval.config import PROMPT_TYPES
from qzhou_eval.recipe.presets import all_presets, get_preset

E5 = ("e5-mistral", "multilingual-e5-instruct")
E5_TEMPLATE = "Instruct: {}\nQuery: "  # e5/utils.py get_detailed_instruct
# e5/utils.py get_task_def_by_task_name_and_type: these types by type, whatever the task
E5_BY_TYPE = {
    "STS": "Retrieve semantically similar text.",
    "Summarization": "Given a news summary, retrieve other semantically similar summaries",
    "BitextMining": "Retrieve parallel sentences.",
}
E5_CQADUPSTACK = (
    "Given a question, retrieve detailed question descriptions from Stackexchange that are duplicates to the given "
    "question"
)
# tasks of the two benchmarks whose names the e5 table lacks (the script would raise), and the table key of the
# same task where one exists (a harness choice, shown per cell as an alias)
E5_RENAMED = {
    "CMedQAv1-reranking": "CMedQAv1-reranking",
    "CMedQAv2-reranking": "CMedQAv2-reranking",
    "BiorxivClusteringP2P.v2": "BiorxivClusteringP2P.v2",
    "MedrxivClusteringP2P.v2": "MedrxivClusteringP2P.v2",
    "MedrxivClusteringS2S.v2": "MedrxivClusteringS2S.v2",
    "StackExchangeClustering.v2": "StackExchangeClustering.v2",
    "StackExchangeClusteringP2P.v2": "StackExchangeClusteringP2P.v2",
    "TwentyNewsgroupsClustering.v2": "TwentyNewsgroupsClustering.v2",
    "ClimateFEVERHardNegatives": "ClimateFEVER",
    "FEVERHardNegatives": "FEVER",
    "HotpotQAHardNegatives": "HotpotQA",
    "Touche2020Retrieval.v3": "Touche2020",
}
E5_UNCOVERED = {"ArXivHierarchicalClusteringP2P", "ArXivHierarchicalClusteringS2S"}
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
# FlagEmbedding C_MTEB/eval_C-MTEB.py @ 982f810 (MMarcoReranking; CMedQAv1/v2 under their mteb 1.38.30 names)
BGE_ZH_TASKS = {
    "T2Retrieval", "MMarcoRetrieval", "DuRetrieval", "CovidRetrieval", "CmedqaRetrieval", "EcomRetrieval",
    "MedicalRetrieval", "VideoRetrieval", "T2Reranking", "MMarcoReranking", "CMedQAv1-reranking", "CMedQAv2-reranking",
}  # fmt: skip
DECISIONS = (
    "model",
    "pooling",
    "normalize",
    "max_length",
    "dtype",
    "attn_implementation",
    "padding_side",
    "template",
    "instructions",
    "sides",
)
PINNED = re.compile(r"@ ?[0-9a-f]{7,}|revision [0-9a-f]{7,}|sha256 [0-9a-f]{6,}|\b\d+\.\d+\.\d+\b")


@pytest.fixture(scope="module")
def prompts():
    """`prompts --format json` of a preset and benchmark, in this process."""

    def call(preset: str, bench: str) -> dict:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["prompts", "--preset", preset, "--benchmark", bench, "--format", "json"]) == 0
        return json.loads(out.getvalue())

    return call


def benchmark_tasks(bench: str) -> dict:
    import mteb

    return {t.metadata.name: t for t in mteb.get_benchmark(bench).tasks}


def e5_instruction(task) -> str:
    """The e5 scripts' instruction, from mteb's metadata of the task the e5 table names."""
    import mteb

    name, ttype = task.metadata.name, task.metadata.type
    if ttype in E5_BY_TYPE:
        return E5_BY_TYPE[ttype]
    if name.lower().startswith("cqadupstack"):
        return E5_CQADUPSTACK
    prompt = mteb.get_task(E5_RENAMED.get(name, name)).metadata.prompt
    return prompt["query"] if isinstance(prompt, dict) else prompt


@pytest.mark.parametrize("preset", E5)
@pytest.mark.parametrize("bench", ["MTEB(eng, v2)", "MTEB(cmn, v1)"])
def test_e5_presets_equal_the_e5_scripts_on_every_covered_task(prompts, preset, bench):
    """Retrieval: the instruction on queries only (mteb_beir_eval.py); every other type: on every text, reranking
    documents included (mteb_except_retrieval_eval.py's encoder has no prompt type); classification unnormalised;
    max_length 512."""
    rows = prompts(preset, bench)
    tasks = benchmark_tasks(bench)
    assert list(rows) == list(tasks)
    covered = 0
    for name, task in tasks.items():
        row, ttype = rows[name], task.metadata.type
        assert row["max_length"] == 512 and row["normalize"] is (ttype != "Classification"), name
        if name in E5_UNCOVERED:
            assert {row["source"][k]["follows"] for k in PROMPT_TYPES if row[k]} == {"fallback"}
            continue
        expected = E5_TEMPLATE.format(e5_instruction(task))
        for kind in PROMPT_TYPES:
            instructed = kind == "query" if ttype == "Retrieval" else True
            assert row[kind] == (expected if instructed else ""), (name, kind)
            assert row["source"][kind]["follows"] == ("instructions" if instructed else "sides")
        if name in E5_RENAMED:
            assert "alias of" in row["source"]["query"]["note"] + row["source"]["none"]["note"]
        else:
            covered += 1
    assert covered == {"MTEB(eng, v2)": 29, "MTEB(cmn, v1)": 29}[bench]  # literal keys, as the scripts look them up


def test_bge_zh_instructs_exactly_the_queries_of_flagembeddings_twelve_tasks(prompts):
    rows = prompts("bge-zh", "MTEB(cmn, v1)")
    assert set(rows) == set(benchmark_tasks("MTEB(cmn, v1)"))
    for name, row in rows.items():
        assert row["normalize"] is True and row["max_length"] == 512
        for kind in PROMPT_TYPES:
            assert row[kind] == (BGE_ZH_QUERY if name in BGE_ZH_TASKS and kind == "query" else ""), (name, kind)
    assert BGE_ZH_TASKS <= set(rows)


def test_gte_qwen2_runs_at_mtebs_512_tokens_with_right_padding(prompts):
    preset = get_preset("gte-qwen2")
    assert (preset.values["max_length"], preset.values["padding_side"]) == (512, "right")
    rows = prompts("gte-qwen2", "MTEB(eng, v2)")
    assert all(r["max_length"] == 512 and r["normalize"] is True for r in rows.values())


@pytest.mark.parametrize("name", sorted(all_presets()))
def test_every_preset_names_a_pinned_source_for_every_decision(name):
    preset = get_preset(name)
    sources = preset.sources or {}
    needed = list(DECISIONS) + [k for k in ("fallback",) if preset.prompt.get("fallback")]
    needed += ["append_eos"] * preset.append_eos + ["text_suffix"] * bool(preset.text_suffix) + ["empty_text"]
    needed += ["strip_documents"] * preset.strip_documents
    for decision in needed:
        assert sources.get(decision), (name, decision)
        assert PINNED.search(sources[decision]) or decision in ("instructions", "fallback", "sides"), (
            name,
            decision,
            sources[decision],
        )
    assert PINNED.search(preset.source), name


def test_prompts_table_shows_normalisation_max_length_and_the_decisions_followed(capsys):
    assert main(["prompts", "--preset", "e5-mistral", "--tasks", "Banking77Classification", "SCIDOCS"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("Banking77", "SCIDOCS"))}
    assert " no " in lines["Banking77Classification"] and " yes " in lines["SCIDOCS"]
    assert "512" in lines["SCIDOCS"] and "instructions+sides" in lines["SCIDOCS"]
    assert "microsoft/unilm e5/utils.py" in out and "sides: microsoft/unilm" in out
    assert "normalize: microsoft/unilm e5/mteb_except_retrieval_eval.py" in out  # the normalisation's own source


def test_e5_strips_retrieval_documents_as_its_script_built_them(xlmr_dir, mistral_dir, tmp_path, capsys):
    """mteb gives an untitled BEIR document as " " + text; e5/mteb_beir_eval.py used '{title} {text}'.strip()."""
    texts = ["Stocks fell sharply after the announcement today.", "x"]
    for model, preset in ((mistral_dir, "e5-mistral"), (xlmr_dir, "multilingual-e5-instruct")):
        spaced = embed(capsys, tmp_path, model, preset, "SciFact", "passage", [" " + t for t in texts])
        plain = embed(capsys, tmp_path, model, preset, "SciFact", "passage", texts)
        assert np.array_equal(spaced, plain), preset
    # nowhere else: a reranking document keeps its text as mteb gives it (the script's encoder took it as it was)
    spaced = embed(capsys, tmp_path, mistral_dir, "e5-mistral", "SciDocsRR", "passage", [" " + t for t in texts])
    plain = embed(capsys, tmp_path, mistral_dir, "e5-mistral", "SciDocsRR", "passage", texts)
    assert not np.array_equal(spaced, plain)


# --- embeddings on tiny checkpoints of the families' architectures, against the scripts' own steps -----------------


def embed(capsys, tmp_path, model, preset, task, kind, texts, *flags) -> np.ndarray:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / f"{task}-{kind}.npy"
    args = ["embed", "--model_name_or_path", str(model), "--preset", preset, "--task", task, "--prompt_type", kind]
    args += ["--input", str(src), "--output", str(out), "--dtype", "float32", "--device", "cpu"]
    args += ["--batch_size", "3", "--max_padding", "1", *flags]
    assert main(args) == 0, capsys.readouterr().err
    return np.load(out)


TEXTS = ["A girl is styling her hair.", "Stocks fell sharply after the announcement today.", "x", "the cat " * 40]


def e5_script_steps(model, tok, texts, *, pool, normalize, max_length, eos) -> np.ndarray:
    """e5/utils.py @ 16da2f1: tokenize (at max_length - 1 then the EOS id, for pool 'last'), pad, forward, pool
    ('last': the last position of a left-padded batch; 'avg': the mean over the mask), L2 unless classification."""
    if eos:
        rows = [r + [tok.eos_token_id] for r in tok(texts, max_length=max_length - 1, truncation=True)["input_ids"]]
    else:
        rows = tok(texts, max_length=max_length, truncation=True)["input_ids"]
    batch = tok.pad({"input_ids": rows}, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    emb = h[:, -1] if pool == "last" else (h * m).sum(1) / m.sum(1)
    return (torch.nn.functional.normalize(emb, dim=-1) if normalize else emb).numpy()


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory):
    from transformers import MistralConfig, MistralModel

    path = tmp_path_factory.mktemp("ckpt") / "e5-mistral-tiny"
    tok = fixture_models.build_bpe_tokenizer(padding_side="left")
    torch.manual_seed(5)
    config = MistralConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, architectures=["MistralModel"],
    )  # fmt: skip
    MistralModel(config).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("task, normalized", [("Banking77Classification", False), ("STS12", True)])
def test_e5_mistral_embeddings_equal_the_e5_scripts_steps(mistral_dir, tmp_path, capsys, task, normalized):
    from transformers import AutoModel, AutoTokenizer

    ours = embed(capsys, tmp_path, mistral_dir, "e5-mistral", task, "none", TEXTS, "--max_length", "48")
    tok = AutoTokenizer.from_pretrained(str(mistral_dir))
    tok.padding_side = "left"
    model = AutoModel.from_pretrained(str(mistral_dir), torch_dtype=torch.float32).eval()
    import mteb

    prefix = E5_TEMPLATE.format(e5_instruction(mteb.get_task(task)))
    ref = e5_script_steps(
        model, tok, [prefix + t for t in TEXTS], pool="last", normalize=normalized, max_length=48, eos=True
    )
    assert np.allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1), rtol=1e-4)
    assert normalized == np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.99999


def test_one_eos_at_the_end_whether_or_not_the_tokenizer_adds_its_own():
    from tokenizers.processors import TemplateProcessing

    from qzhou_eval.model.embedder import Embedder

    tok = fixture_models.build_bpe_tokenizer()
    eos = tok.eos_token_id
    plain = Embedder(None, tok, max_length=8, append_eos=True, runner=object())
    rows, _ = plain.tokenize(["a b c", "the cat " * 20])
    assert all(r[-1] == eos and list(r).count(eos) == 1 for r in rows) and len(rows[1]) == 8
    tok._tokenizer.post_processor = TemplateProcessing(
        single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", eos)]
    )
    own = Embedder(None, tok, max_length=8, append_eos=True, runner=object())
    rows2, _ = own.tokenize(["a b c", "the cat " * 20])
    assert own.tokenizer_adds_eos() and all(r[-1] == eos and list(r).count(eos) == 1 for r in rows2)
    assert [list(r) for r in rows2] == [list(r) for r in rows]  # the same input either way, at most max_length


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory):
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    bert = fixture_models.build_bert(tmp_path_factory.mktemp("ckpt") / "bert")
    tok = AutoTokenizer.from_pretrained(str(bert))
    path = tmp_path_factory.mktemp("ckpt") / "multilingual-e5-instruct-tiny"
    torch.manual_seed(6)
    config = XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=520, pad_token_id=tok.pad_token_id, type_vocab_size=1,
        architectures=["XLMRobertaModel"],
    )  # fmt: skip
    XLMRobertaModel(config).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("task, kind, normalized", [("ImdbClassification", "none", False), ("SciFact", "query", True)])
def test_multilingual_e5_embeddings_equal_the_e5_scripts_steps(xlmr_dir, tmp_path, capsys, task, kind, normalized):
    from transformers import AutoModel, AutoTokenizer

    ours = embed(capsys, tmp_path, xlmr_dir, "multilingual-e5-instruct", task, kind, TEXTS)
    tok = AutoTokenizer.from_pretrained(str(xlmr_dir))
    model = AutoModel.from_pretrained(str(xlmr_dir), torch_dtype=torch.float32).eval()
    import mteb

    prefix = E5_TEMPLATE.format(e5_instruction(mteb.get_task(task)))
    ref = e5_script_steps(
        model, tok, [prefix + t for t in TEXTS], pool="avg", normalize=normalized, max_length=512, eos=False
    )
    assert np.allclose(np.linalg.norm(ours, axis=1), np.linalg.norm(ref, axis=1), rtol=1e-4)
    cos = (ours * ref).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.99999
