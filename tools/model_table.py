"""Prints the README's table of model stages, with parameter counts taken from the builders.

    python tools/model_table.py

tests/test_readme.py checks that README.md contains exactly this output, so the table cannot drift.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnn import CNN_STAGES, build_cnn  # noqa: E402
from linear_model import build_linear_model  # noqa: E402
from mlp import build_mlp  # noqa: E402

# (stage, file, builder, options, what it demonstrates)
STAGES = [
    ("linear", "linear_model.py", build_linear_model, {}, "logits, softmax cross-entropy; a linear boundary in pixel space"),
    ("mlp", "mlp.py", build_mlp, {}, "hidden layer with ReLU and He-normal init; weight decay, dropout"),
    ("cnn", "cnn.py", build_cnn, CNN_STAGES["cnn"], "generic conv and pool blocks; weight sharing"),
    ("cnn-bn", "cnn.py", build_cnn, CNN_STAGES["cnn-bn"], "batch norm after every convolution: faster, steadier training"),
    ("cnn-strided", "cnn.py", build_cnn, CNN_STAGES["cnn-strided"], "strided convolutions replace pooling"),
    ("cnn-large", "cnn.py", build_cnn, CNN_STAGES["cnn-large"], "wider and deeper, with dropout, for more data"),
    ("tuned", "cnn.py", build_cnn, CNN_STAGES["tuned"], "the tuned recipe: `python train.py --model cnn`"),
]


def format_options(options: dict) -> str:
    if not options:
        return "builder defaults"
    return ", ".join(f"`{key}={value!r}`".replace("'", "") for key, value in options.items())


def model_table() -> str:
    """The markdown table: stage, file, options, parameter count, what it demonstrates."""
    lines = ["| stage | file | options | parameters | what it demonstrates |", "|---|---|---|---:|---|"]
    for stage, filename, build, options, note in STAGES:
        count = build((32, 32, 3), 10, **options).count_params()
        lines.append(f"| `{stage}` | `{filename}` | {format_options(options)} | {count:,} | {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(model_table())
