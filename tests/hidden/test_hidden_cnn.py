"""Hidden grading tests (an example): left out of the exercise version by tools/exercise_exclude.txt
and added to a student's checkout only when grading (docs/instructors.md, "Points and grading").

They check what the visible tests leave open, so a conv block written only for the defaults fails.
"""

import keras
import numpy as np
import pytest

from cnn import conv_block
from helpers import random_images

STAGE = "CNN"


@pytest.mark.points(2)
@pytest.mark.parametrize("kernel_size,activation", [(5, "tanh"), (1, "elu")])
def test_conv_block_honours_kernel_size_and_activation(kernel_size, activation):
    inputs = keras.Input((8, 8, 3))
    outputs = conv_block(inputs, 4, kernel_size=kernel_size, activation=activation, name="c")
    block = keras.Model(inputs, outputs)
    shape = tuple(block.get_layer("c").kernel.shape)
    assert shape == (kernel_size, kernel_size, 3, 4), (
        f"kernel_size={kernel_size}: a kernel of shape {shape}"
    )
    out = block(random_images((8, 8, 3)) * 10, training=False).numpy()
    expected = keras.activations.get(activation)(
        block.get_layer("c")(random_images((8, 8, 3)) * 10)
    ).numpy()
    np.testing.assert_allclose(
        out,
        expected,
        rtol=1e-5,
        atol=1e-6,
        err_msg=f"conv_block(activation={activation!r}): {activation}(conv + bias)",
    )
