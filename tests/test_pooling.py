import pytest
import torch

from qzhou_eval.errors import UserError
from qzhou_eval.model.pooling import first_token, get_pooler, last_token, mean, normalize, weighted_mean

# two sequences, hidden size 2: row 0 left-padded (one pad), row 1 full
H = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]])
LEFT = torch.tensor([[0, 1, 1], [1, 1, 1]])
RIGHT = torch.tensor([[1, 1, 0], [1, 1, 1]])


def test_mean_ignores_padding_on_either_side():
    assert torch.allclose(mean(H, LEFT), torch.tensor([[2.0, 3.0], [1.0, 1.0]]))
    assert torch.allclose(mean(H, RIGHT), torch.tensor([[5.0, 5.5], [1.0, 1.0]]))


def test_weighted_mean_weighs_later_real_tokens_more():
    # row 0: real tokens (1,2) and (3,4) with weights 1/3, 2/3; row 1 weights 1/6, 2/6, 3/6
    expected = torch.tensor([[(1 + 6) / 3, (2 + 8) / 3], [(1 + 0 + 6) / 6, (0 + 2 + 6) / 6]])
    assert torch.allclose(weighted_mean(H, LEFT), expected)


def test_last_token_finds_last_real_position():
    assert torch.equal(last_token(H, LEFT), torch.tensor([[3.0, 4.0], [2.0, 2.0]]))
    assert torch.equal(last_token(H, RIGHT), torch.tensor([[1.0, 2.0], [2.0, 2.0]]))


def test_first_token_finds_first_real_position():
    assert torch.equal(first_token(H, LEFT), torch.tensor([[1.0, 2.0], [1.0, 0.0]]))
    assert torch.equal(first_token(H, RIGHT), torch.tensor([[9.0, 9.0], [1.0, 0.0]]))


def test_normalize_gives_unit_rows_and_keeps_zero_rows_finite():
    out = normalize(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def test_unknown_pooler_lists_valid_names():
    with pytest.raises(UserError, match="mean.*last_token.*bos_token.*cls"):
        get_pooler("max")


def test_bf16_mean_equals_the_references_last_rows_sum_bit_for_bit():
    """The reference pools in bf16 as `h[i, -n:].sum(0) / n` (left padding); ours is the same numbers."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(6, 40, 16, generator=gen).to(torch.bfloat16)
    lengths = [40, 1, 17, 39, 2, 25]
    mask = torch.zeros(6, 40, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, 40 - n :] = 1
    ref = torch.stack([h[i, -n:].sum(dim=0) / torch.tensor(n) for i, n in enumerate(lengths)])
    got = mean(h, mask)
    assert got.dtype == torch.bfloat16 and torch.equal(got, ref)
    # and it is not the float32 mean: bf16 pooling is a real choice, pinned by tests/test_embedder.py
    assert not torch.equal(got.float(), mean(h.float(), mask))


def test_weighted_mean_keeps_float32_weights_for_bf16_states():
    """bf16 cannot count past 256: the 1..n weights must stay float32 (as in the reference)."""
    h = torch.ones(1, 600, 2, dtype=torch.bfloat16)
    h[0, :, 1] = torch.arange(600, dtype=torch.float32).to(torch.bfloat16)
    mask = torch.ones(1, 600, dtype=torch.long)
    got = weighted_mean(h, mask)
    expected = weighted_mean(h.float(), mask)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, rtol=1e-6)


def test_bos_token_takes_the_position_holding_the_bos_id():
    ids = torch.tensor([[0, 7, 5, 6], [7, 5, 6, 8]])  # left-padded row 0 (pad id 0), BOS id 7
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    h = torch.arange(2 * 4 * 2, dtype=torch.float32).reshape(2, 4, 2)
    pool = get_pooler("bos_token", bos_id=7)
    assert torch.equal(pool(h, mask, ids), torch.stack([h[0, 1], h[1, 0]]))
    # a pad position that happens to hold the BOS id is not a real token
    assert torch.equal(pool(h, mask, torch.tensor([[7, 7, 5, 6], [7, 5, 6, 8]])), torch.stack([h[0, 1], h[1, 0]]))


def test_bos_token_refuses_texts_without_bos_and_tokenizers_without_one():
    pool = get_pooler("bos_token", bos_id=7)
    with pytest.raises(ValueError, match="1 of 2 texts hold no BOS"):
        pool(torch.zeros(2, 2, 2), torch.ones(2, 2, dtype=torch.long), torch.tensor([[7, 1], [1, 1]]))
    with pytest.raises(UserError, match="bos_token needs a tokenizer with a BOS token"):
        get_pooler("bos_token", bos_id=None)
