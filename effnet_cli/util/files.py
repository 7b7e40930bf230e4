"""Writing artifacts safely, and keeping third-party chatter off stdout."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from effnet_cli.util.errors import UsageError, WorkError


def check_target(target: Path, force: bool) -> None:
    """Refuse to replace an existing artifact without --force, or to write where we cannot."""
    if target.is_dir():
        raise UsageError(f"{target} is a directory; give a file path")
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="pass --force to replace it")
    check_writable_dir(target.parent)


def check_writable_dir(folder: Path) -> None:
    """Refuse a folder we cannot write in now, not with an `Errno` after minutes of work.

    A real file is created and removed: os.access answers yes for root in /proc or on a
    read-only mount, where writing then fails."""
    if not folder.is_dir():
        raise UsageError(f"directory {str(folder)!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".effnet-probe.", dir=folder)
    except OSError as exc:
        raise UsageError(
            f"cannot write in directory {str(folder)!r} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    os.unlink(probe)


# Staged artifacts and scratch folders not yet committed or removed: an interrupt removes them.
_PENDING: set[Path] = set()
_REAL_STDERR: list[int] = []  # the user's stderr, saved while silenced_stderr discards fd 2


SETTLED_NS = 3_000_000_000  # longer than any file system's time stamp step (FAT's is 2 s)


def once_per_file_state(check: Callable[[Path], None]) -> Callable[[Path], None]:
    """`check`, a pure check of a file's contents that passes or raises, run once for each
    state of the file in this process: commands check their inputs before the slow part begins
    and their loaders check again, and reading a large model's every weight twice is waste.

    A state is the file's name, identity, size and times: any write moves its ctime, which no
    one can set back, so changed contents are checked again. The kernel stamps files with a
    coarse clock, so a file changed in the last seconds may be changed again under the same
    stamp: such a file is checked each time. A check that raised is never remembered."""

    passed: dict[tuple[object, ...], None] = {}  # in insertion order: the oldest go first

    @functools.wraps(check)
    def run(path: Path) -> None:
        try:
            found = path.stat()
        except OSError:
            check(path)  # what is missing or unreadable, said by the check itself
            return
        # the name too: what a check accepts can depend on it (a suffix, a layout)
        stamps = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
        state = (path, *stamps)
        if state in passed:
            return
        check(path)
        if time.time_ns() - found.st_ctime_ns > SETTLED_NS:
            passed[state] = None
            if len(passed) > 256:
                del passed[next(iter(passed))]

    return run


def remove_pending() -> None:
    for folder in list(_PENDING):
        shutil.rmtree(folder, ignore_errors=True)
        _PENDING.discard(folder)


def exit_on_interrupt(signum: int, frame: object) -> None:
    """SIGINT handler: remove what is half-written, say so in one line, exit 130 at once.

    Raising KeyboardInterrupt instead can land inside TensorFlow's or a converter's C++
    callbacks, which then abort the process (SIGABRT) and leave the staged files behind.
    """
    remove_pending()
    try:
        # The user's stderr, even while TensorFlow's noise is being discarded.
        fd = _REAL_STDERR[0] if _REAL_STDERR else 2
        if os.isatty(fd):  # a live progress line hid the cursor and holds the line: give both back
            os.write(fd, b"\r\x1b[2K\x1b[?25h")
        os.write(fd, b"error: interrupted\n")
    finally:
        os._exit(130)


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder that an interrupt removes too."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    _PENDING.add(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _PENDING.discard(folder)


class Staged:
    """A temporary file or folder beside `target` (same suffixes, same file system).

    `commit()` renames it over the target; `discard()` removes it. A run never leaves a
    half-written artifact where the user looks for the real one.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        prefix = f".{target.name}."
        self._dir = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
        _PENDING.add(self._dir)
        self.path = self._dir / f"artifact{''.join(target.suffixes)}"

    def commit(self) -> None:
        if self.target.is_dir():
            shutil.rmtree(self.target)
        os.replace(self.path, self.target)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        _PENDING.discard(self._dir)


@contextlib.contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """Yield a staged path for `target`; commit it on success, discard it on any failure."""
    staged = Staged(target)
    try:
        yield staged.path
        staged.commit()
    finally:
        staged.discard()


def remove(path: Path) -> None:
    """Remove a file or a folder, if it is there."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Discard what C++ libraries write to file descriptor 2 meanwhile (unless --verbose).

    TensorFlow's GPU-capable wheel logs "Could not find cuda drivers" through absl before its
    logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot silence it. Python exceptions are
    unaffected: they propagate and are reported after the descriptor is restored.
    """
    if os.environ.get("EFFNET_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    _REAL_STDERR.append(saved)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        _REAL_STDERR.remove(saved)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 (Python or C++) to stderr meanwhile.

    TensorFlow, the converters and Keras' export print to stdout; effnet's stdout carries only
    its result, so `--json` output stays one parseable document.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (an embedding host): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def check_plot_target(path: Path, force: bool) -> None:
    if path.suffix.lower() != ".png":
        raise UsageError(f"--plot writes a PNG; give a path ending in .png, not {path.name!r}")
    check_target(path, force)


def write_plot(path: Path, draw: Callable[[Path], None]) -> None:
    """Draw into a temporary file beside `path`, then rename; needs matplotlib (extra 'plot')."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise WorkError(
            "--plot needs matplotlib, which is not installed",
            hint="pip install 'effnet-cli[plot]' (or pip install matplotlib)",
        ) from None
    with atomic_target(path) as tmp:
        draw(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text)
