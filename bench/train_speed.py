"""Training speed: train.py's step vs Keras model.fit on the same architecture, in one run.

    python bench/train_speed.py [--rounds 5] [--steps 30] [--batch-size 128]

Every variant trains on the same batches (real mini-archive images, flip + crop, materialised once
so the input pipeline is out of the picture), in interleaved rounds; ratios are medians of per-round
ratios against the reference: stock Keras (keras.layers.BatchNormalization) with model.fit.

Rows:
  fit, Keras BN      the reference: what a Keras user gets
  fit, fused BN      only the batch-norm kernel changed (plumbing/fast_batch_norm.py)
  train.py, Keras BN only the loop changed (train.make_train_step)
  train.py           what `python train.py --model cnn` runs: both changes
  classic CNN rows   the classic Keras CIFAR-10 CNN (no batch norm) with fit and with our step
  bfloat16           train.py's CNN on a CPU with bfloat16 instructions (AVX512-BF16, AMX): Keras'
                     mixed_bfloat16 policy (16-bit compute), its default there; elsewhere
                     train.py trains in float32 (the row above), as emulated bfloat16 is slow
Target: train.py at least 1.1x the reference.
"""

import argparse
import statistics
import time

import numpy as np

from common import (
    classic_cnn,
    interleaved,
    machine_summary,
    mini_batches_dir,
    ratio_table,
)  # first: the path

# isort: split
import cifar10_input

TARGET = 1.1


def build(kind: str):
    """The default CNN with Keras' batch norm through the fused kernel ("fused": what train.py runs
    on a CPU) or through Keras' own computation ("keras_bn"), or the classic CNN. The choice holds
    for the model's first trace, which each with_* function makes before the next model is built."""

    import train
    from plumbing import fast_batch_norm, options

    if kind == "classic":
        return classic_cnn()
    fast_batch_norm.use_fused_kernel(kind == "fused")
    return train.build_model(options.resolve({}, train.DEFAULTS), (32, 32, 3))


def loss_fn():
    import keras

    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)


def with_fit(kind: str, batches: list):
    """A timed block of model.fit over the batches (compiled first, outside the timing)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = build(kind)
    model.compile(keras.optimizers.Adam(1e-3), loss_fn())
    images = tf.concat([x for x, _ in batches], 0)
    labels = tf.one_hot(tf.concat([y for _, y in batches], 0), 10)
    batch_size = len(batches[0][1])
    model.fit(images[: 2 * batch_size], labels[: 2 * batch_size], batch_size=batch_size, verbose=0)

    def run() -> float:
        start = time.perf_counter()
        model.fit(images, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        return len(images) / (time.perf_counter() - start)

    return run


def with_train_step(kind: str, batches: list, policy: str = "float32"):
    """A timed block of train.py's step over the batches, in float32 or under a mixed-precision
    policy."""
    import keras

    import train

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(policy)
    model = build(kind)
    keras.mixed_precision.set_global_policy("float32")
    optimizer = keras.optimizers.Adam(1e-3)
    if policy == "mixed_float16":  # as train.py: bfloat16 needs no loss scaling
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    step = train.make_train_step(model, optimizer, loss_fn())
    step(*batches[0])

    def run() -> float:
        start = time.perf_counter()
        for x, y in batches:
            loss, _ = step(x, y)
        float(loss)  # wait for the last step
        return sum(len(y) for _, y in batches) / (time.perf_counter() - start)

    return run


def median_ratio(rates: dict, variant: str, reference: str) -> float:
    """The median over the rounds of variant / reference (each round times both)."""
    return statistics.median(a / b for a, b in zip(rates[variant], rates[reference]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="training steps per timed block")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    from plumbing import machine

    dataset = cifar10_input.make_dataset(
        mini_batches_dir(),
        "train",
        batch_size=args.batch_size,
        flip=True,
        crop=4,
        repeat=True,
        drop_remainder=True,
    )
    batches = list(dataset.take(args.steps))
    variants = {
        "fit, Keras BN (reference)": with_fit("keras_bn", batches),
        "fit, fused BN": with_fit("fused", batches),
        "train.py step, Keras BN": with_train_step("keras_bn", batches),
        "train.py step, fused BN (train.py)": with_train_step("fused", batches),
        "classic CNN, fit": with_fit("classic", batches),
        "classic CNN, train.py step": with_train_step("classic", batches),
        "train.py step, fused BN, bfloat16": with_train_step("fused", batches, "mixed_bfloat16"),
    }
    rates = interleaved(variants, args.rounds)
    print(
        f"\nTraining speed, default CNN ({build('fused').count_params():,} parameters), "
        f"batch {args.batch_size}, "
        f"{args.rounds} interleaved rounds of {args.steps} steps"
    )
    print(f"Machine: {machine_summary()}\n")
    print(ratio_table(rates, "fit, Keras BN (reference)", "images/s"))
    ours = median_ratio(rates, "train.py step, fused BN (train.py)", "fit, Keras BN (reference)")
    classic = median_ratio(rates, "classic CNN, train.py step", "classic CNN, fit")
    verdict = "meets" if ours >= TARGET else "MISSES"
    print(
        f"\ntrain.py vs the model.fit reference: {ours:.2f}x ({verdict} the "
        f"{TARGET}x target); on the classic CNN, our step vs fit: {classic:.2f}x"
    )
    bf16 = median_ratio(
        rates, "train.py step, fused BN, bfloat16", "train.py step, fused BN (train.py)"
    )
    print(
        f"bfloat16 vs float32 in train.py's step: {bf16:.2f}x on this CPU, which "
        f"{'has' if machine.cpu_has_bfloat16() else 'lacks'} bfloat16 instructions"
    )


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
