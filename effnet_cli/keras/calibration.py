"""Calibration images for the precisions calibrated into a file (int8): read by export and bench."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet_cli.util.errors import UsageError


def load_calibration(source: Path, resolution: int, limit: int = 200) -> Any:
    """Calibration images for int8: a .npy of (N, H, W, 3) pixels in [0, 255] or an image folder."""
    import numpy as np

    if source.suffix == ".npy":
        check_calibration_array(source, resolution)
        return np.load(source, allow_pickle=False)[:limit].astype("float32")
    if not source.is_dir():
        raise UsageError(f"--calibration takes a folder of images or a .npy file, not {source}")
    import tensorflow as tf

    paths = sorted(
        p for p in source.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}
    )
    if not paths:
        raise UsageError(f"{source} holds no .jpg, .jpeg, .png or .bmp images")
    images = []
    for path in paths[:limit]:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
        images.append(tf.image.resize(tf.cast(image, tf.float32), (resolution, resolution)).numpy())
    return np.stack(images)


def check_calibration_array(source: Path, resolution: int | None) -> None:
    """A .npy's shape, read from its header (no data loaded): (N, H, W, 3) at the model's size."""
    import numpy as np

    try:
        shape = np.load(source, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise UsageError(f"{source} is not a readable .npy array ({exc})") from None
    size = resolution or (shape[1] if len(shape) == 4 else 0)
    if len(shape) != 4 or shape[1:] != (size, size, 3) or shape[0] < 1:
        wanted = f"(N, {resolution}, {resolution}, 3)" if resolution else "(N, H, W, 3)"
        raise UsageError(
            f"{source.name} holds an array of shape {shape}; calibration needs {wanted}"
        )
