"""`.keras` archives and `.weights.h5` files: built and saved, or loaded in Keras' safe mode."""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from effnet_cli.keras.builder import build_model, import_keras
from effnet_cli.keras.checkpoints.keras_files import (
    WeightsReport,
    check_weight_values,
    check_weights_file,
    load_weights,
)
from effnet_cli.keras.checkpoints.values import shown
from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError
from effnet_cli.util.files import once_per_file_state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return shown(text.splitlines()[0], 200) if text else type(exc).__name__


# How a damaged zip fails in zipfile: a bad directory, a CRC or a deflate stream that does not
# check (zlib.error), a compression method it lacks (NotImplementedError), an encrypted member
# (RuntimeError), a member cut short (EOFError), a name that does not decode (ValueError).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    struct.error,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)
CONFIG_BYTES = 64 << 20  # the most a config.json is read for (B7's: a third of a megabyte)


SAVE_FORMATS = {".keras": "keras", ".weights.h5": "weights"}


def save_format(path: Path) -> str:
    for ending, fmt in SAVE_FORMATS.items():
        if path.name.lower().endswith(ending):
            return fmt
    raise UsageError(
        f"cannot save as {path.name!r}; valid endings: .keras (full model) or .weights.h5 (weights)"
    )


@dataclass(frozen=True)
class Saved:
    """The file `build -o` wrote."""

    path: Path
    format: str  # "keras" (a full model) or "weights"
    bytes: int


@dataclass(frozen=True)
class Built:
    """What `build_and_save` built: the Keras counts, the weights loaded, the file written."""

    params: int
    params_trainable: int
    seconds: float  # the build alone, TensorFlow's import excluded
    weights: WeightsReport | None  # None: random weights
    saved: Saved | None  # None: no -o


def build_and_save(
    spec: S.ModelSpec,
    weights: Path | None,
    seed: int | None,
    output: Path | None,
    force: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> Built:
    """`effnet build`: check every input before TensorFlow loads, build, load, save atomically."""
    import time

    from effnet_cli.util import files

    if output is not None:
        fmt = save_format(output)
        files.check_target(output, force)
    if weights is not None:
        check_weights_file(weights)
    progress(f"building {spec.name}")  # every input checked: the slow part begins
    import_keras()  # outside the timing: build_s is the build alone
    with files.stdout_to_stderr():
        started = time.perf_counter()
        model = build_model(spec, seed=seed)
        build_seconds = time.perf_counter() - started
        loaded = load_weights(model, weights) if weights is not None else None
        saved = None
        if output is not None:
            with files.atomic_target(output) as tmp:
                model.save(tmp) if fmt == "keras" else model.save_weights(tmp)
            saved = Saved(output, fmt, files.size_bytes(output))
        return Built(
            params=int(model.count_params()),
            params_trainable=int(sum(int(w.numpy().size) for w in model.trainable_weights)),
            seconds=build_seconds,
            weights=loaded,
            saved=saved,
        )


def load_or_build(
    spec: S.ModelSpec | None, source: Path | None, weights: Path | None, seed: int | None
) -> Any:
    """The model a command works on: a `.keras` file (`--from`), or built from `spec`."""
    from effnet_cli.util.files import stdout_to_stderr

    with stdout_to_stderr():
        if source is not None:
            return load_keras_file(source)
        if spec is None:  # the commands give a spec or a source: a bug if reached
            raise ValueError("load_or_build needs a spec or a source")
        model = build_model(spec, seed=seed)
        if weights is not None:
            load_weights(model, weights)
        return model


@once_per_file_state
def check_keras_file(path: Path) -> None:
    """Checks of a `.keras` file before TensorFlow loads: a zip, whose weights hold finite
    floats (Keras' safe mode guards against code, not against NaN or an int64 kernel)."""
    if not path.exists():
        raise UsageError(f"model file {str(path)!r} does not exist")
    if path.suffix != ".keras":
        raise UsageError(f"--from takes a .keras file, not {path.name!r}")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path.name} is not a .keras archive (a .keras file is a zip)")
    try:
        with zipfile.ZipFile(path) as archive, _member(path, archive, WEIGHTS_MEMBER) as weights:
            if weights is not None:  # none: Keras' own load says what is missing
                check_weight_values(weights, path.name, "keras3")
    except ZIP_ERRORS as exc:
        raise UsageError(
            f"{path.name} is not a readable .keras archive ({_first_line(exc)})"
        ) from None


WEIGHTS_MEMBER = "model.weights.h5"  # where Keras 3 keeps a .keras file's variables
ZIP_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


@contextlib.contextmanager
def _member(path: Path, archive: Any, name: str) -> Iterator[IO[bytes] | None]:
    """A zip member as a seekable file, or None where the archive has none of that name.

    h5py seeks all over a file; zipfile's reader answers each seek backwards by reading the
    member again from its start (Python 3.11: half a second for B0's weights stored, five for
    Lite0's compressed, quadratic in their size). Keras stores its members uncompressed, so
    such a member is read in place; a compressed one is inflated once, into a temporary file."""
    import shutil
    import tempfile

    try:
        info = archive.getinfo(name)
    except KeyError:
        yield None
        return
    if info.compress_type != zipfile.ZIP_STORED:
        with archive.open(info) as member, tempfile.TemporaryFile() as inflated:
            shutil.copyfileobj(member, inflated, 1 << 20)
            inflated.seek(0)
            yield inflated
        return
    with path.open("rb") as raw:
        raw.seek(info.header_offset)
        signature, name_bytes, extra_bytes = ZIP_LOCAL_HEADER.unpack(
            raw.read(ZIP_LOCAL_HEADER.size)
        )
        if signature != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"no local header for {name}")
        start = info.header_offset + ZIP_LOCAL_HEADER.size + name_bytes + extra_bytes
        yield io.BufferedReader(_Window(raw, start, info.file_size))


class _Window(io.RawIOBase):
    """`size` bytes of an open file from `start`, as a file of their own."""

    def __init__(self, raw: io.BufferedReader, start: int, size: int) -> None:
        self._raw, self._start, self._size, self._at = raw, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._at

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._size}[whence]
        self._at = max(0, base + offset)
        return self._at

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        count = max(0, min(len(view), self._size - self._at))
        self._raw.seek(self._start + self._at)
        got = self._raw.readinto(view[:count]) or 0
        self._at += got
        return got


def load_keras_file(path: Path) -> Any:
    """Load a `.keras` file in Keras' safe mode: no arbitrary code from an untrusted file."""
    check_keras_file(path)
    keras = import_keras()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:  # a damaged zip's ValueError (ZIP_ERRORS) says neither
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise UsageError(
                f"{path.name} contains a Python lambda, refused in safe mode (it could run "
                "arbitrary code)",
                hint="rebuild the model without Lambda layers",
            ) from None
        raise UsageError(f"{path.name} is not a loadable Keras model: {_first_line(exc)}") from None
    except (*ZIP_ERRORS, KeyError, TypeError) as exc:  # Keras reads the zip with zipfile
        raise UsageError(f"{path.name} is not a loadable Keras model: {_first_line(exc)}") from None


def keras_file_pads_explicitly(path: Path) -> bool:
    """Whether a `.keras` file's model pads explicitly (a `ZeroPadding2D` anywhere in its
    config.json), read from the archive without Keras."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("config.json").file_size
            if size > CONFIG_BYTES:
                raise UsageError(
                    f"{path.name} holds a config.json of {size:,} bytes, past the "
                    f"{CONFIG_BYTES:,} any model's takes"
                )
            with archive.open("config.json") as member:
                config = json.loads(member.read(CONFIG_BYTES))
    except (*ZIP_ERRORS, KeyError) as exc:  # RecursionError (a RuntimeError): JSON nested deep
        raise UsageError(
            f"{path.name} is not a .keras model archive ({_first_line(exc)})"
        ) from None
    # every node, without recursion: a config nested as deep as JSON allows is walked too
    nodes, found = [config], False
    while nodes and not found:
        node = nodes.pop()
        if isinstance(node, dict):
            found = node.get("class_name") == "ZeroPadding2D"
            nodes.extend(node.values())
        elif isinstance(node, list):
            nodes.extend(node)
    return found
