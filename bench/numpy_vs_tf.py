"""Time per training iteration of the same MLP in NumPy (numpy_mlp.py) and in TensorFlow, in one
run.

    python bench/numpy_vs_tf.py [--rounds 5] [--iterations 50] [--hidden 100] [--batch-size 200]

The handout's two-layer network (3072 -> 100 -> 10, ReLU, softmax cross-entropy + L2, plain SGD) on
real mini-archive images. Each variant does the same work per iteration: forward, loss, backward and
the SGD update. NumPy in float64 (the handout's) is the reference.
"""

import argparse

import numpy as np

from common import interleaved, machine_summary, mini_batches_dir, ratio_table, timed  # first

# isort: split
import numpy_mlp

REG, LEARNING_RATE = 1e-3, 1e-3


def numpy_variant(X, y, batches, hidden: int, dtype):
    """A timed block of SGD iterations of numpy_mlp.NumpyMLP in `dtype`."""
    net = numpy_mlp.NumpyMLP([X.shape[1], hidden, 10], weight_scale=1e-2, seed=0)
    net.params = {k: v.astype(dtype) for k, v in net.params.items()}
    data = X.astype(dtype)

    def run() -> int:
        for batch in batches:
            _, grads = net.loss(data[batch], y[batch], reg=REG)
            for key in net.params:
                net.params[key] -= LEARNING_RATE * grads[key]
        return len(batches)

    return lambda: timed(run)


def tensorflow_variant(X, y, batches, hidden: int, dtype):
    """The same network and iterations written with TensorFlow ops in a tf.function."""
    import tensorflow as tf

    init = numpy_mlp.NumpyMLP([X.shape[1], hidden, 10], weight_scale=1e-2, seed=0).params
    params = {k: tf.Variable(v.astype(dtype)) for k, v in init.items()}
    data, labels = tf.constant(X.astype(dtype)), tf.constant(y)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            hidden_layer = tf.nn.relu(tf.gather(data, batch) @ params["W1"] + params["b1"])
            scores = hidden_layer @ params["W2"] + params["b2"]
            targets = tf.gather(labels, batch)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, scores))
            loss += REG * (tf.reduce_sum(params["W1"] ** 2) + tf.reduce_sum(params["W2"] ** 2))
        grads = tape.gradient(loss, params)
        for key, variable in params.items():
            variable.assign_sub(LEARNING_RATE * grads[key])
        return loss

    tf_batches = [tf.constant(b) for b in batches]
    step(tf_batches[0])

    def run() -> int:
        for batch in tf_batches:
            loss = step(batch)
        float(loss)  # wait for the last iteration
        return len(tf_batches)

    return lambda: timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50, help="iterations per timed block")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=200)
    args = parser.parse_args()

    X, y = numpy_mlp.load_flat(mini_batches_dir())[:2]
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(y), args.batch_size) for _ in range(args.iterations)]
    data = (X, y, batches, args.hidden)
    variants = {
        "NumPy float64 (reference)": numpy_variant(*data, np.float64),
        "NumPy float32": numpy_variant(*data, np.float32),
        "TensorFlow float64": tensorflow_variant(*data, np.float64),
        "TensorFlow float32": tensorflow_variant(*data, np.float32),
    }
    rates = interleaved(variants, args.rounds)
    print(
        f"\nOne SGD iteration of a {X.shape[1]}-{args.hidden}-10 MLP, batch {args.batch_size}, "
        f"{args.rounds} interleaved rounds of {args.iterations} iterations"
    )
    print(f"Machine: {machine_summary()}\n")
    print(ratio_table(rates, "NumPy float64 (reference)", "iterations/s"))


if __name__ == "__main__":
    main()
