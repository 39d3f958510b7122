"""The embedder's reference semantics, each pinned against hand-computed or independent values."""

import numpy as np
import pytest
import torch
from reference_impl import cosines, reference_embed

from qzhou_eval.embedder import Embedder, EncodeStats
from qzhou_eval.loading import load_model, load_tokenizer, resolve_checkpoint

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
