"""Images as the reference evaluation prepares them, for `effnet predict` (docs/predict.md).

The official EfficientNet evaluation (tensorflow/tpu, `preprocessing.py`) decodes to RGB, takes
a centre square of `size / (size + 32)` of the shorter side (the "32-pixel crop padding"), and
resizes it bicubically to the model's resolution; pixels stay in [0, 255] because the models
carry their own normalization. `plain` resizes the whole image instead, distorting its aspect.

Pillow is imported inside the functions: `effnet --help` never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from effnet_cli.util.errors import UsageError, choices

if TYPE_CHECKING:
    import PIL.Image

    from effnet_cli.util.arrays import Images

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
CROP_PADDING_PX = 32  # tensorflow/tpu models/official/efficientnet/preprocessing.py
RESIZE_MODES = ("crop", "plain")


@dataclass(frozen=True)
class Crop:
    """A centre square in pixel coordinates: (left, top, side)."""

    left: int
    top: int
    side: int


def center_crop(width: int, height: int, size: int) -> Crop:
    """The reference's crop: side = int(size / (size + 32) * shorter side), offsets rounded up
    ((extent - side + 1) // 2), as `_decode_and_center_crop` computes them. At least 1 pixel,
    so that a tiny image still gives a (blurred) square."""
    side = max(1, int(size / (size + CROP_PADDING_PX) * min(width, height)))
    return Crop((width - side + 1) // 2, (height - side + 1) // 2, side)


def collect(arguments: Iterable[Path]) -> list[Path]:
    """The image files named, folders expanded to their images (sorted, not recursive).

    A named file is always tried, whatever its suffix; a folder contributes files whose suffix
    is one of IMAGE_SUFFIXES, and a folder with none is an error.
    """
    found: list[Path] = []
    for path in arguments:
        if not path.exists():
            raise UsageError(f"image {str(path)!r} does not exist")
        if path.is_dir():
            inside = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not inside:
                raise UsageError(f"{path} holds no images; valid: {choices(IMAGE_SUFFIXES)} files")
            found.extend(inside)
        else:
            found.append(path)
    return found


@dataclass
class Conversions:
    """What was converted on the way to RGB, by kind, so that each kind is said once."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def notes(self) -> list[str]:
        return [f"{n} image{'s' if n > 1 else ''} {kind}" for kind, n in self.counts.items()]


# Pillow's modes, and what effnet says when it converts them (anything else: "converted").
_GREY = ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F")
_SIXTEEN_BIT = ("I", "I;16", "I;16L", "I;16B")


class ImageError(UsageError):
    """One image that cannot be used; `why` is the message without the path (a row's error)."""

    def __init__(self, path: Path | str, why: str, hint: str | None = None) -> None:
        super().__init__(f"{path} is {why}", hint)
        self.why = why


def decode(path: Path, conversions: Conversions, draft: int | None = None) -> PIL.Image.Image:
    """The image at `path` as an 8-bit RGB Pillow image, fully decoded (a truncated file fails
    here, not later). Grey, alpha, palette and 16-bit images are converted and counted.

    `draft`: a JPEG is decoded by its DCT at 1/2 to 1/8 scale, never below `draft` pixels a side
    (Pillow's draft mode; not the reference decode, so off by default).
    An image of more than Pillow's MAX_IMAGE_PIXELS is refused before its pixels are decoded:
    Pillow only warns up to twice that, and one such image costs gigabytes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            limit = Image.MAX_IMAGE_PIXELS
            if limit and opened.width * opened.height > limit:
                raise Image.DecompressionBombError(
                    f"{opened.width}×{opened.height} pixels, over the {limit:,} limit"
                )
            if draft and opened.format == "JPEG":
                opened.draft("RGB", (draft, draft))
            opened.load()
            image = opened
    except Image.DecompressionBombError as exc:  # Pillow's guard against huge pixel counts
        raise ImageError(path, f"too large to decode safely ({exc})") from None
    except UnidentifiedImageError:
        if Path(path).stat().st_size == 0:
            raise ImageError(path, "empty (0 bytes)") from None
        raise ImageError(
            path, f"not an image Pillow can read; valid: {choices(IMAGE_SUFFIXES)}"
        ) from None
    except FileNotFoundError:
        raise ImageError(path, "missing (no such file)") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageError(path, f"not a readable image ({first})") from None
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT:
        conversions.add("with 16-bit grey levels scaled to 8 bits and converted to RGB")
        return _eight_bit(image).convert("RGB")
    if mode in _GREY:
        conversions.add(f"in grey ({mode}) converted to RGB")
    elif "A" in mode or (mode == "P" and "transparency" in image.info):
        conversions.add(f"with transparency ({mode}) converted to RGB, alpha dropped")
    else:
        conversions.add(f"in {mode} converted to RGB")
    return image.convert("RGB")


def _eight_bit(image: PIL.Image.Image) -> PIL.Image.Image:
    """A 16-bit (or 32-bit integer) grey image as 8-bit "L": Pillow's own convert clips every
    level above 255 to white instead of scaling."""
    import numpy as np
    from PIL import Image

    levels = np.asarray(image, dtype=np.float64)
    top = 65535.0 if levels.max(initial=0) > 255 or image.mode != "I" else 255.0
    scaled = np.clip(np.rint(levels * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def prepare(image: PIL.Image.Image, size: int, resize: str = "crop") -> Images:
    """An RGB Pillow image as float32 (size, size, 3) pixels in [0, 255]: the centre crop of
    `center_crop` (or the whole image with "plain"), resized bicubically."""
    import numpy as np
    from PIL import Image

    if resize == "plain":
        box = (0, 0, image.width, image.height)
    else:
        crop = center_crop(image.width, image.height, size)
        box = (crop.left, crop.top, crop.left + crop.side, crop.top + crop.side)
    # crop, then resize: Pillow's resize(box=...) would sample pixels beyond the box's edges,
    # which the reference (crop, then tf.image.resize) never sees
    resized = image.crop(box).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.float32)


def calibration_views(image: PIL.Image.Image, size: int) -> list[Images]:
    """Four views of one photo for int8 calibration: the reference centre crop, its mirror
    image, the whole photo squeezed to a square, and a closer crop (the centre 60 %): the
    shifts of position, scale and aspect a deployed model meets, so that ranges are not fitted
    to one framing of a few photos."""
    import numpy as np
    from PIL import Image

    crop = prepare(image, size, "crop")
    side = max(1, int(0.6 * min(image.width, image.height)))
    left, top = (image.width - side) // 2, (image.height - side) // 2
    closer = image.crop((left, top, left + side, top + side))
    closer = closer.resize((size, size), Image.Resampling.BICUBIC)
    return [crop, crop[:, ::-1], prepare(image, size, "plain"), np.asarray(closer, np.float32)]


def load_batch(paths: list[Path], size: int, resize: str, note: Callable[[str], None]) -> Images:
    """Every image prepared, stacked (N, size, size, 3); conversions said once per kind."""
    import numpy as np

    if resize not in RESIZE_MODES:
        raise UsageError(f"unknown --resize {resize!r}; valid: {choices(RESIZE_MODES)}")
    conversions = Conversions()
    batch = np.empty((len(paths), size, size, 3), dtype=np.float32)
    for index, path in enumerate(paths):
        batch[index] = prepare(decode(path, conversions), size, resize)
    for line in conversions.notes():
        note(f"note: {line}")
    return batch


def count_text(count: int) -> str:
    """ "1 image", "3 images"."""
    return f"{count} image{'s' if count != 1 else ''}"
