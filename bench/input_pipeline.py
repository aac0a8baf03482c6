"""Input pipeline throughput: tf.data with and without augmentation vs plain NumPy batches.

    python bench/input_pipeline.py [--rounds 5] [--epochs 4] [--batch-size 128]

The NumPy reference iterates the same uint8 arrays in shuffled batches and normalises them, with
no augmentation: the least work any pipeline could do. Target: flip + crop at 30,000 images/s or
more on 2 CPU cores, so the pipeline can feed a GPU, not only a CPU.
"""

import argparse
import statistics

import numpy as np

from common import interleaved, machine_summary, mini_batches_dir, ratio_table, timed  # first

# isort: split
import cifar10_input

TARGET_IMAGES_PER_S = 30_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per timed block")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    batches_dir = mini_batches_dir()
    images, labels = cifar10_input.load_split(batches_dir, "train")
    mean, std = cifar10_input.channel_stats(images)
    rng = np.random.default_rng(0)

    def numpy_reference() -> int:
        count = 0
        for _ in range(args.epochs):
            order = rng.permutation(len(labels))
            for start in range(0, len(order), args.batch_size):
                idx = order[start : start + args.batch_size]
                _ = (images[idx].astype(np.float32) / 255.0 - mean) / std, labels[idx]
                count += len(idx)
        return count

    def tf_data(**augmentation):
        dataset = cifar10_input.make_dataset(
            batches_dir, "train", batch_size=args.batch_size, **augmentation
        )
        for _ in dataset:  # trace the functions once, outside the timing
            pass

        def run() -> int:
            count = 0
            for _ in range(args.epochs):
                for _, y in dataset:
                    count += int(y.shape[0])
            return count

        return run

    variants = {
        "NumPy reference (no augmentation)": numpy_reference,
        "tf.data, no augmentation": tf_data(),
        "tf.data, flip + crop 4": tf_data(flip=True, crop=4),
        "tf.data, flip + crop + brightness/contrast + cutout": tf_data(
            flip=True, crop=4, brightness=0.2, contrast=0.2, cutout=8
        ),
    }
    rates = interleaved(
        {name: (lambda run=run: timed(run)) for name, run in variants.items()}, args.rounds
    )
    print(
        f"\nInput pipeline, {len(labels):,} mini-archive training images, batch {args.batch_size}, "
        f"{args.rounds} interleaved rounds of {args.epochs} epochs"
    )
    print(f"Machine: {machine_summary()}\n")
    print(ratio_table(rates, "NumPy reference (no augmentation)", "images/s"))
    flip_crop = statistics.median(rates["tf.data, flip + crop 4"])
    verdict = "meets" if flip_crop >= TARGET_IMAGES_PER_S else "MISSES"
    target = f"{TARGET_IMAGES_PER_S:,} images/s"
    print(f"\nflip + crop: {flip_crop:,.0f} images/s, {verdict} the {target} target")


if __name__ == "__main__":
    main()
