"""Real photographs shipped with effnet, for wherever real images are needed and none are given
(issue #21): calibration, accuracy gates, the demo.

Eight CC0 or public-domain photographs (scikit-image's sample data), at most 320 pixels on the
short side, and `manifest.json`: each photo's source, licence, processing and the ImageNet-1k
classes a correct classifier plausibly ranks in its top 5 (empty for the photos whose subject
no ImageNet class shows), and `truth.csv`: each classified photo under the manifest's first
class, for `effnet evaluate --truth`. Only the standard library is imported here.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
# What the photos are called where they stand in for the user's own images (tables, JSON):
PHOTOS = "the shipped photos"  # export's accuracy gate, without --verify-images
CALIBRATION_VIEWS = "the shipped photos with flips and crops"  # int8, without --calibration


def folder() -> Path:
    """The folder holding the photos (package data, on the file system)."""
    return Path(str(resources.files(__name__)))


@cache
def manifest() -> dict[str, Any]:
    """The manifest: {"about": ..., "photos": [{"file", "source", "licence", "classes", ...}]}."""
    document: dict[str, Any] = json.loads(
        resources.files(__name__).joinpath(MANIFEST).read_text("utf-8")
    )
    return document


def paths(*, classified: bool = False) -> list[Path]:
    """The photos' paths in manifest order; `classified` keeps those with claimed classes."""
    return [
        folder() / photo["file"]
        for photo in manifest()["photos"]
        if photo["classes"] or not classified
    ]


def classes(path: Path) -> list[int]:
    """The ImageNet class indices the manifest claims for one shipped photo."""
    for photo in manifest()["photos"]:
        if photo["file"] == Path(path).name:
            return [entry["index"] for entry in photo["classes"]]
    raise KeyError(f"{Path(path).name} is not a shipped photo")
