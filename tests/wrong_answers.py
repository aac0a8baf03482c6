"""Subtly wrong answers the graded tests must catch, and a correct one they must accept, as data.

Each case is one function of one student file rewritten: a crop that never reaches the far edge of
its padding, a flip that ignores its seed, a CNN without activations, naive NumPy functions that
call the vectorised ones, a NumPy net whose gradients come from TensorFlow, ... Each of these once
scored full marks for its stage. The last case is a stock keras.layers.BatchNormalization, a correct
answer that must score full marks.

The interface (for tests/test_wrong_answers.py and for grading these variants with other tools):

    from wrong_answers import CASES, STAGE_TESTS, write_variant
    for case in CASES:
        # root: a copy of the solution tree (git ls-files), in a folder of your own
        # write_variant rewrites root / case.file: case.function replaced by case.source
        write_variant(root, case)
        ...grade root: the tests of case.stages (STAGE_TESTS[stage]) ...
        # case.must_fail is None: every test of case.stages passes (full marks);
        # otherwise the stage scores fewer points than the solution, and the graded test named
        # case.must_fail (pytest's name, with its parameters) fails with a message containing
        # case.says.

Not graded, and left out of the exercise version (tools/exercise_exclude.txt): it names the answers.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

# The graded test files of each stage (tests/hidden holds the hidden tests, added when grading).
STAGE_TESTS = {
    "augmentation": ("tests/test_augmentation.py",),
    "MLP": ("tests/test_mlp.py",),
    "CNN": ("tests/test_cnn.py", "tests/hidden/test_hidden_cnn.py"),
    "batch norm": ("tests/test_batch_norm.py",),
    "strided & dropout": ("tests/test_strided_dropout.py",),
    "NumPy net": ("tests/test_numpy_mlp.py",),
    "NumPy conv": ("tests/test_numpy_conv.py",),
}


@dataclass(frozen=True)
class WrongAnswer:
    """One variant of the solution: `function` (a top-level name, or Class.method) of `file`
    replaced by `source` (a whole definition, written at the left margin; a method's is indented to
    fit).

    must_fail: the graded test that must fail (pytest's name, e.g. "test_x[flip]"), or None for a
    correct answer that must pass every test of its stages. says: part of that test's failure
    message.
    also: other stages whose tests the variant affects (they are graded with it).
    """

    name: str
    stage: str
    file: str
    function: str
    source: str
    must_fail: str | None
    says: str = ""
    also: tuple[str, ...] = ()

    @property
    def stages(self) -> tuple[str, ...]:
        return (self.stage, *self.also)

    @property
    def test_files(self) -> tuple[str, ...]:
        return tuple(path for stage in self.stages for path in STAGE_TESTS[stage])


def _find(tree: ast.Module, dotted: str):
    """The definition node of `function` or `Class.method` in a module's tree."""
    body, node = tree.body, None
    for part in dotted.split("."):
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and n.name == part
            ),
            None,
        )
        if node is None:
            raise LookupError(f"no definition of {dotted} (no {part!r})")
        body = node.body
    return node


def replace_function(text: str, dotted: str, source: str) -> str:
    """`text` (a Python module) with the definition of `dotted` (decorators included) replaced by
    `source`, indented like the original."""
    node = _find(ast.parse(text), dotted)
    lines = text.splitlines(keepends=True)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    indent = " " * node.col_offset
    new = textwrap.indent(textwrap.dedent(source).strip("\n") + "\n", indent)
    return "".join(lines[:first]) + new + "".join(lines[node.end_lineno :])


def write_variant(root: Path, case: WrongAnswer) -> Path:
    """Rewrites root / case.file with case.function replaced by case.source; copies nothing. Returns
    the file's path. Raises LookupError if the function is not there, SyntaxError if the result does
    not parse."""
    path = Path(root) / case.file
    text = replace_function(path.read_text(), case.function, case.source)
    ast.parse(text, filename=str(path))
    path.write_text(text)
    return path


SEED_TEST = "test_flip_and_crop_depend_on_the_seed_and_vary_between_images"
NAIVE_ONLY = "write the naive version with loops over output positions"
NUMPY_ONLY = "compute the loss and the gradients with NumPy only"

CASES = [
    WrongAnswer(
        name="crop_never_reaches_the_far_edge",
        stage="augmentation",
        file="cifar10_input.py",
        function="random_crop",
        must_fail="test_crop_offsets_reach_both_edges_of_the_padding_in_both_dimensions",
        says="expected every offset in [0, 2 * pad]",
        source="""
def random_crop(images, seed, pad: int):
    import tensorflow as tf

    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    # maxval is exclusive: the offset is never 2 * pad
    offsets = tf.random.stateless_uniform([batch, 2], seed, 0, 2 * pad, dtype=tf.int32)
    rows = tf.range(height)[None, :] + offsets[:, :1]
    cols = tf.range(width)[None, :] + offsets[:, 1:]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)
""",
    ),
    WrongAnswer(
        name="flip_ignores_its_seed",
        stage="augmentation",
        file="cifar10_input.py",
        function="random_flip",
        must_fail=f"{SEED_TEST}[flip]",
        says="draw the randomness from the seed argument",
        source="""
def random_flip(images, seed):
    import tensorflow as tf

    mirror = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], [0, 0]) < 0.5
    return tf.where(mirror, tf.reverse(images, axis=[2]), images)
""",
    ),
    WrongAnswer(
        name="flip_is_not_reproducible",
        stage="augmentation",
        file="cifar10_input.py",
        function="random_flip",
        must_fail=f"{SEED_TEST}[flip]",
        says="the same seed must give the same batch",
        source="""
def random_flip(images, seed):
    import tensorflow as tf

    # stateful: the seed is ignored
    mirror = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
    return tf.where(mirror, tf.reverse(images, axis=[2]), images)
""",
    ),
    WrongAnswer(
        name="flip_is_the_same_for_every_image",
        stage="augmentation",
        file="cifar10_input.py",
        function="random_flip",
        must_fail=f"{SEED_TEST}[flip]",
        says="the same for every image",
        source="""
def random_flip(images, seed):
    import tensorflow as tf

    mirror = tf.random.stateless_uniform([], seed) < 0.5  # one draw for the whole batch
    return tf.where(mirror, tf.reverse(images, axis=[2]), images)
""",
    ),
    WrongAnswer(
        name="crop_ignores_its_seed",
        stage="augmentation",
        file="cifar10_input.py",
        function="random_crop",
        must_fail=f"{SEED_TEST}[crop]",
        says="draw the randomness from the seed argument",
        source="""
def random_crop(images, seed, pad: int):
    import tensorflow as tf

    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([batch, 2], [1, 2], 0, 2 * pad + 1, dtype=tf.int32)
    rows = tf.range(height)[None, :] + offsets[:, :1]
    cols = tf.range(width)[None, :] + offsets[:, 1:]
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)
""",
    ),
    WrongAnswer(
        name="crop_is_the_same_for_every_image",
        stage="augmentation",
        file="cifar10_input.py",
        function="random_crop",
        must_fail=f"{SEED_TEST}[crop]",
        says="the same for every image",
        source="""
def random_crop(images, seed, pad: int):
    import tensorflow as tf

    # one offset for the whole batch
    offset = tf.random.stateless_uniform([2], seed, 0, 2 * pad + 1, dtype=tf.int32)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    return padded[:, offset[0]:offset[0] + height, offset[1]:offset[1] + width]
""",
    ),
    WrongAnswer(
        name="cnn_without_activations",
        stage="CNN",
        file="cnn.py",
        function="build_cnn",
        must_fail="test_every_conv_block_of_build_cnn_ends_in_its_activation[relu]",
        says="needs the activation after every conv block",
        source="""
def build_cnn(input_shape=(32, 32, 3), num_classes=10, *, widths=(32, 64, 128), convs_per_stage=2,
              kernel_size=3, batch_norm=True, downsample="pool", pooling="max", dropout=0.0,
              head="flatten", dense_units=0, activation="relu", weight_decay=0.0,
              regularize_bias=False):
    inputs = keras.Input(shape=input_shape, name="images")
    x = inputs
    for stage, width in enumerate(widths, start=1):
        # convolutions straight after each other: no activation
        for i in range(1, convs_per_stage + 1):
            stride = conv_stride(i, convs_per_stage, downsample)
            x = layers.Conv2D(width, kernel_size, strides=stride, padding="same",
                              use_bias=not batch_norm, kernel_initializer="he_normal",
                              kernel_regularizer=make_regularizer(weight_decay),
                              name=f"stage{stage}_conv{i}")(x)
        if downsample == "pool":
            x = pool_block(x, kind=pooling, name=f"stage{stage}_pool")
        if dropout:
            x = layers.Dropout(dropout, name=f"stage{stage}_dropout")(x)
    logits = dense_head(x, num_classes, head=head, dense_units=dense_units, dropout=dropout,
                        activation=activation, weight_decay=weight_decay,
                        regularize_bias=regularize_bias)
    return keras.Model(inputs, logits, name="cnn")
""",
    ),
    WrongAnswer(
        name="naive_convolution_calls_the_vectorised_one",
        stage="NumPy conv",
        file="numpy_conv.py",
        function="conv2d_forward_naive",
        must_fail="test_conv2d_matches_tensorflow[1-0]",
        says=NAIVE_ONLY,
        source="""
def conv2d_forward_naive(x, w, b, stride: int = 1, pad: int = 0):
    return conv2d_forward(x, w, b, stride, pad)
""",
    ),
    WrongAnswer(
        name="naive_pooling_calls_the_vectorised_one",
        stage="NumPy conv",
        file="numpy_conv.py",
        function="max_pool_backward_naive",
        must_fail="test_pooling_matches_tensorflow[2-2-max]",
        says=NAIVE_ONLY,
        source="""
def max_pool_backward_naive(d_out, x, size: int = 2, stride: int = 2):
    return max_pool_backward(d_out, x, size, stride)
""",
    ),
    WrongAnswer(
        name="naive_pooling_uses_the_window_view",
        stage="NumPy conv",
        file="numpy_conv.py",
        function="_pool_forward_naive",
        must_fail="test_pooling_matches_tensorflow[2-2-avg]",
        says=NAIVE_ONLY,
        source="""
def _pool_forward_naive(x, size: int, stride: int, reduce):
    return reduce(_windows(x, size, size, stride), axis=(4, 5))
""",
    ),
    WrongAnswer(
        name="vectorised_convolution_is_the_naive_one",
        stage="NumPy conv",
        file="numpy_conv.py",
        function="conv2d_backward",
        must_fail="test_conv2d_backward_matches_numerical_gradients",
        says="the vectorised version must not call the naive one",
        source="""
def conv2d_backward(d_out, x, w, stride: int = 1, pad: int = 0):
    return conv2d_backward_naive(d_out, x, w, stride, pad)
""",
    ),
    WrongAnswer(
        name="numpy_net_gradients_from_tensorflow",
        stage="NumPy net",
        file="numpy_mlp.py",
        function="NumpyMLP.loss",
        must_fail="test_gradients_match_numerical_ones[0.0-1 hidden]",
        says=NUMPY_ONLY,
        source="""
def loss(self, X, y=None, reg=0.0):
    import tensorflow as tf

    variables = {key: tf.Variable(value, dtype=tf.float64) for key, value in self.params.items()}
    with tf.GradientTape() as tape:
        h = tf.constant(X, tf.float64)
        for layer in range(1, self.num_layers + 1):
            h = h @ variables[f"W{layer}"] + variables[f"b{layer}"]
            if layer < self.num_layers:
                h = tf.nn.relu(h)
        if y is None:
            return h.numpy()
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, h))
        penalties = [tf.reduce_sum(variables[f"W{n}"] ** 2) for n in range(1, self.num_layers + 1)]
        loss += reg * tf.add_n(penalties)
    grads = tape.gradient(loss, variables)
    return float(loss), {key: grad.numpy() for key, grad in grads.items()}
""",
    ),
    WrongAnswer(
        name="numpy_batch_norm_backward_ignores_the_batch_statistics",
        stage="batch norm",
        file="numpy_batch_norm.py",
        function="batch_norm_backward",
        must_fail="test_numpy_batch_norm_backward_matches_numerical_gradients[shape0]",
        says="dx: relative error",
        source="""
def batch_norm_backward(d_out, cache):
    x_hat, gamma, inverse_std = cache
    axes = tuple(range(x_hat.ndim - 1))
    dx = d_out * gamma * inverse_std  # as if the batch's mean and variance were constants
    return dx, (d_out * x_hat).sum(axis=axes), d_out.sum(axis=axes)
""",
    ),
    WrongAnswer(
        name="numpy_batch_norm_moving_average_keeps_the_new_statistic",
        stage="batch norm",
        file="numpy_batch_norm.py",
        function="batch_norm_forward",
        must_fail="test_numpy_batch_norm_normalises_with_batch_statistics_in_training",
        says="moving mean = momentum * 0 + (1 - momentum) * the batch mean",
        source="""
def batch_norm_forward(x, gamma, beta, state, *, training, momentum=0.9, epsilon=1e-3):
    axes = tuple(range(x.ndim - 1))
    if training:
        mean, variance = x.mean(axis=axes), x.var(axis=axes)
        for name, statistic in (("moving_mean", mean), ("moving_variance", variance)):
            state[name] = (1 - momentum) * state[name] + momentum * statistic  # swapped
    else:
        mean, variance = state["moving_mean"], state["moving_variance"]
    inverse_std = 1 / np.sqrt(variance + epsilon)
    x_hat = (x - mean) * inverse_std
    return gamma * x_hat + beta, (x_hat, gamma, inverse_std)
""",
    ),
    # A correct answer: Keras' layer with all its defaults (momentum 0.99, where the solution sets
    # 0.9). It must pass every batch-norm and strided test.
    WrongAnswer(
        name="stock_keras_batch_norm_is_correct",
        stage="batch norm",
        file="cnn.py",
        function="conv_block",
        must_fail=None,
        also=("strided & dropout",),
        source="""
def conv_block(x, filters: int, *, kernel_size: int = 3, stride: int = 1, batch_norm: bool = False,
               activation: str = "relu", weight_decay: float = 0.0, name: str = "conv"):
    x = layers.Conv2D(filters, kernel_size, strides=stride, padding="same", use_bias=not batch_norm,
                      kernel_initializer="he_normal",
                      kernel_regularizer=make_regularizer(weight_decay), name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)
""",
    ),
]
