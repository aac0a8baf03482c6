"""The machine a run trains on: GPU or CPU, 16-bit compute where it pays, versions for
config.json."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from plumbing import fast_batch_norm
from plumbing.errors import UsageError
from plumbing.quiet import tensorflow_start_up

BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU features that make bfloat16 matrix products fast


def select_device(choice: str) -> str:
    """Returns "GPU" or "CPU" and makes TensorFlow use it. Raises UsageError for --device gpu
    without one."""
    with (
        tensorflow_start_up()
    ):  # listing devices probes CUDA, which prints noise on machines without it
        gpus = tf.config.list_physical_devices("GPU")
    if choice == "cpu" or (choice == "auto" and not gpus):
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return "CPU"
    if not gpus:
        raise UsageError(
            "--device gpu, but TensorFlow sees no GPU; use --device cpu, or see the README's "
            "GPU notes (pip install 'tensorflow[and-cuda]==2.21.0' on Linux)"
        )
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)  # share the GPU politely
    return "GPU"


def device_in_use() -> str:
    """ "GPU" or "CPU": the device select_device chose (config.json records it)."""
    return "GPU" if tf.config.get_visible_devices("GPU") else "CPU"


def policy_in_use() -> str:
    """The dtype policy start chose, e.g. "float32" or "mixed_bfloat16" (config.json records it)."""
    return keras.mixed_precision.global_policy().name


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (Linux: read from /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in BFLOAT16_FLAGS)


def mixed_precision_policy(device: str) -> str:
    """The Keras policy for --mixed-precision: float16 on a GPU, bfloat16 on a CPU that has it."""
    if device == "GPU":
        return "mixed_float16"
    if cpu_has_bfloat16():
        return "mixed_bfloat16"
    raise UsageError(
        "--mixed-precision: this CPU has no bfloat16 instructions (AVX512-BF16, AMX), so 16-bit "
        "compute would be several times slower; drop --mixed-precision"
    )


def compute_policy(config: dict, device: str) -> str:
    """The Keras dtype policy of a run. --mixed-precision: 16-bit compute (mixed_precision_policy);
    --no-mixed-precision: float32. Neither (None): bfloat16 for the CNN on a CPU that has the
    instructions, where it trains faster to the same accuracy (docs/benchmarks.md), and float32
    elsewhere (the linear model and the MLP gain nothing; float16 on a GPU is unmeasured)."""
    wanted = config["mixed_precision"]
    if wanted is None:
        wanted = config["model"] == "cnn" and device == "CPU" and cpu_has_bfloat16()
    return mixed_precision_policy(device) if wanted else "float32"


def start(config: dict) -> str:
    """Chooses the device, 16-bit compute and determinism as asked, and says so. Returns the
    device."""
    device = select_device(config["device"])
    # set every time: a sweep trains several runs in one process
    policy = compute_policy(config, device)
    keras.mixed_precision.set_global_policy(policy)
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    # Keras' BatchNormalization through TensorFlow's fused kernel where measured faster: on CPUs
    fast_batch_norm.use_fused_kernel(device == "CPU")
    shown = "" if policy == "float32" else f" ({policy})"
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; training on the {device}{shown}"
    )
    if policy != "float32" and config["mixed_precision"] is None:
        # chosen for the user, not asked for: say why, and how to turn it off
        print("bfloat16 compute: this CPU has the instructions (--no-mixed-precision: float32)")
    if device == "CPU" and Path("/proc/driver/nvidia/version").exists():
        print(
            "hint: this machine has an NVIDIA GPU that TensorFlow cannot use; on Linux, "
            "pip install 'tensorflow[and-cuda]==2.21.0' (see the README's quick start)"
        )
    return device


def versions() -> dict:
    return dict(
        python=platform.python_version(),
        tensorflow=tf.__version__,
        keras=keras.__version__,
        numpy=np.__version__,
        cpu_count=os.cpu_count(),
    )
