"""Every command in README.md and docs/ runs as written, and every relative link resolves.

The conventions (docs/development.md, "Examples are tests"):

- ```console blocks run: each line starting with `$ ` is a command (a trailing `\\` continues
  it), the lines after it its output. The output shown is compared with stdout (stdout, then
  stderr, for a block marked `exit=N`), trailing spaces ignored; a line holding only `…`
  stands for any number of lines. Flags after `console`: `varies` (measured output: times,
  this machine; regenerated, never compared), `exit=N` (the documented exit code; 0
  otherwise) and `columns=N` (run in a pseudo-terminal N columns wide).
- ```python blocks run, in-process; what each prints, and what it leaves bound, is held
  to what its page says by its entry in PYTHON_CHECKS (a block without one fails).
- ```sh blocks do not run: each line is `make TARGET…` (the targets must exist in the
  Makefile), a comment, or a command ending in `# not run: REASON`.
- Any other block (text, json, yaml…) holds no command unless the line says `# not run:`.
- A fence without a language, an unknown language, a console block that starts without `$ `,
  or a command in an indented (unfenced) code block fails `test_every_block_is_classified`.

All commands run in one folder, in page order (README.md, then PAGES), so a page can use the
files an earlier example wrote, as the page says; a command that already ran there, character
for character, is not run twice (export without --force would refuse its own files). Plain
`effnet …` commands (ending, at most, in `> FILE` or `2>&1`) run in-process through
`effnet_cli.cli.app.main`, the console script's path (TensorFlow loads once for all of them);
a command with other shell syntax, or any other program (`python -c …`), runs in bash with
the venv's bin first on PATH and the repository on PYTHONPATH. `python tests/test_docs.py
--regenerate` writes the outputs back.

benchmarks/reports/ pages are records of past runs: only their links are checked.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# the order the examples run in: later pages use files the earlier ones wrote
PAGES = (
    "build",
    "export",
    "inspect",
    "predict",
    "evaluate",
    "bench",
    "summary",
    "scale-table",
    "doctor",
)
RUN_LANGUAGES = {"console", "python"}
QUIET_LANGUAGES = {"text", "json", "yaml", "toml", "markdown", "sh"}
COMMAND_LIKE = re.compile(r"^\s*(?:- )?(?:run:\s*)?(?:\$ |effnet |make |pip |python3? )")
NOT_RUN = "# not run:"
# a plain effnet command, optionally ending in `> FILE` or `2>&1`: run in-process
IN_PROCESS = re.compile(r"(effnet [^|<>;&`$()*~]+?)(?: (2>&1)| > ([\w./-]+))?")
ENV = {"NO_COLOR": "1", "COLUMNS": "100", "TF_CPP_MIN_LOG_LEVEL": "3"}


def doc_pages() -> list[Path]:
    ordered = [DOCS / f"{name}.md" for name in PAGES]
    rest = sorted(p for p in DOCS.glob("*.md") if p not in ordered)
    return [ROOT / "README.md", *ordered, *rest]


def all_pages() -> list[Path]:
    return [*doc_pages(), *sorted((ROOT / "benchmarks" / "reports").glob("*.md"))]


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    flags: tuple[str, ...]
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{_name(self.page)}:{self.line}"


@dataclass(frozen=True)
class Command:
    block: Block
    text: str
    expected: tuple[str, ...]  # the output shown under it
    exit: int
    compare: bool
    columns: int | None  # run in a terminal this wide; None: stdout is a pipe


def blocks(page: Path) -> tuple[list[Block], list[str]]:
    """The fenced blocks of a page, and the problems found outside them."""
    found, problems, fence, start, body = [], [], None, 0, []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        opening = re.match(r"^\s*(```+)\s*(.*)$", line)
        if fence is None and opening:
            fence, start, body, info = opening.group(1), number, [], opening.group(2).split()
        elif fence is not None and line.strip() == fence:
            language, flags = (info[0], tuple(info[1:])) if info else ("", ())
            found.append(Block(page, start, language, flags, tuple(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        elif re.match(r"^(?: {4,}|\t)(?:\$ |effnet )", line):
            problems.append(f"{_name(page)}:{number}: a command outside a fence")
    if fence is not None:
        problems.append(f"{_name(page)}:{start}: an unclosed fence")
    return found, problems


def commands(block: Block) -> list[Command]:
    """A console block's commands, each with the output shown under it."""
    exit_code = next((int(f[5:]) for f in block.flags if f.startswith("exit=")), 0)
    parsed: list[tuple[str, list[str]]] = []
    lines = list(block.lines)
    while lines:
        line = lines.pop(0)
        if line.startswith("$ "):
            text = line[2:]
            while text.endswith("\\") and lines:
                text = text[:-1] + lines.pop(0).strip()
            parsed.append((text.strip(), []))
        elif parsed:
            parsed[-1][1].append(line)
    compare = "varies" not in block.flags
    columns = next((int(f[8:]) for f in block.flags if f.startswith("columns=")), None)
    return [Command(block, text, tuple(out), exit_code, compare, columns) for text, out in parsed]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE))


def classify(block: Block) -> list[str]:
    """Why the extractor cannot tell what to do with this block (empty: it can)."""
    where = block.where
    if not block.language:
        return [f"{where}: a fence without a language"]
    if block.language not in RUN_LANGUAGES | QUIET_LANGUAGES:
        return [f"{where}: unknown language {block.language!r}"]
    if block.language == "console":
        known = {"varies"} | {f for f in block.flags if re.fullmatch(r"(exit|columns)=\d+", f)}
        problems = [f"{where}: unknown flag {f!r}" for f in block.flags if f not in known]
        first = next((line for line in block.lines if line.strip()), "")
        if not first.startswith("$ "):
            problems.append(f"{where}: a console block must start with a `$ ` command")
        return problems
    if block.language == "python":
        return []
    problems = []
    for offset, line in enumerate(block.lines, 1):
        stripped = line.strip()
        if not stripped or NOT_RUN in line:
            continue
        if block.language == "sh":
            if stripped.startswith("#"):
                continue
            words = stripped.split("#")[0].split()
            if words[0] == "make":
                missing = set(words[1:]) - make_targets()
                if missing or len(words) < 2:
                    problems.append(f"{where}+{offset}: no such make target: {stripped}")
                continue
            problems.append(f"{where}+{offset}: neither `make TARGET` nor `{NOT_RUN} …`")
        elif COMMAND_LIKE.match(line):
            problems.append(f"{where}+{offset}: a command in a {block.language} block")
    return problems


def collect() -> tuple[list[Block], list[str]]:
    found, problems = [], []
    for page in doc_pages():
        page_blocks, page_problems = blocks(page)
        found += page_blocks
        problems += page_problems
    return found, problems


BLOCKS, _ = collect()
COMMANDS = [c for b in BLOCKS if b.language == "console" for c in commands(b)]
PYTHON = [b for b in BLOCKS if b.language == "python"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Workspace:
    """The folder every example runs in, and what each command gave."""

    folder: Path
    # bench's ceiling probes faked on an idle machine (tests/conftest.py): in the suite both
    # cores are busy, so real ones are never cached and each example would measure them again
    # (~9 CPU-s); tests/test_bench.py runs the real ones. --regenerate shows real ones.
    probes_faked: bool = False
    results: dict[tuple[str, int | None], Result] = field(default_factory=dict)

    def run(self, command: Command) -> Result:
        key = (command.text, command.columns)
        if key not in self.results:
            self.results[key] = self._run(command.text, command.columns)
        return self.results[key]

    def _env(self, columns: int | None) -> dict[str, str]:
        return {
            **os.environ,
            **ENV,
            **({"COLUMNS": str(columns)} if columns else {}),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
        }

    def _run(self, command: str, columns: int | None) -> Result:
        if columns:
            return self._in_terminal(command, columns)
        plain = IN_PROCESS.fullmatch(command)
        if plain:
            argv, merge, target = plain.groups()
            result = self._in_process(shlex.split(argv)[1:])
            if merge:
                return Result(result.code, result.stdout + result.stderr, "")
            if target:
                (self.folder / target).write_text(result.stdout)
                return Result(result.code, "", result.stderr)
            return result
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.folder,
            env=self._env(None),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def _in_terminal(self, command: str, columns: int) -> Result:
        """stdout a pseudo-terminal `columns` wide, as a person sees it (stderr a pipe)."""
        import fcntl
        import pty
        import struct
        import termios

        reader, writer = pty.openpty()
        fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.folder,
            env=self._env(columns),
            stdin=subprocess.DEVNULL,
            stdout=writer,
            stderr=subprocess.PIPE,
        )
        os.close(writer)
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the terminal's last writer is gone
            while chunk := os.read(reader, 65536):
                chunks.append(chunk)
        os.close(reader)
        stderr = process.stderr.read().decode() if process.stderr else ""
        code = process.wait(timeout=600)
        return Result(code, b"".join(chunks).decode().replace("\r\n", "\n"), stderr)

    def _in_process(self, argv: list[str]) -> Result:
        from typer.testing import CliRunner

        from effnet_cli.cli.app import main
        from tests.conftest import fake_load, fake_probes

        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(self.folder)
            if self.probes_faked:
                fake_load(patch), fake_probes(patch)
            for name, value in ENV.items():
                patch.setenv(name, value)
            with CliRunner().isolation() as (out, err, _):
                code = main(argv)
                stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        return Result(code, stdout, stderr)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    folder = tmp_path_factory.mktemp("docs")
    (folder / ".cache").mkdir()
    os.environ.setdefault("EFFNET_CACHE_DIR", str(folder / ".cache"))
    return Workspace(folder, probes_faked=True)


def matches(expected: tuple[str, ...], actual: str) -> bool:
    """The output shown equals the output, `…` lines standing for any number of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "…" else re.escape(line.rstrip()) + r"\n"
        for line in _trim(list(expected))
    )
    text = "".join(line.rstrip() + "\n" for line in _trim(actual.splitlines()))
    return re.fullmatch(pattern, text) is not None


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def run_through(workspace: Workspace, index: int) -> Result:
    """Run every command up to `index` (the earlier ones make its files), checking each exit."""
    for earlier in COMMANDS[:index]:
        result = workspace.run(earlier)
        assert result.code == earlier.exit, (
            f"{earlier.block.where}: `{earlier.text}`, which a later example needs, "
            f"exited {result.code}:\n{result.stderr[-3000:]}"
        )
    return workspace.run(COMMANDS[index])


def test_every_block_is_classified():
    found, problems = collect()
    problems += [p for block in found for p in classify(block)]
    assert found, "no code blocks found"
    assert not problems, "\n".join(problems)


def test_the_pages_exist():
    missing = [str(p.relative_to(ROOT)) for p in doc_pages() if not p.exists()]
    assert not missing
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=[f"{c.block.where}" for c in COMMANDS])
def test_command_runs_as_written(workspace, index):
    command = COMMANDS[index]
    result = run_through(workspace, index)
    assert result.code == command.exit, (
        f"`{command.text}` exited {result.code}, documented {command.exit}:\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    if command.compare:
        shown = result.stdout + (result.stderr if command.exit else "")
        assert matches(command.expected, shown), (
            f"{command.block.where}: the output of `{command.text}` is not what the page "
            f"shows; it is now:\n{shown}"
        )


def python_key(block: Block) -> str:
    """A python block's name in PYTHON_CHECKS: its page and its place among the page's python
    blocks (`docs/python-api.md#1`), which edits elsewhere on the page leave alone."""
    same_page = [b for b in PYTHON if b.page == block.page]
    return f"{_name(block.page)}#{same_page.index(block) + 1}"


def _python_api_example(namespace: dict, printed: str) -> None:
    """docs/python-api.md: the count printed (analytic, no model built) is the one Keras counts
    on the model the block builds, and that model is the spec's: 10 classes at 64 px."""
    model = namespace["model"]
    assert printed.split() == [str(model.count_params())], printed
    assert tuple(model.input.shape) == (None, 64, 64, 3)
    assert tuple(model.output.shape) == (None, 10)


# What each ```python block must print and leave bound, against what its page says: a block's
# output is checked like a console block's, not discarded.
PYTHON_CHECKS: dict[str, Callable[[dict, str], None]] = {
    "docs/python-api.md#1": _python_api_example,
}


def test_every_python_block_has_a_check():
    """No block runs unchecked, and no check outlives its block."""
    assert sorted(python_key(b) for b in PYTHON) == sorted(PYTHON_CHECKS)


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_runs_and_gives_what_the_page_says(workspace, block, monkeypatch):
    check = PYTHON_CHECKS.get(python_key(block))
    assert check is not None, f"{block.where}: nothing checks this block (PYTHON_CHECKS)"
    monkeypatch.chdir(workspace.folder)
    namespace = {"__name__": "__docs__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile("\n".join(block.lines), block.where, "exec"), namespace)
    check(namespace, printed.getvalue())


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    found, _ = blocks(page)
    fenced = {b.line + i for b in found for i in range(len(b.lines) + 2)}
    return {
        _slug(line.lstrip("#"))
        for number, line in enumerate(page.read_text().splitlines(), 1)
        if line.startswith("#") and number not in fenced
    }


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def broken_links(page: Path) -> list[str]:
    """The relative links of a page (outside code) whose file or heading does not exist."""
    found, _ = blocks(page)
    fenced = {b.line + i for b in found for i in range(len(b.lines) + 2)}
    prose = "\n".join(
        line for number, line in enumerate(page.read_text().splitlines(), 1)
        if number not in fenced
    )  # fmt: skip
    broken = []
    for target in LINK.findall(re.sub(r"`[^`\n]*`", "", prose)):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", all_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page):
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_a_broken_link_is_seen(tmp_path):
    (tmp_path / "other.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-heading) [a\nlink](missing.md) [x](other.md#nope)\n"
        "[self](#top) `[code](missing.md)`\n\n# Top\n```text\n[in code](missing.md)\n```\n"
    )
    assert broken_links(page) == ["missing.md (no such file)", "other.md#nope (no such heading)"]


def test_the_extractor_sees_what_it_must(tmp_path):
    """The rules above, on a page made to break each."""
    page = tmp_path / "page.md"
    page.write_text(
        "```\nls\n```\n```bash\nls\n```\n```console\noutput first\n```\n"
        "```sh\nmake no-such-target\neffnet doctor\nmake test\n"
        "effnet build --weights ~/w.h5  # not run: your file\n```\n"
        "```text\n$ effnet doctor\n```\n\n    $ effnet summary\n"
    )
    found, problems = blocks(page)
    problems += [p for block in found for p in classify(block)]
    assert len(problems) == 7, problems
    assert matches(("a", "…", "d"), "a\nb\nc\nd\n")
    assert matches(("a  ", "…", "b"), "a\nb\n")
    assert not matches(("a", "b"), "a\nb\nc\n")


def regenerate() -> None:
    """Run every example in a fresh folder and write each output the pages show that differs
    (and every `varies` one) back into the pages: `python tests/test_docs.py --regenerate`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="effnet-docs-") as folder:
        os.environ.setdefault("EFFNET_CACHE_DIR", str(Path(folder) / ".cache"))
        workspace = Workspace(Path(folder))
        for page in doc_pages():
            text = page.read_text().splitlines()
            page_blocks = [b for b in blocks(page)[0] if b.language == "console"]
            bodies = []
            for block in page_blocks:  # in order: a block may use an earlier block's files
                body = []
                for command in commands(block):
                    result = workspace.run(command)
                    shown = result.stdout + (result.stderr if command.exit else "")
                    print(f"{block.where}: exit {result.code}: {command.text}", file=sys.stderr)
                    keep = command.compare and matches(command.expected, shown)
                    output = list(command.expected) if keep else _trim(shown.splitlines())
                    body += [f"$ {command.text}", *(line.rstrip() for line in output)]
                bodies.append(body)
            for block, body in reversed(list(zip(page_blocks, bodies, strict=True))):
                text[block.line : block.line + len(block.lines)] = body
            page.write_text("\n".join(text) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    regenerate()
