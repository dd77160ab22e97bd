"""The package as a wheel: built offline, installed into a fresh environment outside the repository, it runs every
console command from its own files, the presets included.

Reinstalling torch would take minutes, so the fresh environment sees the project environment's packages through
a ``.pth`` file with one plain path line. Python appends such a line to ``sys.path`` without reading the ``.pth``
files in that folder, so the editable install's finder, which maps ``continuous_gnn`` to this checkout, never
runs there: the package can only come from the wheel (checked before and after installing it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "tune", "reproduce", "solvers", "study", "bench")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
    return env


def _run(argv: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{done.args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict:
    """Build the wheel and install it into a fresh virtual environment; every path lies outside the repository."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the sources, so that the build writes nothing (build/, *.egg-info) into the checkout.
    source = tmp / "source"
    shutil.copytree(REPO / "continuous_gnn", source / "continuous_gnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    _ok(_run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-build-isolation", "--no-index",
              "--quiet", "--wheel-dir", tmp / "dist"], cwd=tmp))
    [wheel] = (tmp / "dist").glob("continuous_gnn-*.whl")

    venv = tmp / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp))
    python = venv / "bin" / "python"
    site = Path(_ok(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)).strip())
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    find = "import importlib.util; print(importlib.util.find_spec('continuous_gnn'))"
    assert _ok(_run([python, "-c", find], cwd=tmp)).strip() == "None", "the checkout must be invisible"
    # pip itself comes from the project environment, through the .pth line; it installs into this one.
    _ok(_run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", wheel], cwd=tmp))
    return {"tmp": tmp, "wheel": wheel, "python": python, "site": site, "bin": venv / "bin"}


def test_the_wheel_holds_every_module_and_data_file(wheel_env):
    names = set(zipfile.ZipFile(wheel_env["wheel"]).namelist())
    package = REPO / "continuous_gnn"
    files = {p.relative_to(REPO).as_posix() for p in package.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".toml")}
    assert files - names == set(), "every module and preset of the checkout ships in the wheel"
    assert {"continuous_gnn/presets/graff/texas.toml", "continuous_gnn/presets/search/graff.toml",
            "continuous_gnn/presets/studies/fresh.toml", "continuous_gnn/benchmarks/solvers.py",
            "continuous_gnn/data/SHA256SUMS"} <= names
    shipped = zipfile.ZipFile(wheel_env["wheel"]).read("continuous_gnn/data/SHA256SUMS")
    assert shipped == (package / "data" / "SHA256SUMS").read_bytes(), "the downloads' checksums ship unchanged"
    # the MIT licence asks for its notice in every copy
    [license_file] = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")
                      or name.endswith(".dist-info/LICENSE")]
    assert zipfile.ZipFile(wheel_env["wheel"]).read(license_file) == (REPO / "LICENSE").read_bytes()


#: What the installed package reports about itself (where it was imported from and its packaged configurations)
#: and what its command line prints for every subcommand's ``--help`` and for ``--version``: one interpreter for
#: all of them, since each spends its seconds importing torch and torch_geometric.
_WHERE = ("import contextlib, io, json, continuous_gnn\n"
          "from continuous_gnn.cli import main\n"
          "from continuous_gnn.training.presets import available_presets, presets_dir, study_config\n"
          "printed = {}\n"
          "for argv in [[command, '--help'] for command in " + repr(list(COMMANDS)) + "] + [['--version']]:\n"
          "    buffer = io.StringIO()\n"
          "    with contextlib.redirect_stdout(buffer):\n"
          "        try:\n"
          "            status = main(argv)\n"
          "        except SystemExit as exit:\n"
          "            status = exit.code\n"
          "    printed[argv[0]] = [status, buffer.getvalue()]\n"
          "print(json.dumps({'file': continuous_gnn.__file__, 'presets': available_presets(),\n"
          "                  'dir': str(presets_dir()), 'fresh_hidden': study_config('fresh').hidden,\n"
          "                  'printed': printed}))")


@pytest.fixture(scope="module")
def quick_calls(wheel_env) -> dict:
    """The console script's ``continuous-gnn --help`` (the entry point itself) and :data:`_WHERE`, run side by
    side: ``{key: stdout}``, with every other ``--help`` and ``--version`` under ``where``'s ``printed``."""
    calls = {"--help": [str(wheel_env["bin"] / "continuous-gnn"), "--help"],
             "where": [str(wheel_env["python"]), "-c", _WHERE]}
    running = {key: subprocess.Popen(argv, cwd=wheel_env["tmp"], env=_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for key, argv in calls.items()}
    results = {}
    for key, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"{calls[key]}: {stderr}"
        results[key] = stdout
    return results


def test_the_installed_package_comes_from_the_wheel_and_finds_its_presets(wheel_env, quick_calls):
    found = json.loads(quick_calls["where"])
    site = str(wheel_env["site"])
    assert found["file"].startswith(site) and found["dir"].startswith(site), found
    assert not found["file"].startswith(str(REPO))
    from continuous_gnn.training.presets import available_presets

    # the wheel ships every preset the source tree has, and nothing else
    assert found["presets"] == available_presets() and found["fresh_hidden"] == 16


def test_every_console_command_answers_help(quick_calls):
    top = quick_calls["--help"]
    assert top.startswith("usage: continuous-gnn ") and all(command in top for command in COMMANDS)
    printed = json.loads(quick_calls["where"])["printed"]
    for command in COMMANDS:
        status, text = printed[command]
        assert status == 0 and text.startswith(f"usage: continuous-gnn {command} "), printed[command]
    from continuous_gnn import __version__

    assert printed["--version"] == [0, f"continuous-gnn {__version__}\n"]


@pytest.mark.data
def test_a_preset_trains_from_the_wheel(wheel_env, data_root, data_cache):
    out = wheel_env["tmp"] / "texas.json"
    argv = [wheel_env["bin"] / "continuous-gnn", "train", "--preset", "graff", "--dataset", "texas", "--splits", "0",
            "--epochs", "2", "--data-root", data_root, "--cache-dir", data_cache, "--out", out, "--quiet"]
    stdout = _ok(_run(argv, cwd=wheel_env["tmp"]))
    assert "population std over 1 split" in stdout and f"record {out}" in stdout
    record = json.loads(out.read_text())
    assert record["preset_file"] == str(wheel_env["site"] / "continuous_gnn" / "presets" / "graff" / "texas.toml")
    assert record["splits"][0]["epochs_run"] == 2 and record["config"]["hidden"] == 256
