"""Calibration: BatchNorm statistics for random weights (a training-mode pass over random images,
so parity checks compare numbers that mean something: DESIGN §1.1), and the images int8 is
calibrated on, read by export and bench."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.keras.builder import import_keras, run_cheaply
from effnet_cli.util.errors import UsageError

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Images


@dataclass(frozen=True)
class CalibrationImages:
    """The images int8 ranges are fitted on: (N, H, W, 3) pixels in [0, 255], and what they
    are, in words, for the table and the JSON."""

    images: Images  # float32 NHWC, at the model's resolution
    source: str

    @property
    def count(self) -> int:
        return len(self.images)


def load_calibration(source: Path | None, resolution: int, limit: int = 200) -> CalibrationImages:
    """Calibration images for int8, prepared as `predict` prepares images (Pillow, the
    reference centre crop, bicubic resize), so that ranges are fitted on the pixels the model
    will see: a .npy of (N, H, W, 3) pixels as they are, a folder's images, or by default the
    shipped photos (effnet_cli.samples), four views of each (images.calibration_views)."""
    import numpy as np

    from effnet_cli import samples
    from effnet_cli.data import images

    if source is None:
        views = [
            view
            for path in samples.paths()
            for view in images.calibration_views(
                images.decode(path, images.Conversions()), resolution
            )
        ]
        return CalibrationImages(np.stack(views)[:limit], samples.CALIBRATION_VIEWS)
    if source.suffix == ".npy":
        check_calibration_array(source, resolution)
        array = np.load(source, allow_pickle=False)[:limit].astype("float32")
        return CalibrationImages(array, str(source))
    if not source.is_dir():
        raise UsageError(f"--calibration takes a folder of images or a .npy file, not {source}")
    paths = images.collect([source])[:limit]
    batch = images.load_batch(paths, resolution, "crop", lambda _: None)
    return CalibrationImages(batch, str(source))


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


def fresh_batchnorm(model: Any) -> bool:
    """True when no BatchNorm has statistics yet (moving mean 0, variance 1): random weights."""
    import numpy as np

    keras = import_keras()
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return bool(norms) and all(
        not np.any(np.asarray(layer.moving_mean)) and np.all(np.asarray(layer.moving_variance) == 1)
        for layer in norms
    )


# Samples per channel that calibration gives the smallest feature map (the input / 32). With too
# few, the statistics fit those images only: on other images activations leave them, the error
# compounds through the blocks, and the random model is badly conditioned — B7 at 128 px
# calibrated on 2 images (32 samples) has logits near 900 and even Keras fp32 lies 5e-2 from
# float64; on 8 images (128 samples) logits ~0.5 and every fp32 runtime agrees to 7e-6
# (benchmarks/drift.py, docs/export.md). 400 keeps three times that margin; each image costs B0 at
# 224 px ~0.09 s of eager training-mode compute, so more would slow every verified export.
CALIBRATION_SAMPLES = 400
MAX_CALIBRATION_BATCH = 32  # small inputs: the images are cheap, the samples are what counts


def calibration_batch(height: int, width: int) -> int:
    """Images for one calibration pass: 400 samples of the 1/32-size map (2 to 32 images:
    2 at 600 px, 4 at 300 px, 9 at 224 px)."""
    positions = math.ceil(height / 32) * math.ceil(width / 32)
    return min(MAX_CALIBRATION_BATCH, max(2, math.ceil(CALIBRATION_SAMPLES / positions)))


def calibrate_batchnorm(model: Any, seed: int = 0, batch: int | None = None) -> None:
    """Give random weights real BatchNorm statistics (DESIGN §1.1).

    Fresh statistics make EfficientNet's outputs ~1e-5, so parity checks would compare noise.
    One training-mode pass with momentum 0 over seeded random images at the model's own input
    size (statistics at another size give logits orders of magnitude off) sets every moving
    statistic to that batch's statistics; the batch is large enough for the smallest feature
    map (`calibration_batch`).
    """
    import numpy as np

    keras = import_keras()
    height, width = model.input.shape[1:3]
    if height is None or width is None:
        height = width = 224
    batch = batch or calibration_batch(height, width)
    images = np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    run_cheaply(model, lambda x: model(x, training=True), len(images))(images.astype("float32"))
    for layer, momentum in zip(norms, saved, strict=True):
        layer.momentum = momentum
