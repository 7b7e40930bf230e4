"""What accuracy is judged on: real images (`--verify-images`, else the shipped photos),
prepared as `predict` prepares them, and the float Keras model's answers on them; or why a
model has no accuracy to keep. Shared by export's gate and bench's --recommend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.data import labels
from effnet_cli.model import spec as S
from effnet_cli.util.drift import top_k
from effnet_cli.workflows import classify

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Floats, Images

# A model has accuracy to keep when it knows the shipped photos: their manifest's classes in its
# top 5 on at least half of them. The real Lite0 names all 7 classified photos; random weights,
# even with calibrated BatchNorm (whose softmax on real photos is often saturated, so confidence
# tells nothing), name none or one by chance (5/1000 a photo).
RECOGNISED_MIN_SHARE = 0.5


@dataclass(frozen=True)
class RealImages:
    """What accuracy is judged on: real images prepared as `predict` prepares them and fed as
    the model is fed (`inputs`, None where nothing is run), the Keras model's logits (or
    outputs) on them, and why they are not judged where they are not."""

    judged_on: str
    inputs: Any
    expected: Any
    not_judged: str | None = None


def real_images(
    model: Any,
    spec: S.ModelSpec | None,
    verify_images: tuple[Path, ...] | None,
    fresh: bool,
    progress: Callable[[str], None],
) -> RealImages:
    """The real images accuracy is judged on (`--verify-images`, else the shipped photos) and
    the Keras model's answers on them. A model with no accuracy to keep (random weights: fresh
    BatchNorm, or blind to the shipped photos) is reported on --verify-images, not judged."""
    from effnet_cli import samples

    if verify_images:
        paths, judged_on = list(verify_images), "--verify-images"
    else:
        paths, judged_on = samples.paths(), samples.PHOTOS
    if model.layers[-1].name != "predictions":  # features: no classes to agree on
        return RealImages(judged_on, None, None, "no classifier head")
    if fresh and not verify_images:
        return RealImages(judged_on, None, None, "random weights")
    progress(f"running Keras on {len(paths)} real images ({judged_on})")
    contract = classify.model_contract(model, spec, progress)
    fed = _fed(paths, contract, progress)
    expected = keras_answers(model, fed)
    if fresh:
        return RealImages(judged_on, fed, expected, "random weights")
    if expected.shape[-1] != labels.IMAGENET_CLASSES:  # the photos cannot tell: trust yours
        why = None if verify_images else "not ImageNet's classes (use --verify-images)"
        return RealImages(judged_on, fed, expected, why)
    shipped = samples.paths(classified=True)
    known = (
        expected[[paths.index(p) for p in shipped]]
        if not verify_images
        else (keras_answers(model, _fed(shipped, contract, progress)))
    )
    return RealImages(judged_on, fed, expected, _untrained(known, shipped))


def _fed(paths: list[Path], contract: classify.Contract, progress: Callable[[str], None]) -> Any:
    """Images prepared as `predict` prepares them and normalized as the model is fed."""
    from effnet_cli.data import images

    batch = images.load_batch(paths, contract.resolution, "crop", progress)
    return classify.normalize(batch, contract.normalization)


def _untrained(answers: Any, shipped: list[Path]) -> str | None:
    """ "random weights" where a model's answers on the shipped classified photos name too few
    of their manifest's classes in the top 5 to show any accuracy to keep."""
    import numpy as np

    from effnet_cli import samples

    top5 = top_k(answers, 5)
    named = [bool(set(samples.classes(p)) & set(row)) for p, row in zip(shipped, top5, strict=True)]
    return None if np.mean(named) >= RECOGNISED_MIN_SHARE else "random weights"


def keras_answers(model: Any, images: Images) -> Floats:
    """The Keras model's logits where it ends in a softmax (else its outputs) on `images`."""
    from effnet_cli.keras.builder import logits_function, run_cheaply

    function = logits_function(model) or (lambda batch: model(batch, training=False))
    answers: Floats = run_cheaply(model, function, len(images))(images)
    return answers
