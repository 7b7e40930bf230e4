"""PyTorch checkpoints read with numpy alone: no torch, and no code from the file ever runs.

Three formats (docs/build.md, "Weights from PyTorch checkpoints"):

- torch's legacy pickle (torch.save before 1.6): a pickled magic number, a protocol version and
  a sys-info dict, then the pickled object whose storages are persistent ids, the sorted storage
  keys, then each storage as an int64 element count and its raw bytes
  (https://github.com/pytorch/pytorch/blob/v1.5.0/torch/serialization.py, `_legacy_save`);
- torch's zip format (1.6 and later): `<name>/data.pkl` plus one `<name>/data/<key>` file of raw
  bytes per storage, and `<name>/byteorder` (absent: little-endian);
- safetensors: an 8-byte header length, a JSON header of dtypes, shapes and byte ranges, then
  the data (https://github.com/huggingface/safetensors#format), read here so that BF16 reads too.

Pickles are read by an allow-list Unpickler: the globals torch's own `weights_only=True` loader
accepts for tensor data (collections.OrderedDict, torch._utils' tensor and parameter rebuilders,
the typed storage classes, dtypes). Any other global is refused before anything is called, with
a one-line error saying the file may run code. A storage's element size comes from its type
(FloatStorage: 4 bytes, LongStorage: 8), never from the file's sys-info header: a Windows save
declares 4-byte longs while its LongStorages hold 8-byte elements.

The stand-ins refuse a pickle's BUILD opcode, which would set their attributes (or a shared
function's) to whatever the file says, and no value from the pickle is formatted into an error
(an object whose text is exponential in its size, or a name holding a line break).

Nothing the file declares is believed before it is checked: a tensor's size, offset and strides
against what its storage really holds, a storage's length against the bytes left in the file,
a safetensors byte range against the data, all in Python's ints (a size whose product would
overflow int64 is simply too large); a fault is one line naming the tensor.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from effnet_cli.keras.checkpoints.values import shown
from effnet_cli.util.errors import UsageError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
SUFFIXES = TORCH_SUFFIXES + SAFETENSORS_SUFFIXES
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
LEGACY_PROTOCOL = 1001

# torch's typed storages and the numpy dtype of their elements (the size is the dtype's)
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "BFloat16Storage": "bfloat16", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}  # fmt: skip
# torch.<dtype> globals (torch._utils._rebuild_tensor_v3, metadata) and their numpy dtypes
TORCH_DTYPES = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "bfloat16",
    "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1", "uint8": "u1", "bool": "?",
}  # fmt: skip
SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bfloat16", "I64": "<i8", "I32": "<i4",
    "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}  # fmt: skip
# Where training scripts nest the state dict inside a checkpoint dict, tried in this order.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's tensors by name (float arrays as float32) and what the file was."""

    path: str
    format: str  # "torch-legacy", "torch-zip" or "safetensors"
    tensors: dict[str, Any]
    metadata: dict[str, str]  # safetensors' __metadata__ (empty for torch files)


def is_checkpoint_name(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


# ------------------------------------------------------------------------ the allow-list


class _Sealed:
    """The base of every stand-in a pickle can reach: BUILD calls `__setstate__`, refused."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise TypeError(
            f"it sets the state of a {type(self).__name__.strip('_')}, which tensor data never does"
        )


@dataclass
class _Storage(_Sealed):
    """A storage named by a persistent id; its bytes are read after the pickle."""

    key: str
    dtype: str
    numel: int
    view: tuple[int, int] | None = None  # (offset, size) of an old-style storage view
    array: Any = None


@dataclass
class _TensorRef(_Sealed):
    """A tensor's place in its storage, as the pickle declares it: judged in `_materialize`,
    where the tensor's name is known (`place` is None when the pickle's values are not a
    place at all)."""

    storage: _Storage
    place: tuple[int, tuple[int, ...], tuple[int, ...]] | None  # offset, size, stride


class _DType(_Sealed):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _StorageType(_Sealed):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Function(_Sealed):
    """An allowed function as the pickle gets it: callable, its attributes out of reach."""

    __slots__ = ("function",)

    def __init__(self, function: Any) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> Any:
    """A tensor's place in its storage, as plain ints; whether it lies inside the storage is
    judged in `_materialize`, which knows the tensor's name and the storage's length."""
    if not isinstance(storage, _Storage):
        raise UsageError("the checkpoint describes a tensor that is not a view of a storage")
    try:
        place = (_index(offset), tuple(_index(n) for n in size), tuple(_index(s) for s in stride))
    except (TypeError, ValueError):
        return _TensorRef(storage, None)
    if len(place[1]) != len(place[2]) or min((place[0], *place[1], *place[2])) < 0:
        return _TensorRef(storage, None)
    return _TensorRef(storage, place)


def _index(value: Any) -> int:
    """An int from the pickle, as Python's arbitrary-precision int (a size numpy would overflow
    is caught by comparing, never by wrapping); a float or a string is not an index."""
    if not isinstance(value, int):
        raise TypeError(f"a {type(value).__name__} is not an int")
    return int(value)


def _rebuild_tensor_v3(
    storage: _Storage,
    offset: int,
    size: Any,
    stride: Any,
    _grad: Any,
    _hooks: Any,
    dtype: _DType,
    *_: Any,
) -> Any:
    storage.dtype = TORCH_DTYPES[dtype.name]
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, _new_type: Any, args: Any, _state: Any) -> Any:
    return func(*args)


class _Marker(_Sealed):
    """torch.Tensor or torch.nn.Parameter as a type argument: never instantiated."""

    __slots__ = ()


_TORCH_UTILS = {
    "_rebuild_tensor": _Function(_rebuild_tensor),
    "_rebuild_tensor_v2": _Function(_rebuild_tensor),
    "_rebuild_tensor_v3": _Function(_rebuild_tensor_v3),
    "_rebuild_parameter": _Function(_rebuild_parameter),
    "_rebuild_parameter_with_state": _Function(_rebuild_parameter),
}
_REBUILD_FROM_TYPE = _Function(_rebuild_from_type_v2)
_MARKER = _Marker()


def _allowed(module: str, name: str) -> Any:
    """The stand-in for an allowed global, or None."""
    if (module, name) == ("collections", "OrderedDict"):
        return OrderedDict
    if module == "torch._utils" and name in _TORCH_UTILS:
        return _TORCH_UTILS[name]
    if (module, name) == ("torch._tensor", "_rebuild_from_type_v2"):
        return _REBUILD_FROM_TYPE
    if (module, name) in (("torch", "Tensor"), ("torch.nn.parameter", "Parameter")):
        return _MARKER
    if module == "torch" and name in STORAGE_DTYPES:
        return _StorageType(name)
    if module == "torch" and name in TORCH_DTYPES:
        return _DType(name)
    return None


class _AllowListUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; every other one is refused before it is looked
    up, so nothing the file names is imported or called."""

    def __init__(self, file: Any, path: Path, storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self.path = path
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is None:
            raise UsageError(
                f"{self.path.name} is a pickle that calls {shown(f'{module}.{name}')}, which is "
                "not tensor data: loading it may run code, so it was refused and nothing ran",
                hint="load only checkpoints you trust, or convert them to .safetensors",
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UsageError(f"{self.path.name} holds a persistent id that is not a storage")
        storage_type, key, numel = pid[1], _key(pid[2]), _index(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UsageError(
                f"{self.path.name} names a storage of unknown type (a "
                f"{type(storage_type).__name__})"
            )
        view = pid[5] if len(pid) > 5 else None
        if view is not None:  # legacy view: (view_key, offset, size) of storage `key`
            root = self._storage(key, storage_type, numel)
            return _Storage(
                str(view[0]), root.dtype, int(view[2]), (int(view[1]), int(view[2])), root
            )
        return self._storage(key, storage_type, numel)

    def _storage(self, key: str, storage_type: _StorageType, numel: int) -> _Storage:
        if key not in self.storages:
            self.storages[key] = _Storage(key, STORAGE_DTYPES[storage_type.name], numel)
        return self.storages[key]


def _key(value: Any) -> str:
    """A storage's key: a string (or an int) in every file torch writes; anything else is not
    turned into text, which for a pickled object can take time exponential in its size."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise TypeError(f"a storage key that is a {type(value).__name__}")
    return str(value)


def _unpickle(data: Any, path: Path, storages: dict[str, _Storage]) -> Any:
    try:
        return _AllowListUnpickler(data, path, storages).load()
    except UsageError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways; all mean the same here
        raise UsageError(
            f"{path.name} is not a readable PyTorch checkpoint ({_first_line(exc)})"
        ) from None


# ------------------------------------------------------------------------------ formats


def detect_format(path: Path) -> str:
    """ "torch-zip", "torch-legacy" or "safetensors", from the file's first bytes."""
    with path.open("rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    raise UsageError(
        f"{path.name} is neither a PyTorch checkpoint (legacy pickle or zip) nor a .safetensors "
        "file"
    )


def read(path: Path, *, data: bool = True) -> Checkpoint:
    """The checkpoint's state dict. With `data=False` only the pickle (or the safetensors
    header) is read: the allow-list check and the names, before anything heavy runs. With
    data, every tensor's place is checked against what its storage really holds, and a fault
    is one line naming the tensor."""
    fmt = detect_format(path)
    if fmt == "safetensors":
        return _read_safetensors(path, data)
    storages: dict[str, _Storage] = {}
    if fmt == "torch-zip":
        obj = _read_zip(path, storages, data)
    else:
        obj = _read_legacy(path, storages, data)
    state = _state_dict(obj, path)
    tensors = {
        name: (_materialize(f"{path.name}: {shown(name)}", ref) if data else ref)
        for name, ref in state.items()
    }
    return Checkpoint(str(path), fmt, tensors, {})


def _read_legacy(path: Path, storages: dict[str, _Storage], data: bool) -> Any:
    size = path.stat().st_size
    with path.open("rb") as f:
        magic = _unpickle(f, path, storages)
        if magic != LEGACY_MAGIC:
            raise UsageError(f"{path.name} is a pickle but not a PyTorch checkpoint")
        protocol = _unpickle(f, path, storages)
        if protocol != LEGACY_PROTOCOL:
            said = protocol if isinstance(protocol, int) else f"a {type(protocol).__name__}"
            raise UsageError(
                f"{path.name} is a PyTorch checkpoint of protocol {said}, not {LEGACY_PROTOCOL}"
            )
        sys_info = _unpickle(f, path, storages)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise UsageError(f"{path.name} was saved on a big-endian machine; not supported")
        obj = _unpickle(f, path, storages)
        keys = _unpickle(f, path, storages)
        # the sizes the storages declare, against the file's: a cut file fails before its data
        declared = f.tell() + sum(
            8 + max(s.numel, 0) * _itemsize(s.dtype) for s in storages.values()
        )
        if declared > size:
            raise UsageError(
                f"{path.name} is truncated: its storages need {declared} bytes, the file has {size}"
            )
        if not data:
            return obj
        owners = _owners(obj, path)
        for key in keys if isinstance(keys, list) else ():
            (numel,) = struct.unpack("<q", _exactly(f, 8, path))  # always int64, any platform
            storage = storages.get(str(key)) if isinstance(key, (str, int)) else None
            if storage is None:
                raise UsageError(
                    f"{path.name} lists a storage that no tensor uses ({_shown_key(key)})"
                )
            where = f"{path.name}: {_owner(owners, storage.key)}"
            # the count before the bytes is the file's word too: never read past the file on it
            nbytes, left = numel * _itemsize(storage.dtype), size - f.tell()
            if not 0 <= nbytes <= left:
                raise UsageError(
                    f"{where} is stored as {numel:,} values, which the {left:,} "
                    "bytes left in the file cannot hold"
                )
            storage.array = _frombuffer(_exactly(f, nbytes, path), storage.dtype, where)
    return obj


def _read_zip(path: Path, storages: dict[str, _Storage], data: bool) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise UsageError(f"{path.name} is a zip but not a PyTorch checkpoint (no data.pkl)")
            prefix = pickles[0][: -len("data.pkl")]
            obj = _unpickle(io.BytesIO(archive.read(pickles[0])), path, storages)
            order = b"little"
            if f"{prefix}byteorder" in names:
                order = archive.read(f"{prefix}byteorder").strip()
            if order != b"little":
                said = shown(order.decode("ascii", "backslashreplace"), 20)
                raise UsageError(f"{path.name} was saved {said}-endian; not supported")
            if data:
                owners = _owners(obj, path)
                for key, storage in storages.items():
                    where = f"{path.name}: {_owner(owners, key)}"
                    member = f"{prefix}data/{key}"
                    if member not in names:
                        raise UsageError(
                            f"{where}: its storage's data ({shown(member)}) is "
                            "missing from the checkpoint"
                        )
                    storage.array = _frombuffer(
                        _member(archive, member, storage, where), storage.dtype, where
                    )
    except (
        zipfile.BadZipFile,
        KeyError,
        OSError,
        EOFError,
        NotImplementedError,
        RuntimeError,
        ValueError,
        zlib.error,
    ) as exc:
        raise UsageError(
            f"{path.name} is not a readable PyTorch zip checkpoint ({_first_line(exc)})"
        ) from None
    return obj


def _member(archive: zipfile.ZipFile, member: str, storage: _Storage, where: str) -> bytes:
    """A storage's bytes from the zip, exactly as many as its persistent id declares: a member
    deflated from a few kilobytes to gigabytes is refused from its directory entry, unread."""
    expected = storage.numel * _itemsize(storage.dtype)
    size = archive.getinfo(member).file_size
    if size != expected:
        raise UsageError(
            f"{where}: its storage's data is {size:,} bytes where its "
            f"{storage.numel:,} {storage.dtype} values take {expected:,}"
        )
    with archive.open(member) as opened:
        return opened.read(expected)


def _owner(owners: dict[str, str], key: str) -> str:
    """A storage told by the first tensor it holds, or by its key."""
    return shown(owners[key]) if key in owners else f"storage {_shown_key(key)}"


def _shown_key(key: Any) -> str:
    return repr(shown(key, 40)) if isinstance(key, str) else f"a {type(key).__name__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return shown(text.splitlines()[0], 200) if text else type(exc).__name__


def _read_safetensors(path: Path, data: bool) -> Checkpoint:
    """The header read and judged here, then each tensor's bytes as numpy arrays (numpy has no
    bfloat16, so the safetensors package's numpy API cannot give BF16 tensors)."""
    import json

    size = path.stat().st_size
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", _exactly(f, 8, path))
        if length > size - 8:
            raise UsageError(f"{path.name} is truncated: its header claims {length} bytes")
        try:
            header = json.loads(_exactly(f, length, path))
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
            raise UsageError(
                f"{path.name} is not a readable .safetensors file ({_first_line(exc)})"
            ) from None
        if not isinstance(header, dict):
            raise UsageError(
                f"{path.name} is not a readable .safetensors file (its header is not a JSON object)"
            )
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict):
            raise UsageError(f"{path.name} has a __metadata__ that is not a JSON object")
        places = {
            name: _safetensors_place(f"{path.name}: {shown(name)}", entry, size - 8 - length)
            for name, entry in header.items()
        }
        tensors: dict[str, Any] = {}
        for name, (dtype, shape, begin, end) in places.items():
            if not data:
                tensors[name] = header[name]
                continue
            f.seek(8 + length + begin)
            raw = _exactly(f, end - begin, path)
            tensors[name] = _as_float32(
                _frombuffer(raw, dtype, f"{path.name}: {shown(name)}").reshape(shape)
            )
    return Checkpoint(
        str(path), "safetensors", tensors, {str(k): str(v) for k, v in metadata.items()}
    )


def _safetensors_place(
    where: str,
    entry: Any,
    data_bytes: int,  # entry: the header's JSON, unchecked
) -> tuple[str, tuple[int, ...], int, int]:
    """A header entry's numpy dtype, shape and byte range, checked: the range inside the file's
    data and exactly as long as the shape needs (sizes in Python ints: none can overflow)."""
    dtype = entry.get("dtype") if isinstance(entry, dict) else None
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        raise UsageError(
            f"{where} is of dtype {dtype!r}, not one effnet reads ({', '.join(SAFETENSORS_DTYPES)})"
        )
    try:
        shape = tuple(_index(n) for n in entry["shape"])
        begin, end = (_index(n) for n in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{where} has no readable shape and data_offsets") from None
    if min((begin, *shape)) < 0 or end < begin:
        raise UsageError(f"{where} declares a negative size, or data that ends before it begins")
    if end > data_bytes:
        raise UsageError(
            f"{where} lies at bytes {begin:,} to {end:,}, past the end of the "
            f"file's {data_bytes:,} bytes of data"
        )
    needed = math.prod(shape) * _itemsize(SAFETENSORS_DTYPES[dtype])
    if needed != end - begin:
        raise UsageError(
            f"{where} {_shape(shape)} needs {needed:,} bytes of {dtype}, but the file "
            f"gives it {end - begin:,}"
        )
    return SAFETENSORS_DTYPES[dtype], shape, begin, end


def _state_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The name → tensor dict, unwrapped from a training checkpoint where it is nested, with
    DataParallel's `module.` prefix removed."""
    for _ in range(2):
        if isinstance(obj, dict) and not any(isinstance(v, _TensorRef) for v in obj.values()):
            nested = next((obj[k] for k in NESTED_KEYS if isinstance(obj.get(k), dict)), None)
            if nested is None:
                break
            obj = nested
    if not isinstance(obj, dict):
        raise UsageError(f"{path.name} holds a {type(obj).__name__}, not a state dict of tensors")
    state = {k: v for k, v in obj.items() if isinstance(v, _TensorRef)}
    named = next((k for k in state if not isinstance(k, str)), None)
    if named is not None:
        raise UsageError(
            f"{path.name} names a tensor by a {type(named).__name__}, where a state "
            "dict's names are strings"
        )
    if not state:
        raise UsageError(f"{path.name} holds no tensors")
    if all(name.startswith("module.") for name in state):
        state = {name[len("module.") :]: v for name, v in state.items()}
    return state


def _owners(obj: Any, path: Path) -> dict[str, str]:
    """Each storage's first tensor, by key: a fault in a storage is told by the tensor it holds."""
    owners: dict[str, str] = {}
    for name, ref in _state_dict(obj, path).items():
        root = ref.storage.array if ref.storage.view is not None else ref.storage
        owners.setdefault(root.key, name)
    return owners


def _materialize(where: str, ref: _TensorRef) -> Any:
    """The tensor as a numpy array, its place checked first against what its storage really
    holds: numpy's strided view reads wherever it is told, so a crafted offset, size or stride
    must never reach it unchecked. `where` is "file: tensor", for the errors."""
    import numpy as np

    base = _storage_data(where, ref.storage)
    if ref.place is None:
        raise UsageError(f"{where} has an offset, size or stride that is not a count")
    offset, size, stride = ref.place
    count, length = math.prod(size), len(base)
    # a weight is never a broadcast view (stride 0): each of its values has an element of its
    # own; and a size whose product overflows int64 lands here too, Python's ints do not wrap
    if count > length:
        raise UsageError(
            f"{where} {_shape(size)} needs {count:,} values but its storage holds {length:,}"
        )
    if count and offset >= length:
        raise UsageError(
            f"{where} starts at element {offset:,}, past the end of its storage of {length:,}"
        )
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if count else 0
    if count and last >= length:
        raise UsageError(
            f"{where} at offset {offset:,} with strides {stride} reaches element "
            f"{last:,}, past the end of its storage of {length:,}"
        )
    if not count:  # empty: nothing is read, but numpy still refuses a dimension past intp
        try:
            return _as_float32(np.zeros(size, base.dtype))
        except (ValueError, OverflowError):
            raise UsageError(f"{where} {_shape(size)} declares a size no array can have") from None
    flat = base[offset:]
    # bounded now: every dimension <= count <= length, every stride of a stepped dimension
    # < length; a dimension of one is never stepped along, whatever stride the file gives it
    strides = [s * flat.itemsize if n > 1 else 0 for n, s in zip(size, stride, strict=True)]
    strided = np.lib.stride_tricks.as_strided(flat, shape=size, strides=strides, writeable=False)
    return _as_float32(np.array(strided))


def _storage_data(where: str, storage: _Storage) -> Any:
    """A storage's elements; for a legacy view, its slice of the root storage, checked."""
    root = storage.array if storage.view is not None else storage
    if root.array is None:
        raise UsageError(f"{where}: its storage {root.key!r} has no data in the checkpoint")
    if storage.view is None:
        return root.array
    start, count = storage.view
    if start < 0 or count < 0 or start + count > len(root.array):
        raise UsageError(
            f"{where} lies in a view of elements {start:,} to {start + count:,} of "
            f"a storage of {len(root.array):,}"
        )
    return root.array[start : start + count]


def _shape(size: tuple[int, ...]) -> str:
    return "(" + "×".join(str(n) for n in size) + ")"


def _as_float32(array: Any) -> Any:
    import numpy as np

    return array.astype(np.float32) if array.dtype.kind == "f" else array


def _itemsize(dtype: str) -> int:
    import numpy as np

    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def _frombuffer(raw: bytes, dtype: str, where: str) -> Any:
    """A storage's bytes as numpy elements; `where` names the tensor stored there."""
    import numpy as np

    if len(raw) % _itemsize(dtype):
        raise UsageError(
            f"{where}: its storage of {len(raw):,} bytes is not a whole number of {dtype} values"
        )
    if dtype == "bfloat16":  # the top half of a float32: shift into place
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype)


def _exactly(f: IO[bytes], count: int, path: Path) -> bytes:
    raw = f.read(count)
    if len(raw) != count:
        raise UsageError(f"{path.name} is truncated")
    return raw
