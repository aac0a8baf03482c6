"""Prints the README's table of model stages, with parameter counts taken from the builders.

    python tools/model_table.py

tests/test_readme.py checks that README.md contains exactly this output, so the table cannot drift.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnn import build_cnn
from linear_model import build_linear_model
from mlp import build_mlp
from plumbing.options import builder_options
from train import PRESETS

BUILDERS = {"linear": build_linear_model, "mlp": build_mlp, "cnn": build_cnn}
NOTES = {  # what each preset's model demonstrates
    "linear": "logits, softmax cross-entropy; a linear boundary in pixel space",
    "mlp": "a hidden layer with ReLU and He-normal init; weight decay, dropout",
    "cnn": "generic conv and pool blocks; weight sharing",
    "cnn-bn": "batch norm after every convolution: faster, steadier training",
    "cnn-strided": "strided convolutions replace pooling",
    "cnn-large": "wider and deeper, with dropout, for more data",
    "tuned": "the tuned recipe: `python train.py --model cnn`",
}


def model_options(preset: str) -> dict:
    """The builder options a preset sets (weight decay aside: it is a training option)."""
    model = PRESETS[preset]["model"]
    return {
        k: v
        for k, v in PRESETS[preset].items()
        if k in builder_options(model) and k != "weight_decay"
    }


def model_table() -> str:
    """The markdown table: preset, file, model options, parameter count, what it demonstrates."""
    lines = [
        "| preset | file | model options | parameters | what it demonstrates |",
        "|---|---|---|---:|---|",
    ]
    for preset, note in NOTES.items():
        model, options = PRESETS[preset]["model"], model_options(preset)
        count = BUILDERS[model]((32, 32, 3), 10, **options).count_params()
        shown = ", ".join(f"`{k}={v!r}`".replace("'", "") for k, v in options.items())
        shown = shown or "the builder's defaults"
        filename = {"linear": "linear_model.py", "mlp": "mlp.py", "cnn": "cnn.py"}[model]
        lines.append(f"| `{preset}` | `{filename}` | {shown} | {count:,} | {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(model_table())
