"""The native QZhouModel is bidirectional for every batch shape and backend; stock Qwen2 is not."""

import pytest
import torch

from qzhou_eval.model.weights import load_model
from qzhou_eval.recipe.checkpoint import resolve_checkpoint

TEXTS = ["A man is playing a flute on the beach today.", "The cat sat."]


def load(path, attn="sdpa", kind=None):
    ckpt = resolve_checkpoint(str(path))
    if kind == "stock":  # what `AutoModel.from_pretrained` gives without remote code
        from transformers import AutoModel

        return AutoModel.from_pretrained(str(path), torch_dtype=torch.float32, attn_implementation=attn).eval()
    return load_model(ckpt, "float32", attn, "cpu", trust_remote_code=False)


def tokenize(path, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "left"
    return tok(texts, padding=True, return_tensors="pt"), tok


def earlier_token_change(model, batch, row: int) -> float:
    """Replace the last real token of `row` and measure how much the earlier tokens' states move."""
    with torch.no_grad():
        before = model(**batch).last_hidden_state[row]
        ids = batch["input_ids"].clone()
        ids[row, -1] = (ids[row, -1] + 7) % model.config.vocab_size
        after = model(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state[row]
    real = batch["attention_mask"][row].bool()
    real[-1] = False  # the changed token itself
    return (before[real] - after[real]).abs().max().item()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
def test_native_qzhou_lets_earlier_tokens_see_the_last(qzhou_dir, attn, padded):
    model = load(qzhou_dir, attn)
    assert type(model).__name__ == "QZhouModel"
    batch, _ = tokenize(qzhou_dir, TEXTS if padded else TEXTS[:1])
    assert bool((batch["attention_mask"] == 0).any()) == padded
    assert earlier_token_change(model, batch, row=len(batch["input_ids"]) - 1) > 1e-3


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_plain_automodel_on_the_same_checkpoint_is_causal(qzhou_dir, attn):
    """The loading trap, and proof that the bidirectionality check can fail."""
    model = load(qzhou_dir, attn, kind="stock")
    assert type(model).__name__ == "Qwen2Model"
    batch, _ = tokenize(qzhou_dir, TEXTS[:1])
    assert earlier_token_change(model, batch, row=0) == 0.0


def test_left_padding_leaves_real_token_states_unchanged(qzhou_dir):
    model = load(qzhou_dir)
    padded, tok = tokenize(qzhou_dir, TEXTS)
    alone = tok(TEXTS[1:], return_tensors="pt")
    with torch.no_grad():
        in_batch = model(**padded).last_hidden_state[1]
        single = model(**alone).last_hidden_state[0]
    n = alone["input_ids"].shape[1]
    assert padded["attention_mask"][1].sum().item() == n < padded["input_ids"].shape[1]
    assert (in_batch[-n:] - single).abs().max().item() < 2e-5


def test_native_model_runs_without_cache(qzhou_dir):
    model = load(qzhou_dir)
    assert model.config.use_cache is False
    assert all(layer.self_attn.is_causal is False for layer in model.layers)
    assert not model.training
