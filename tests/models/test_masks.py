import pytest
import torch

from afscope.errors import ConfigError
from afscope.models import MaskSpec, token_mask

RIGHT = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
LEFT = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])


def test_parse():
    assert MaskSpec.parse("last-3") == MaskSpec("last_k", 3)
    for bad in ("last-0", "first", "last-x"):
        with pytest.raises(ConfigError):
            MaskSpec.parse(bad)


@pytest.mark.parametrize("am", [RIGHT, LEFT])
def test_last_and_last_k_are_padding_independent(am):
    last = token_mask(am, MaskSpec("last"))
    assert last.sum(1).tolist() == [1, 1]
    assert last[1, 5] and last[0].nonzero().item() == (3 if am is RIGHT else 5)
    last2 = token_mask(am, MaskSpec("last_k", 2))
    assert last2.sum(1).tolist() == [2, 2]
    assert token_mask(am, MaskSpec("all")).equal(am.bool())


def test_response_mask_counts_from_valid_tokens():
    m = token_mask(LEFT, MaskSpec("response"), response_start=torch.tensor([1, 4]))
    assert m[0].tolist() == [False, False, False, True, True, True]
    assert m[1].tolist() == [False, False, False, False, True, True]
    with pytest.raises(ConfigError):
        token_mask(LEFT, MaskSpec("response"))


@pytest.mark.parametrize("am", [RIGHT, LEFT])
def test_skip_first_drops_the_sink_position_but_not_last(am):
    m = token_mask(am, MaskSpec("all"), skip_first=1)
    assert m.sum(1).tolist() == [3, 5]
    first = (am.cumsum(1) == 1) & am.bool()
    assert not (m & first).any()
    assert token_mask(am, MaskSpec("last"), skip_first=1).equal(token_mask(am, MaskSpec("last")))
