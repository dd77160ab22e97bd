"""Tests for ``continuous-gnn reproduce`` (also experiments/reproduce.py): arguments and output paths checked before
any work, and no results page when no run succeeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from continuous_gnn.cli import main as cli_main

PROG = "continuous-gnn reproduce: error: "


def _argv(tmp_path: Path, data_root: Path, *extra: str, datasets: str = "texas", models: str = "graff") -> list[str]:
    """Tiny settings: one split, one epoch, records in tmp_path/runs, the page in tmp_path/results.md."""
    flags = {"--datasets": datasets, "--models": models, "--splits": "0", "--epochs": "1",
             "--data-root": str(data_root), "--cache-dir": str(tmp_path / "cache"),
             "--out-dir": str(tmp_path / "runs"), "--results": str(tmp_path / "results.md")}
    for key, value in zip(extra[::2], extra[1::2]):
        flags[key] = value
    return [item for pair in flags.items() for item in pair] + ["--quiet"]


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith(PROG), err
    return err[len(PROG):].strip()


@pytest.fixture
def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "empty-root"
    root.mkdir()
    return root


# --- arguments are checked before anything is created --------------------------------------------------------


def test_a_split_the_datasets_lack_fails_before_any_work(tmp_path, empty_root, capsys):
    assert cli_main(["reproduce", *_argv(tmp_path, empty_root, "--splits", "10", datasets="texas,cora")]) == 2
    assert _one_error_line(capsys.readouterr().err) == "--splits: split(s) [10] do not exist: texas has splits 0..9"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.md").exists()


def test_a_bad_seed_fails_before_the_out_dir_is_created(tmp_path, empty_root, capsys):
    assert cli_main(["reproduce", *_argv(tmp_path, empty_root, "--seed", "-1")]) == 2
    assert "seed must be" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


# --- output locations are checked before any work ------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "where", "message"),
    [
        ("--results", "folder", "is a folder; pass the markdown file to write"),
        ("--results", "file/x.md", "cannot be created: '{file}' is a file, not a folder"),
        ("--out-dir", "file", "is a file; pass a folder"),
        ("--out-dir", "file/sub", "cannot be created: '{file}' is a file, not a folder"),
    ],
)
def test_unusable_output_locations_fail_before_any_work(flag, where, message, tmp_path, empty_root, capsys):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("keep me")
    target = str(tmp_path / where)
    argv = _argv(tmp_path, empty_root, flag, target)
    assert cli_main(["reproduce", *argv]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert line.startswith(f"{flag} {target!r} ") and message.format(file=tmp_path / "file") in line
    assert captured.out == ""  # stopped before the runs started
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results.md").exists()
    assert (tmp_path / "file").read_text() == "keep me"


# --- no results page when nothing succeeded ------------------------------------------------------------------


def test_every_run_unavailable_exits_1_and_keeps_the_old_page(tmp_path, empty_root, capsys):
    page = tmp_path / "results.md"
    page.write_text("the last good table\n")
    assert cli_main(["reproduce", *_argv(tmp_path, empty_root, datasets="texas,cornell")]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("no run succeeded (2 unavailable;") and f"{page} was not written" in line
    assert page.read_text() == "the last good table\n"


def test_every_run_skipped_exits_1_through_the_cli(tmp_path, empty_root, capsys):
    # The tuned preset's search trained with seed 0, so the reproduction refuses it at that seed (before any data).
    argv = _argv(tmp_path, empty_root, "--seed", "0", models="graff_tuned")
    assert cli_main(["reproduce", *argv]) == 1
    captured = capsys.readouterr()
    assert "GRAFF-tuned skipped" in captured.out
    assert captured.err.count("\n") == 1 and "no run succeeded (1 failed or skipped;" in captured.err
    assert not (tmp_path / "results.md").exists()


@pytest.mark.data
def test_a_run_that_succeeds_still_writes_the_page_with_the_unavailable_ones(data_root, data_cache, tmp_path,
                                                                             capsys):
    argv = _argv(tmp_path, data_root, "--cache-dir", str(data_cache), datasets="texas,pubmed")
    assert cli_main(["reproduce", *argv]) == 0
    text = (tmp_path / "results.md").read_text()
    assert "| Texas |" in text and "PubMed unavailable" in text
    assert capsys.readouterr().err == ""
    rerun = text.split("Rerun (")[1].split("```bash\n")[1].split("\n```")[0]
    assert rerun.startswith("continuous-gnn reproduce ") and "--datasets texas,pubmed" in rerun  # the command run


def test_a_bad_download_timeout_is_refused_before_the_record_folder_is_made(tmp_path, empty_root, capsys):
    assert cli_main(["reproduce", *_argv(tmp_path, empty_root, "--download-timeout", "0")]) == 2
    assert "--download-timeout must be a positive, finite number" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()


def test_a_dataset_listed_twice_or_an_empty_page_is_refused(tmp_path, empty_root, capsys):
    assert cli_main(["reproduce", *_argv(tmp_path, empty_root, datasets="texas,texas")]) == 2
    assert _one_error_line(capsys.readouterr().err) == "--datasets: texas listed twice; name each once"
    assert cli_main(["reproduce", *_argv(tmp_path, empty_root, "--results", "")]) == 2
    assert "--results is empty" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()
