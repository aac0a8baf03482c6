"""Checks of the model code that students do not write: option validation."""

import pytest

from linear_model import make_regularizer
from mlp import build_mlp, make_initializer


@pytest.mark.parametrize("bad", [dict(activation="swish"), dict(dropout=1.0)])
def test_bad_mlp_options_name_the_problem(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        build_mlp((8, 8, 3), 10, **bad)


def test_bad_initializer_or_regularizer_names_the_problem():
    with pytest.raises(ValueError, match="initializer must be one of .* not 'zeros'"):
        make_initializer("zeros")
    with pytest.raises(ValueError, match="regularizer must be 'l1' or 'l2', not 'l3'"):
        make_regularizer(0.1, "l3")
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        make_regularizer(-1)
    assert make_regularizer(0.0) is None
