"""Weights files into a built model: Keras 3 `.weights.h5`, keras.applications' legacy `.h5`
(matched by layer order, the published std-for-variance slip mended) and PyTorch checkpoints
(torch_layouts.py). All or nothing: a file that does not fit is refused, never half-loaded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_cli.keras.checkpoints import torch_files
from effnet_cli.keras.checkpoints.values import refuse_unfit, shown
from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError
from effnet_cli.util.files import once_per_file_state

# The most a compressed dataset may inflate to, against the bytes it stores: deflate's own limit
# (1,032 to 1). A dataset is read whole: what it declares is never believed past what it holds.
MAX_INFLATION = 1032


@dataclass(frozen=True)
class WeightsReport:
    path: str
    layout: str  # "keras3" (.weights.h5) or "legacy-h5"
    tensors_loaded: int
    stddev_fix: bool  # the published files' std-in-variance slot was corrected


def weights_layout(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return "keras3"
    if name.endswith((".h5", ".hdf5")):
        return "legacy-h5"
    if torch_files.is_checkpoint_name(path):
        return "pytorch"  # read and mapped by keras/checkpoints/torch_layouts.py
    raise UsageError(
        f"cannot tell the layout of weights file {path.name!r}; valid endings: "
        ".weights.h5 (Keras 3), .h5 (legacy, as keras.applications distributes), "
        ".pth, .pt, .bin, .ckpt (PyTorch) or .safetensors"
    )


def _unreadable(name: str | Path, exc: BaseException) -> UsageError:
    """A damaged HDF5 file: h5py turns HDF5's errors into OSError, KeyError, ValueError,
    RuntimeError or TypeError by their kind, and a damaged file can give any of them."""
    text = str(exc).strip()
    first = shown(text.splitlines()[0], 200) if text else type(exc).__name__
    return UsageError(f"{name} is not a readable HDF5 weights file ({first})")


def count_file_tensors(path: Path, layout: str) -> int:
    """How many weight tensors a weights file holds, read without Keras."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if layout == "keras3":
                found: list[str] = []
                f.visititems(
                    lambda name, obj: (
                        found.append(name)
                        if isinstance(obj, h5py.Dataset) and "/vars/" in f"/{name}"
                        else None
                    )
                )
                return len(found)
            group = f.get("model_weights", f)
            if "layer_names" not in group.attrs:
                raise UsageError(f"{path} is an HDF5 file but holds no Keras weights")
            return sum(
                len(group[_text(layer)].attrs.get("weight_names", []))
                for layer in group.attrs["layer_names"]
            )
    except UsageError:
        raise
    except Exception as exc:  # a damaged file: any of h5py's errors (`_unreadable`)
        raise _unreadable(path, exc) from None


def file_weight_elements(path: Path, layout: str) -> int:
    """How many numbers a weights file holds (Keras' count_params of the model it came from)."""
    import h5py

    count_file_tensors(path, layout)  # an unreadable or foreign file is refused first
    total = 0

    def add(name: str, obj: object) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and (layout != "keras3" or "/vars/" in f"/{name}"):
            total += int(obj.size)

    try:
        with h5py.File(path, "r") as f:
            (f if layout == "keras3" else f.get("model_weights", f)).visititems(add)
    except Exception as exc:  # a damaged file: any of h5py's errors (`_unreadable`)
        raise _unreadable(path, exc) from None
    return total


def check_weight_values(source: Any, name: str, layout: str) -> None:
    """Every weight a Keras HDF5 file stores holds finite floats, read with h5py before Keras
    sees the file: Keras casts an int64 dataset into its float variable without a word, and
    loads a NaN as readily as a number. `source` is a path or an open binary file (a `.keras`
    archive's model.weights.h5); `name` is what the errors call the file.

    An integer scalar is a counter, not a weight: Normalization's `count` is int64 and nothing
    reads it at inference. An optimizer's state (a `.keras` saved compiled) is not the model's.
    A dataset is read only once what it declares is seen to lie in this file (`_stored`).
    """
    import h5py

    try:
        with h5py.File(source, "r") as f:
            root = f if layout == "keras3" else f.get("model_weights", f)
            found: list[str] = []
            root.visititems(
                lambda key, obj: found.append(key) if isinstance(obj, h5py.Dataset) else None
            )
            links: list[tuple[str, Any]] = []  # raised from h5py's callback, an error is lost
            root.visititems_links(lambda key, link: links.append((key, link)))
            for key, link in links:
                _local(name, key, link)
            for key in filter(lambda key: _is_model_weight(key, layout), found):
                array = _stored(name, key, root[key])[()]
                if not (array.ndim == 0 and array.dtype.kind in "iu"):
                    refuse_unfit(name, key, array)
    except UsageError:
        raise
    except Exception as exc:  # a damaged file: any of h5py's errors (`_unreadable`)
        raise _unreadable(name, exc) from None


def _local(name: str, key: str, link: Any) -> None:
    """Refuse a link to another file: Keras would read weights from it that no check saw."""
    import h5py

    if isinstance(link, h5py.ExternalLink):
        raise UsageError(
            f"{name}: {shown(key)} links to another file, {shown(link.filename, 60)}"
            "; weights are read from this file only"
        )


def _stored(name: str, key: str, dataset: Any) -> Any:
    """The dataset, once its values are seen to lie in this file: not in another (external
    storage, a virtual dataset), and not more of them than it stores (chunks never written read
    as the fill value, 2**40 of them from a few bytes), or than those could inflate to."""
    plist = dataset.id.get_create_plist()
    if dataset.is_virtual or plist.get_external_count():
        raise UsageError(
            f"{name}: {shown(key)} keeps its values in another file; weights are "
            "read from this file only"
        )
    declared, stored = dataset.size * dataset.dtype.itemsize, dataset.id.get_storage_size()
    if declared > stored * (MAX_INFLATION if plist.get_nfilters() else 1):
        raise UsageError(
            f"{name}: {shown(key)} {tuple(dataset.shape)} declares {declared:,} bytes "
            f"of values, but the file stores {stored:,}"
        )
    return dataset


def _is_model_weight(key: str, layout: str) -> bool:
    """Whether a dataset holds one of the model's variables: a Keras 3 file keeps them under
    `vars/`, beside an optimizer's, and a legacy file's `model_weights` group holds only them."""
    return layout != "keras3" or ("/vars/" in f"/{key}" and not key.startswith("optimizer/"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@once_per_file_state
def check_weights_file(path: Path) -> None:
    """Cheap checks of a `--weights` file before TensorFlow loads."""
    if path.is_dir():
        raise UsageError(
            f"weights file {str(path)!r} is a directory; give a .weights.h5, .h5, PyTorch or "
            ".safetensors file"
        )
    if not path.is_file():
        raise UsageError(f"weights file {str(path)!r} does not exist")
    layout = weights_layout(path)
    if layout == "pytorch":
        from effnet_cli.keras.checkpoints import torch_layouts as checkpoints

        checkpoints.check_file(path)  # the allow-list and the naming rules, before any build
        return
    count_file_tensors(path, layout)  # an unreadable file, before any build
    check_weight_values(path, path.name, layout)  # and one whose values are not weights


def load_weights(model: Any, path: str | Path) -> WeightsReport:
    """Load a weights file into `model`, refusing anything but a complete, exact match."""
    path = Path(path)
    check_weights_file(path)
    layout = weights_layout(path)
    if layout == "pytorch":
        from effnet_cli.keras.checkpoints import torch_layouts as checkpoints

        loaded = checkpoints.load_into(model, path)
        return WeightsReport(str(path), loaded.layout, loaded.tensors_loaded, False)
    expected = len(model.weights)
    found = count_file_tensors(path, layout)
    if found != expected:
        raise UsageError(
            f"{path.name} holds {found} weight tensors but {model.name} has {expected}",
            hint="the file is for another variant or head (--model, --num-classes, --no-top)",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
        except (ValueError, KeyError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"{path.name} does not fit {model.name}: {first}",
                hint="the file is for another variant or head (--model, --num-classes, --no-top)",
            ) from None
    skipped = [str(w.message) for w in caught if "load" in str(w.message).lower()]
    if skipped:
        raise UsageError(f"{path.name} does not fit {model.name}: {skipped[0].splitlines()[0]}")
    return WeightsReport(str(path), layout, found, _fix_published_stddev(model))


def _fix_published_stddev(model: Any) -> bool:
    """Square the variance when a file stored the ImageNet std in the variance slot.

    keras.applications' published ImageNet files do (https://github.com/tensorflow/tensorflow/
    issues/49930); keras.applications compensates with an extra Rescaling layer, but only for
    weights="imagenet". Squaring the slot gives the same outputs with the same layers.
    """
    import numpy as np

    try:
        layer = model.get_layer("normalization")
    except ValueError:
        return False
    if not layer.weights:  # V2 holds its statistics as constants: no file can have set them
        return False
    variance = np.asarray(layer.adapt_variance)
    if not np.allclose(variance, S.IMAGENET_STDDEV_RGB, atol=1e-4):
        return False
    layer.adapt_variance.assign(variance * variance)
    layer.finalize_state()
    return True
