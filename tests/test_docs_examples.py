"""Every code block of README.md and the hand-written docs pages runs (or, for commands, parses) as written.

Python blocks of a page share one namespace and run in order, in a fresh working folder per page, so a page
reads as one program. Shell blocks are checked without training: ``continuous-gnn`` flags are parsed by the
real parser and ``train``/``tune`` configurations are resolved (presets and ``--config`` files read and
validated); ``make`` targets, ``pip`` extras and script paths must exist. Blocks marked ``run`` are executed.
See ``tests/doc_blocks.py`` for the markers.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
import tomllib
from configparser import ConfigParser
from pathlib import Path

import pytest
import torch
from conftest import find_data_root, skip_or_fail
from doc_blocks import CHECKED, ROOT, Block, blocks, commands, is_generated, pages

ALL_BLOCKS = [block for page in pages() for block in blocks(page)]


def _slow_command(block: Block) -> bool:
    """A ``bash run slow`` block: parsed by the default run, executed by the slow one."""
    return block.language == "bash" and {"run", "slow"} <= block.markers


def _params() -> list:
    params = []
    for block in ALL_BLOCKS:
        if block.language not in CHECKED:
            continue
        marks = []
        if "skip-test" in block.markers:
            marks.append(pytest.mark.skip(reason="marked skip-test on the page"))
        if "data" in block.markers:
            marks.append(pytest.mark.data)
        if _slow_command(block):
            params.append(pytest.param(block, False, id=f"{block.label}-parse", marks=marks))
        params.append(pytest.param(block, True, id=block.label,
                                   marks=marks + ([pytest.mark.slow] if "slow" in block.markers else [])))
    return params


class PageRun:
    """The state a page's blocks share: one namespace, one working folder, the blocks already run."""

    def __init__(self, page: Path, workdir: Path) -> None:
        self.page = page
        self.workdir = workdir
        self.namespace: dict = {"__name__": f"__docs_{page.stem}__"}
        self.done: set[tuple[int, bool]] = set()  # (line, executed): a slow command may be parsed, then run
        self.output: dict[tuple[int, bool], str] = {}
        self.failed: str | None = None  # the first block that failed: later ones would fail for its reason


_RUNS: dict[Path, PageRun] = {}


@pytest.fixture
def docs_env(tmp_path_factory, monkeypatch):
    """Environment of the examples: real data root, a private processing cache, a non-interactive backend."""
    cache_home = tmp_path_factory.getbasetemp() / "docs-xdg-cache"
    cache_home.mkdir(exist_ok=True)
    # matplotlib keeps its font list under the cache home too: keep using the existing one (building it
    # takes seconds).
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    monkeypatch.setenv("MPLCONFIGDIR", os.environ.get("MPLCONFIGDIR") or str(user_cache / "matplotlib"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("CONTINUOUS_GNN_DATA", str(find_data_root()))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The examples are small: with more threads on a shared machine they mostly wait for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path_factory
    torch.set_num_threads(threads)


def _page_run(block: Block, factory) -> PageRun:
    if block.page not in _RUNS:
        _RUNS[block.page] = PageRun(block.page, factory.mktemp(f"docs-{block.page.stem}"))
    return _RUNS[block.page]


@contextlib.contextmanager
def _inside(folder: Path):
    """Run in the page's working folder, with its modules importable, as from a shell opened there."""
    previous = Path.cwd()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        os.chdir(previous)


def _run_block(state: PageRun, block: Block, execute: bool) -> str:
    """Run one block in the page's state (a ``bash run`` block only parsed unless ``execute``); returns what it
    printed."""
    key = (block.line, execute)
    if key in state.done:
        return state.output[key]
    if state.failed is not None:
        raise AssertionError(f"{block.label} was not run: the earlier block {state.failed} of its page failed")
    if "file" in block.options:
        target = state.workdir / block.options["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
    printed = io.StringIO()
    try:
        with _inside(state.workdir), torch.random.fork_rng(), contextlib.redirect_stdout(printed):
            if block.language == "python":
                exec(compile(block.code, block.label, "exec"), state.namespace)
            elif block.language == "toml":
                tomllib.loads(block.code)
            elif block.language == "bash":
                for line in commands(block.code):
                    check_command(line, run="run" in block.markers and execute, where=block.label)
    except BaseException:
        state.failed = block.label
        raise
    state.done.add(key)
    state.output[key] = printed.getvalue()
    return printed.getvalue()


def run_through(block: Block, factory, execute: bool = True) -> tuple[PageRun, str]:
    """Run the page's checked blocks up to and including ``block`` (earlier ones once), as the page reads.

    Before a slow block every earlier block runs; before the others, earlier slow blocks do not (slow commands
    are parsed): only slow blocks may depend on slow ones.
    """
    needed = [b for b in blocks(block.page) if b.line <= block.line and "skip-test" not in b.markers]
    if any("data" in b.markers for b in needed) and not find_data_root().is_dir():
        skip_or_fail(f"{block.label} (or an earlier block of its page) needs the benchmark data; "
                     "set CONTINUOUS_GNN_DATA")
    state = _page_run(block, factory)
    slow = execute and "slow" in block.markers
    for earlier in blocks(block.page):
        if earlier.language not in CHECKED or "skip-test" in earlier.markers:
            continue
        if earlier.line == block.line:
            return state, _run_block(state, earlier, execute)
        if slow or "slow" not in earlier.markers:
            _run_block(state, earlier, True)
        elif _slow_command(earlier):
            _run_block(state, earlier, False)
    raise AssertionError(f"{block.label} is not a checked block of its page")


# ---------------------------------------------------------------------- shell commands


def _makefile_names() -> tuple[set[str], set[str]]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, flags=re.MULTILINE))
    return targets, variables


def _extras() -> set[str]:
    config = ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    return set(config["options.extras_require"])


def check_cli(argv: list[str], *, run: bool, where: str) -> None:
    """Parse a ``continuous-gnn`` command line; resolve a train/tune configuration; run it with ``run``."""
    from continuous_gnn import cli

    if run:
        status = cli.main(argv)
        assert status == 0, f"{where}: `continuous-gnn {shlex.join(argv)}` exited with {status}"
        return
    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv)
    except cli.UsageError as err:
        raise AssertionError(f"{where}: `continuous-gnn {shlex.join(argv)}`: {err}") from None
    except SystemExit as done:  # --help
        assert done.code == 0, f"{where}: `continuous-gnn {shlex.join(argv)}` exited with {done.code}"
        return
    if args.command in ("train", "tune"):
        notes = io.StringIO()
        try:
            with contextlib.redirect_stderr(notes):
                cli.resolve_cli_config(args)
        except (cli.UsageError, ValueError, OSError) as err:
            raise AssertionError(f"{where}: `continuous-gnn {shlex.join(argv)}`: {err}") from None
        # A documented command whose own configuration drops options would teach the reader options that do nothing.
        assert "do not apply" not in notes.getvalue(), f"{where}: `continuous-gnn {shlex.join(argv)}`: {notes.getvalue()}"


def check_command(line: str, *, run: bool, where: str) -> None:
    """Check one shell command of the docs (see the module docstring)."""
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]  # an environment assignment before the command
    if words and words[-1] == "&":
        words = words[:-1]  # started in the background
    if not words:
        return
    program, rest = words[0], words[1:]
    if program == "torchrun":
        assert "-m" in rest and rest[rest.index("-m") + 1:][:1] == ["continuous_gnn"], \
            f"{where}: `{line}` does not start continuous_gnn (torchrun ... -m continuous_gnn ...)"
        check_cli(rest[rest.index("-m") + 2:], run=False, where=where)
        return
    if program in ("continuous-gnn", ".venv/bin/continuous-gnn"):
        check_cli(rest, run=run, where=where)
    elif program in ("python", "python3", ".venv/bin/python") and rest[:2] == ["-m", "continuous_gnn"]:
        check_cli(rest[2:], run=run, where=where)
    elif program in ("python", "python3", ".venv/bin/python") and rest[:2] == ["-m", "pytest"]:
        for path in (word.split("::")[0] for word in rest[2:] if not word.startswith("-")):
            assert (ROOT / path).exists(), f"{where}: `{line}` names {path}, which does not exist"
    elif program in ("python", "python3", ".venv/bin/python") and rest and rest[0].endswith(".py"):
        assert (ROOT / rest[0]).is_file(), f"{where}: `{line}` runs {rest[0]}, which does not exist"
    elif program == "make":
        targets, variables = _makefile_names()
        for word in rest:
            name = word.split("=", 1)[0]
            known = variables if "=" in word else targets
            assert name in known, f"{where}: `{line}`: the Makefile has no {'variable' if '=' in word else 'target'} {name}"
    elif program in ("pip", ".venv/bin/pip") or rest[:2] == ["-m", "pip"]:
        for word in rest:
            for extra in re.findall(r"\[([\w,-]+)\]", word):
                for name in extra.split(","):
                    assert name in _extras(), f"{where}: `{line}`: setup.cfg has no extra {name!r}"
    elif program == "export":
        assert all("=" in word for word in rest), f"{where}: `{line}` is not VAR=value"
    else:
        raise AssertionError(f"{where}: no check for `{program}`; check it here or mark the block skip-test")


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize(("block", "execute"), _params())
def test_block(block: Block, execute: bool, docs_env) -> None:
    run_through(block, docs_env, execute)


def test_pages_found() -> None:
    found = {page.relative_to(ROOT).as_posix() for page in pages()}
    for page in ("README.md", "docs/index.md", "docs/quickstart.md", "docs/concepts.md", "docs/training.md",
                 "docs/datasets.md", "docs/tutorials/custom-energy.md", "docs/tutorials/choosing-a-solver.md",
                 "docs/tutorials/oversmoothing.md", "docs/tutorials/reproduce.md",
                 "docs/tutorials/grand-family.md"):
        assert page in found
    # A marker comment, or a suite's or study's provenance line with its date.
    for page in ("docs/results.md", "docs/heterophily.md", "docs/heterophily_depth.md"):
        assert page not in found and is_generated(ROOT / page)
    assert not is_generated(ROOT / "docs/training.md")
    assert sum(block.language == "python" for block in ALL_BLOCKS) >= 20


def test_block_syntax(tmp_path) -> None:
    probe = tmp_path / "probe.md"
    probe.write_text("# t\n\n```toml file=my.toml\na = 1\n```\n\n```{toctree}\nx\n```\n\n"
                     "```python slow data\nx = 1\n```\n", encoding="utf-8")
    found = blocks(probe)
    assert [(b.language, b.line, sorted(b.markers), b.options) for b in found] == [
        ("toml", 3, [], {"file": "my.toml"}), ("python", 11, ["data", "slow"], {})]
    assert found[1].code == "x = 1\n"
    for info, message in (("pyton", "unknown code block language"), ("python slwo", "unknown block marker"),
                          ("", "without a language"), ("toml out=x", "unknown block option")):
        probe.write_text(f"# t\n\n```{info}\nx = 1\n```\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            blocks(probe)
    probe.write_text("# t\n\n```python\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        blocks(probe)


def test_shell_checks_catch_mistakes() -> None:
    for line, message in (("continuous-gnn train --dataset cora --step-sise 0.5", "unrecognized arguments: --step-sise"),
                          ("continuous-gnn train --dataset cora --method dopri5 --step-size 0.5", "step_size"),
                          ("continuous-gnn train --preset graff", "needs a dataset"),
                          ("make dmeo", "no target dmeo"),
                          ("pip install .[dcos]", "no extra 'dcos'"),
                          ("python experiments/nothing.py", "does not exist"),
                          ("rm -rf /", "no check for `rm`")):
        with pytest.raises(AssertionError, match=re.escape(message)):
            check_command(line, run=False, where="probe")
    check_command("continuous-gnn train --preset graff --dataset cora --splits 0 --epochs 3", run=False, where="probe")
    check_command("make test TORCH_VERSION=2.13.0", run=False, where="probe")


def test_readme_quickstart(docs_env) -> None:
    """The README's Quickstart runs as written: shape and solve statistics printed, its own assert held."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    headings = [number for number, line in enumerate(lines, 1) if line.startswith("## ")]
    start = next((number for number in headings if lines[number - 1] == "## Quickstart"), None)
    assert start is not None, "README.md has no '## Quickstart' section"
    end = next((number for number in headings if number > start), len(lines) + 1)
    quickstart = [b for b in ALL_BLOCKS
                  if b.page == ROOT / "README.md" and b.language == "python" and start < b.line < end]
    assert quickstart, "the Quickstart section has no ```python block"
    block = quickstart[0]
    assert "cg.integrate" in block.code and "GRAFFConv" in block.code
    state, printed = run_through(block, docs_env)
    # The block prints the final shape and solve statistics, and its own assert held.
    assert "torch.Size([4, 8])" in printed
    assert state.namespace["sol"].stats.nfe_forward > 0
    assert state.namespace["euler"].stats.steps_accepted == 4


def test_api_reference_covers_every_public_module() -> None:
    """docs/conf.py writes a reference page for each public module, the one the package shadows included."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_conf", ROOT / "docs" / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    modules = conf.public_modules()
    files = {path.relative_to(ROOT / "continuous_gnn").with_suffix("").as_posix().replace("/", ".")
             for path in (ROOT / "continuous_gnn").rglob("*.py")}
    expected = {"continuous_gnn" + ("" if name == "__init__" else "." + name.removesuffix(".__init__"))
                for name in files if not any(part.startswith("_") and part != "__init__" for part in name.split("."))}
    assert set(modules) == expected
    assert "continuous_gnn.ode.integrate" in modules and "continuous_gnn._checks" not in modules
    page = conf._module_page("continuous_gnn.ode", modules)
    assert ".. automodule:: continuous_gnn.ode" in page and "   continuous_gnn.ode.integrate" in page
    # a package's page lists what it re-exports, classes and constants alike, each linked to its definition
    top = conf._module_page("continuous_gnn", modules)
    assert "* :py:obj:`~continuous_gnn.Graph` — A normalised graph operator" in top
    assert "* :py:obj:`~continuous_gnn.METHODS`" in top and "__version__" not in top
    assert ":py:obj:`~continuous_gnn.energies`" not in top  # subpackages are listed as modules instead
    # a short reference is looked up where it is written, then outwards
    assert conf._candidates("Graph", "continuous_gnn.diagnostics.mad", None)[:2] == [
        "continuous_gnn.diagnostics.mad.Graph", "continuous_gnn.diagnostics.Graph"]
    assert conf._candidates("continuous_gnn.Graph", "continuous_gnn.ode", None) == ["continuous_gnn.Graph"]
    assert "continuous_gnn.ode.methods.METHODS" in conf._homes("continuous_gnn.METHODS")  # where it is documented
    assert conf._canonical("continuous_gnn.Graph") == "continuous_gnn.graph.Graph"
    assert conf._canonical("continuous_gnn.integrate") == "continuous_gnn.ode.integrate.integrate"
