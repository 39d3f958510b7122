"""The embedder's reference semantics, each pinned against hand-computed or independent values."""

import numpy as np
import pytest
import torch
from reference_impl import cosines, reference_embed

from qzhou_eval.model.batching import plan_reference_batches
from qzhou_eval.model.embedder import Embedder, EncodeStats
from qzhou_eval.model.hf_runner import LocalRunner
from qzhou_eval.model.weights import load_model
from qzhou_eval.recipe.checkpoint import resolve_checkpoint
from qzhou_eval.recipe.tokenizer import load_tokenizer

TEXTS = [
    "A girl is styling her hair.",
    "",
    "The cat sat on the mat while the dog slept and the bird sang a long song about the river.",
    "今天天气很好。",
    "Stocks fell.",
    "How do I reset my password on Ubuntu?",
    "x",
]
PREFIX = "Instruct: Retrieve semantically similar text\nQuery: "


@pytest.fixture(scope="module")
def parts(qzhou_dir):
    ckpt = resolve_checkpoint(str(qzhou_dir))
    tok = load_tokenizer(ckpt, "auto", False)
    model = load_model(ckpt, "float32", "sdpa", "cpu", False)
    return model, tok


def make(parts, **kw) -> Embedder:
    model, tok = parts
    return Embedder(model, tok, **kw)


def test_decoder_only_checkpoint_pads_left(parts):
    assert parts[1].padding_side == "left"


@pytest.mark.parametrize("sort_by", ["tokens", "chars"])
def test_matches_independent_reference_with_batches_truncation_and_empty_text(parts, qzhou_dir, sort_by):
    ours = make(parts, max_length=16, batch_size=3, sort_by=sort_by).encode(TEXTS, PREFIX)
    ref = reference_embed(qzhou_dir, TEXTS, PREFIX, max_length=16, batch_size=3)
    assert cosines(ours, ref).min() >= 0.99999


def test_output_is_float32_unit_norm_in_input_order(parts):
    emb = make(parts, batch_size=2).encode(TEXTS, PREFIX)
    assert emb.dtype == np.float32 and emb.shape == (len(TEXTS), 64)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # each row equals the text embedded alone: sorting and batching did not move rows
    single = np.stack([make(parts).encode([t], PREFIX)[0] for t in TEXTS])
    assert cosines(emb, single).min() > 0.99999


def test_empty_text_is_embedded_as_null_and_counted(parts):
    emb = make(parts)
    stats = EncodeStats()
    out = emb.encode(["", "Null"], PREFIX, stats=stats)
    assert np.array_equal(out[0], out[1])
    assert stats.empty_replaced == 1 and stats.texts == 2


def test_prefix_is_prepended_before_tokenization(parts):
    model, tok = parts
    emb = make(parts)
    direct = emb.encode([PREFIX + "Stocks fell."])
    prefixed = emb.encode(["Stocks fell."], PREFIX)
    assert np.array_equal(direct, prefixed)
    assert not np.allclose(prefixed, emb.encode(["Stocks fell."]))


def test_truncation_cuts_prefix_plus_text_on_the_right_and_is_counted(parts):
    model, tok = parts
    emb = make(parts, max_length=8)
    ids, truncated = emb.tokenize([PREFIX + TEXTS[2], "x"])
    assert truncated == 1
    assert list(ids[0]) == tok(PREFIX + TEXTS[2])["input_ids"][:8]
    assert list(ids[1]) == tok("x")["input_ids"]
    stats = EncodeStats()
    emb.encode([PREFIX + TEXTS[2], "x"], stats=stats)
    assert stats.truncated == 1 and stats.longest_tokens == 8


def test_mean_pooling_includes_instruction_tokens(parts):
    """Hand-computed: the mean of all real hidden states of prefix+text, then L2."""
    model, tok = parts
    enc = tok([PREFIX + "Stocks fell."], return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state[0].float()
    expected = (h.mean(0) / h.mean(0).norm()).numpy()
    got = make(parts).encode(["Stocks fell."], PREFIX)[0]
    assert np.allclose(got, expected, atol=1e-6)


def test_normalize_false_keeps_raw_mean(parts):
    raw = make(parts, normalize=False).encode(TEXTS[:2], PREFIX)
    unit = make(parts).encode(TEXTS[:2], PREFIX)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    assert np.allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-6)


def test_reference_sort_follows_character_length_longest_first(parts):
    emb = make(parts, sort_by="chars")
    texts = ["bb", "a", "dddd", "ccc"]
    ids, _ = emb.tokenize(texts)
    assert [texts[i] for i in emb.order(texts, ids)] == ["dddd", "ccc", "bb", "a"]


def test_default_sort_follows_token_length_longest_first(parts):
    emb = make(parts)
    assert emb.sort_by == "tokens"
    texts = ["aaaaaaaaaaaaaaaaaaaa", "今天天气很好", "x y z w"]
    ids, _ = emb.tokenize(texts)
    expected = sorted(range(3), key=lambda i: -len(ids[i]))
    assert list(emb.order(texts, ids)) == expected


def test_empty_input_gives_empty_float32_matrix(parts):
    out = make(parts).encode([], PREFIX)
    assert out.shape == (0, 64) and out.dtype == np.float32


# --- bf16: pooling precision is a real choice, pinned both ways ---------------------------------------


@pytest.fixture(scope="module")
def bf16_parts(qzhou_dir):
    ckpt = resolve_checkpoint(str(qzhou_dir))
    return load_model(ckpt, "bfloat16", "sdpa", "cpu", False), load_tokenizer(ckpt, "auto", False)


def _hand_pooled(parts, texts, prefix, in_fp32: bool) -> np.ndarray:
    """Each text alone through the same bf16 model, mean pooled and normalised by hand, in fp32 or in bf16."""
    model, tok = parts
    rows = []
    for text in texts:
        enc = tok([prefix + (text or "Null")], return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0]
        h = h.float() if in_fp32 else h
        v = h.sum(dim=0) / torch.tensor(h.shape[0])
        rows.append((v / v.float().norm().to(v.dtype)).float().numpy() if in_fp32 else _bf16_unit(v))
    return np.stack(rows)


def _bf16_unit(v: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(v[None], p=2, dim=-1)[0].float().numpy()


def test_bf16_model_is_pooled_and_normalised_in_float32_by_default(bf16_parts):
    """Dropping the fp32 cast before pooling moves every row by bf16 rounding (~1e-3): this catches it."""
    ours = Embedder(*bf16_parts, batch_size=1).encode(TEXTS, PREFIX)
    fp32_pooled = _hand_pooled(bf16_parts, TEXTS, PREFIX, in_fp32=True)
    bf16_pooled = _hand_pooled(bf16_parts, TEXTS, PREFIX, in_fp32=False)
    assert np.abs(ours - fp32_pooled).max() < 2e-6
    assert np.abs(bf16_pooled - fp32_pooled).max() > 1e-4  # the two really differ on this model


def test_reference_mode_pools_and_normalises_in_the_model_dtype(bf16_parts):
    """sort_by="reference" reproduces the reference scripts' bf16 pooling, then casts to float32."""
    ours = Embedder(*bf16_parts, sort_by="reference").encode(TEXTS, PREFIX, batch_size=1)
    bf16_pooled = _hand_pooled(bf16_parts, TEXTS, PREFIX, in_fp32=False)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, bf16_pooled)


# --- the reference's batches ----------------------------------------------------------------------------


def test_reference_plan_chunks_per_device_then_sorts_each_chunk_by_characters():
    lengths = [1, 5, 3, 9, 2, 8, 7]  # 7 texts, 2 devices -> chunks of ceil(7/2) = 4 in input order
    batches = plan_reference_batches(lengths, devices=2, batch_size=3)
    assert [list(b) for b in batches] == [[3, 1, 2], [0], [5, 6, 4]]
    # one device: one chunk, capped at 3200 texts
    big = plan_reference_batches([1] * 7000, devices=1, batch_size=3200)
    assert [len(b) for b in big] == [3200, 3200, 600] and set(big[1]) == set(range(3200, 6400))


def test_reference_mode_batches_at_the_size_it_is_given_and_sorts_empty_text_last(parts):
    """The reference sorts raw texts (before "Null" and the prefix), so an empty text comes last."""
    seen = []

    class Recording(LocalRunner):
        def run(self, batches, stats, on_result=None, **kw):
            seen.extend(len(b) for b in batches)
            seen.append([int(r[-1]) for r in batches[-1]])
            return super().run(batches, stats, on_result, **kw)

    model, tok = parts
    runner = Recording(model, tok, pool_in_model_dtype=True)
    emb = Embedder(model, tok, sort_by="reference", batch_size=2, runner=runner)
    texts = ["", "abc", "a", "ab"]
    out = emb.encode(texts, PREFIX, batch_size=3)
    assert seen[:2] == [3, 1]  # batch_size 3 from the call, not the embedder's 2
    assert seen[2] == [tok(PREFIX + "Null")["input_ids"][-1]]  # the lone last batch is the empty text
    assert np.allclose(out, Embedder(model, tok).encode(texts, PREFIX), atol=1e-6)  # fp32 model: same vectors


def test_reference_mode_refuses_a_runner_that_pools_in_float32(parts):
    model, tok = parts
    with pytest.raises(ValueError, match="pool_in_model_dtype"):
        Embedder(model, tok, sort_by="reference", runner=LocalRunner(model, tok))


# --- padding side: fixtures saved with the other side ---------------------------------------------------


@pytest.fixture(scope="module")
def right_saved_dirs(tmp_path_factory):
    """A decoder whose tokenizer was saved right-padded, and an encoder saved left-padded."""
    import fixture_models

    root = tmp_path_factory.mktemp("sides")
    decoder = fixture_models.build_qwen2(root / "qzhou_right", "QZhouModel", padding_side="right")
    encoder = fixture_models.build_bert(root / "bert_left", padding_side="left")
    return decoder, encoder


def test_auto_padding_side_is_left_for_a_decoder_whose_tokenizer_says_right(right_saved_dirs):
    from transformers import AutoTokenizer

    decoder, _ = right_saved_dirs
    assert AutoTokenizer.from_pretrained(str(decoder)).padding_side == "right"  # the fixture really is right
    assert load_tokenizer(resolve_checkpoint(str(decoder)), "auto", False).padding_side == "left"
    assert load_tokenizer(resolve_checkpoint(str(decoder)), "right", False).padding_side == "right"


def test_auto_padding_side_keeps_an_encoders_own_side(right_saved_dirs):
    _, encoder = right_saved_dirs
    assert load_tokenizer(resolve_checkpoint(str(encoder)), "auto", False).padding_side == "left"


def test_right_padding_on_a_bidirectional_decoder_gives_the_same_mean_embeddings(right_saved_dirs, parts):
    """Mean pooling finds real tokens from the mask, so a right-padded batch embeds like a left-padded one."""
    decoder, _ = right_saved_dirs
    ckpt = resolve_checkpoint(str(decoder))
    model = load_model(ckpt, "float32", "sdpa", "cpu", False)
    right = Embedder(model, load_tokenizer(ckpt, "right", False), batch_size=4).encode(TEXTS, PREFIX)
    left = Embedder(model, load_tokenizer(ckpt, "left", False), batch_size=4).encode(TEXTS, PREFIX)
    assert cosines(right, left).min() > 0.99999


def test_padded_batches_of_a_right_padding_encoder_equal_one_text_at_a_time(tmp_path):
    """BERT's positions are absolute: padding on the wrong side would move every real token. The batches here are
    really padded (fixed size, mixed lengths), and must equal embedding each text alone."""
    import fixture_models

    from qzhou_eval.model.weights import load_model
    from qzhou_eval.recipe.checkpoint import resolve_checkpoint
    from qzhou_eval.recipe.tokenizer import load_tokenizer

    ckpt = resolve_checkpoint(str(fixture_models.build_bert(tmp_path / "bert")))
    model, tok = load_model(ckpt, "float32", "sdpa", "cpu", False), load_tokenizer(ckpt, "auto", False)
    assert tok.padding_side == "right"
    texts = ["a", "A girl is styling her hair.", "How do I reset my password on Ubuntu? " * 3, "x y", "cats"]
    batched = Embedder(model, tok, pooling="cls", batch_size=5, max_padding=1.0)
    out = batched.encode(texts)
    assert batched.last_padding[0] > 0  # padded tokens in the batch
    alone = np.stack([Embedder(model, tok, pooling="cls", batch_size=1).encode([t])[0] for t in texts])
    assert np.abs(out - alone).max() < 1e-5
