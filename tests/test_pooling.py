import pytest
import torch

from qzhou_eval.errors import UserError
from qzhou_eval.pooling import first_token, get_pooler, last_token, mean, normalize, weighted_mean

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
    with pytest.raises(UserError, match="mean.*last_token.*cls"):
        get_pooler("max")
