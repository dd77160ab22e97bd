"""``continuous-gnn suite``: suite files, resumable runs matched by config, and the page."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from continuous_gnn.benchmarks.suite import available_suites, load_suite, run_config, suite_path
from continuous_gnn.cli import main
from continuous_gnn.training import RunConfig, finished_records, record_key, save_record


def test_packaged_suites_load_and_build_every_config():
    assert {"family"} <= set(available_suites())
    for name in available_suites():
        suite = load_suite(suite_path(name))
        for model in suite.models:
            for dataset in model.datasets:
                assert isinstance(run_config(model, dataset, suite.seeds[0]), RunConfig)


_MODEL = '[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["texas"]\n'
_ANCHOR = '[[anchors]]\nmodel = "{model}"\ndataset = "{dataset}"\nmean = 1.0\nsource = "x"\n{target}'


def test_dataset_names_of_models_and_anchors_meet_in_their_canonical_form(tmp_path):
    path = tmp_path / "names.toml"
    path.write_text('[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["Texas", "actor"]\n'
                    + _ANCHOR.format(model="a", dataset="TEXAS", target='target = "mean"\n')
                    + _ANCHOR.format(model="GCN", dataset="Actor", target=""))
    suite = load_suite(path)
    assert suite.models[0].datasets == ("texas", "film")
    assert [(a.model, a.dataset) for a in suite.anchors] == [("a", "texas"), ("GCN", "film")]


@pytest.mark.parametrize("text, message", [
    ('seeds = [1]\n', "at least one"),
    ('[[models]]\nlabel = "a"\npreset = "graff"\nbase = "graff"\ndatasets = ["texas"]\n', "exactly one of preset or base"),
    ('[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["texas"]\n[[anchors]]\nmodel = "a"\ndataset = "texas"\n'
     'mean = 1.0\nsource = "x"\ntarget = "best"\n', "target must be one of"),
    ('colour = 1\n', r"unknown keys \['colour'\]"),
    ('[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["texas"]\nseeds = [1, 1]\n', "model 'a': seeds must be "
     "distinct"),
    # anchors that would show nowhere on the page
    (_MODEL + _ANCHOR.format(model="a", dataset="cora", target=""), "model 'a' does not run 'cora' .* would show nowhere"),
    (_MODEL + _ANCHOR.format(model="A", dataset="texas", target='target = "mean"\n'),
     r"is a target, but no model of the suite is labelled 'A' \(did you mean 'a'\?\)"),
    (_MODEL + _ANCHOR.format(model="GCN", dataset="cora", target=""), "no model of the suite runs 'cora'"),
    ('[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["texsa"]\n', r"model 'a': unknown dataset 'texsa' "
     r"\(did you mean 'texas'\?\)"),
    ('[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["texas", "Texas"]\n', "model 'a' names a dataset twice"),
    ('page = 5\n' + _MODEL, "page must be a string"),
    ('[[models]]\nlabel = "a"\npreset = "graff"\nbase_dataset = "texas"\ndatasets = ["texas"]\n',
     "base_dataset names the dataset of a base preset"),
    ('[[models]]\nlabel = "a"\nbase = "graff"\nbase_dataset = "texsa"\ndatasets = ["texas"]\n',
     r"unknown dataset 'texsa'"),
])
def test_malformed_suites_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_suite(path)


def test_a_base_preset_of_another_dataset_starts_the_runs_on_each_of_the_models_datasets(tmp_path):
    path = tmp_path / "random.toml"
    path.write_text('seeds = [1]\n[[models]]\nlabel = "a"\nbase = "grand_l_row"\nbase_dataset = "Cora-LCC"\n'
                    'overrides = { epochs = 3 }\ndatasets = ["cora-lcc-random"]\n')
    model = load_suite(path).models[0]
    assert model.base_dataset == "cora-lcc"
    config = run_config(model, "cora-lcc-random", 1)
    preset = run_config(load_suite(suite_path("grand_attention")).model("GRAND-l (row)"), "cora-lcc", 1)
    assert config == preset.replace(dataset="cora-lcc-random", epochs=3)


def test_records_are_matched_by_config_not_by_file_name(tmp_path):
    config = RunConfig(dataset="texas", seed=3)
    from helpers import run_record

    record = run_record(config)
    save_record(record, tmp_path / "renamed-anything.json")
    (tmp_path / "junk.json").write_text("not json")
    found = finished_records(tmp_path)
    assert found == {record_key(config): tmp_path / "renamed-anything.json"}
    assert record_key(config.replace(seed=4)) not in found


@pytest.mark.data
def test_a_killed_suite_resumes_without_training_again(tmp_path, data_root, capsys):
    argv = ["suite", "family", "--datasets", "texas", "--models", "GRAFF,GRAND-l", "--splits", "0", "--epochs", "2",
            "--data-root", str(data_root), "--out-dir", str(tmp_path / "runs"), "--quiet"]
    assert main([*argv, "--page", str(tmp_path / "first.md")]) == 0
    records = sorted((tmp_path / "runs").glob("*.json"))
    assert len(records) == 2
    # Losing one run's record (a kill before it was written) retrains only that run.
    records[1].unlink()
    capsys.readouterr()
    assert main([*argv, "--page", str(tmp_path / "second.md")]) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 1 and "2 runs, 1 already" in out
    # The results equal those of the uninterrupted run (only the provenance lines and the times differ).
    first, second = ((tmp_path / n).read_text().split("## Time")[0].splitlines() for n in ("first.md", "second.md"))
    assert [line for line in first if not line.startswith(("Generated", "Records"))] == \
        [line for line in second if not line.startswith(("Generated", "Records"))]
    assert "| texas | GRAFF |" in "\n".join(first) and "Partial run" in "\n".join(first)
    assert json.loads(sorted((tmp_path / "runs").glob("*.json"))[0].read_text())["suite"] == "family"


@pytest.fixture
def torch_threads_restored():
    """``--threads`` sets this process's torch threads; later tests keep their own."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.data
def test_jobs_train_runs_split_by_split_in_parallel_processes_with_the_serial_results(tmp_path, data_root, capsys,
                                                                                      torch_threads_restored):
    argv = ["suite", "family", "--datasets", "texas", "--models", "GRAFF,GRAND-l", "--splits", "0,1", "--epochs", "3",
            "--data-root", str(data_root), "--quiet", "--page", "none"]
    assert main([*argv, "--out-dir", str(tmp_path / "serial"), "--threads", "1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--out-dir", str(tmp_path / "parallel"), "--jobs", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    # A line per split (two runs of two splits), then a line per run once its record is written.
    assert "2 jobs at a time" in out and out.count("test ") == 6 and out.count(" split ") == 4

    def results(folder):
        return {path.name: [{k: v for k, v in split.items() if k not in ("wall_time", "epoch_time")}
                            for split in json.loads(path.read_text())["splits"]]
                for path in sorted((tmp_path / folder).glob("*.json"))}

    assert results("parallel") == results("serial") and len(results("serial")) == 2
    assert len(list((tmp_path / "parallel" / "splits").glob("*.json"))) == 4
    for path in (tmp_path / "parallel").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["config"]["splits"] == [0, 1] and record["aggregate"]["num_splits"] == 2


@pytest.mark.data
@pytest.mark.slow  # 18 s; the serial suite's kill and resume stays in the default run
def test_a_killed_parallel_suite_keeps_the_splits_it_finished(tmp_path, data_root, capsys, torch_threads_restored):
    argv = ["suite", "family", "--datasets", "texas", "--models", "GRAFF", "--splits", "0-2", "--epochs", "3",
            "--data-root", str(data_root), "--quiet", "--page", "none", "--out-dir", str(tmp_path / "runs"),
            "--jobs", "2", "--threads", "1"]
    assert main(argv) == 0
    (run,) = (tmp_path / "runs").glob("*.json")
    first = json.loads(run.read_text())
    # A kill after two of the three splits: the run's record and one split's record were never written.
    run.unlink()
    sorted((tmp_path / "runs" / "splits").glob("*.json"))[1].unlink()
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("done before") == 2 and out.count(" split ") == 3
    second = json.loads(run.read_text())
    assert [s["test_metric"] for s in second["splits"]] == [s["test_metric"] for s in first["splits"]]
    assert [s["split"] for s in second["splits"]] == [0, 1, 2]


def _split_results(record):
    return [{k: v for k, v in split.items() if k not in ("wall_time", "epoch_time")} for split in record["splits"]]


@pytest.mark.data
def test_a_parallel_suites_splits_are_kept_by_a_serial_rerun(tmp_path, data_root, capsys, torch_threads_restored):
    argv = ["suite", "family", "--datasets", "texas", "--models", "GRAFF", "--splits", "0-2", "--epochs", "2",
            "--data-root", str(data_root), "--quiet", "--page", "none", "--out-dir", str(tmp_path / "runs"),
            "--threads", "1"]
    assert main([*argv, "--jobs", "2"]) == 0
    (run,) = (tmp_path / "runs").glob("*.json")
    first = json.loads(run.read_text())
    splits = sorted((tmp_path / "runs" / "splits").glob("*.json"))
    texts = [path.read_text() for path in splits]
    # Killed after its splits but before their run's record: a serial rerun trains nothing.
    run.unlink()
    capsys.readouterr()
    assert main([*argv, "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 runs, 1 already in" in out and "done before (its 3 split records in splits/)" in out
    assert "test " not in out.split("done before")[0] and [path.read_text() for path in splits] == texts
    assert _split_results(json.loads(run.read_text())) == _split_results(first)
    # Killed after two of the splits: a serial rerun trains only the third, as a split of its own.
    run.unlink()
    splits[1].unlink()
    capsys.readouterr()
    assert main([*argv, "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 runs, 0 already in" in out and "2 splits of 1 more in splits/" in out
    assert out.count("done before") == 2 and out.count(" split 1 ") == 1 and "split 1   test" in out
    assert splits[1].is_file() and [splits[0].read_text(), splits[2].read_text()] == [texts[0], texts[2]]
    assert _split_results(json.loads(run.read_text())) == _split_results(first)


@pytest.mark.slow  # two --jobs suites in worker processes: about 12 s
@pytest.mark.data
def test_parallel_split_records_of_other_flags_under_the_same_name_are_not_merged(tmp_path, data_root, capsys,
                                                                                    torch_threads_restored):
    argv = ["suite", "family", "--datasets", "texas", "--models", "GRAFF", "--splits", "0", "--data-root",
            str(data_root), "--quiet", "--page", "none", "--out-dir", str(tmp_path / "runs"), "--threads", "1",
            "--jobs", "2"]
    assert main([*argv, "--epochs", "1"]) == 0
    # The second split record is numbered beside the first; its run is formed from it, not from the first.
    assert main([*argv, "--epochs", "2"]) == 0
    epochs = sorted(json.loads(p.read_text())["config"]["epochs"] for p in (tmp_path / "runs").glob("*.json"))
    assert epochs == [1, 2] and len(list((tmp_path / "runs" / "splits").glob("*.json"))) == 2


def _children(pid):
    """The processes whose parent is ``pid``, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # a suite of parallel workers started, killed and checked: 15 s on two cores
@pytest.mark.data
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the workers in /proc")
def test_the_workers_of_a_killed_suite_end_with_it(tmp_path, data_root):
    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "continuous_gnn", "suite", "family", "--datasets", "texas", "--models", "GRAFF",
            "--splits", "0-5", "--epochs", "10", "--data-root", str(data_root), "--quiet", "--page", "none",
            "--out-dir", str(out), "--threads", "1", "--jobs", "2", "--no-download"]
    suite = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers = []
    try:
        deadline = time.monotonic() + 90
        # A split's record means the workers are running; four splits are still to go.
        while not list((out / "splits").glob("*.json")):
            assert suite.poll() is None, suite.stderr.read().decode()
            assert time.monotonic() < deadline, "no split finished in 90 s"
            time.sleep(0.2)
        workers = _children(suite.pid)
        assert len(workers) >= 2
        suite.kill()  # SIGKILL, as an OOM kill or a scheduler's time limit
        suite.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        suite.kill()
        suite.stderr.close()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.data
def test_parallel_runs_start_with_the_most_work(data_root):
    import argparse

    from continuous_gnn.cli.suite import _plan
    from continuous_gnn.cli.suite_runs import Task as _Task
    from continuous_gnn.cli.suite_runs import work as _work

    suite = load_suite(suite_path("heterophily"))
    flags = argparse.Namespace(models="GRAFF,GRAFF-NL", datasets="minesweeper,tolokers", seeds=None, splits=None,
                               epochs=None)
    tasks = [_Task(label, dataset, seed, config, data_root, None, data_root, "heterophily", "c")
             for (label, dataset, seed), config in _plan(suite, flags).items()]
    work = dict(zip(((t.label, t.dataset) for t in tasks), _work(tasks)))
    # tolokers' runs took 21 and 22 min on docs/heterophily.md, minesweeper's 14 and 15: the longer ones first.
    assert min(work["GRAFF", "tolokers"], work["GRAFF-NL", "tolokers"]) > \
        max(work["GRAFF", "minesweeper"], work["GRAFF-NL", "minesweeper"])
    one_split = [_Task(t.label, t.dataset, t.seed, t.config.replace(splits=(0,)), data_root, None, data_root, "h", "c")
                 for t in tasks]
    assert [10 * w for w in _work(one_split)] == list(work.values())


@pytest.mark.parametrize("label, slug", [
    ("GRAFF, symmetric full Ω", "graff__symmetric_full_omega"),
    ("GRAFF-NL, per-step W and β", "graff_nl__per_step_w_and_beta"),
    ("GRAND-l (row)", "grand_l__row_"),
    ("Allen–Cahn, ε = 0.1", "allen_cahn__epsilon___0_1"),
    ("Café ∞", "cafe__"),
])
def test_record_file_names_are_ascii_and_name_greek_letters(label, slug):
    from continuous_gnn.cli.common import slug as file_slug

    assert file_slug(label) == slug and slug.isascii()


@pytest.mark.parametrize("flags, fragment", [(["--jobs", "0"], "--jobs must be at least 1, got 0"),
                                             (["--threads", "0"], "--threads must be positive")])
def test_bad_jobs_or_threads_are_usage_errors(flags, fragment, capsys, tmp_path):
    assert main(["suite", "family", *flags, "--page", "none", "--out-dir", str(tmp_path)]) == 2
    assert fragment in capsys.readouterr().err


def test_a_model_can_run_its_own_seeds(tmp_path):
    import argparse

    from continuous_gnn.cli.suite import _plan

    path = tmp_path / "own.toml"
    path.write_text('seeds = [5, 6, 7]\n[[models]]\nlabel = "a"\npreset = "graff"\ndatasets = ["texas"]\n'
                    '[[models]]\nlabel = "b"\npreset = "graff"\ndatasets = ["texas"]\nseeds = [5]\n')
    suite = load_suite(path)
    flags = dict(models=None, datasets=None, seeds=None, splits=None, epochs=None)
    assert sorted(_plan(suite, argparse.Namespace(**flags))) == [("a", "texas", 5), ("a", "texas", 6),
                                                                  ("a", "texas", 7), ("b", "texas", 5)]
    # --seeds chooses for every model.
    assert sorted(_plan(suite, argparse.Namespace(**{**flags, "seeds": "9"}))) == [("a", "texas", 9), ("b", "texas", 9)]
    # a config that cannot be built names the suite and the model
    path.write_text('[[models]]\nlabel = "c"\nbase = "graff"\noverrides = { activation = "sigmoid" }\n'
                    'datasets = ["texas"]\n')
    with pytest.raises(ValueError, match=r"^suite 'own', model 'c' on 'texas': .*sigmoid"):
        _plan(load_suite(path), argparse.Namespace(**flags))


@pytest.mark.parametrize("flags, fragment", [
    (["--models", "GRAFF,Nope"], "--models: unknown 'Nope'; choose from GRAFF, GRAND-l"),
    (["--datasets", "texas,"], "--datasets must be a comma-separated list without empty items"),
    (["--models", "GRAFF,GRAFF"], "--models lists an item twice"),
])
def test_a_bad_selection_is_a_usage_error_naming_the_choices(flags, fragment, capsys):
    assert main(["suite", "family", *flags, "--page", "none"]) == 2
    assert fragment in capsys.readouterr().err


def test_a_page_over_several_metrics_names_each_with_its_datasets():
    from continuous_gnn.benchmarks.suite import load_suite, suite_path
    from continuous_gnn.cli.suite_page import RunSummary, render

    suite = load_suite(suite_path("heterophily"))
    runs = [RunSummary("GRAFF", "minesweeper", 5000, "ok", "roc_auc", 90.0, 91.0, [90.0], [91.0], [3], 5),
            RunSummary("GRAFF", "chameleon-filtered", 5000, "ok", "accuracy", 40.0, 41.0, [40.0], [41.0], [3], 5)]
    page = render(suite, runs, command="continuous-gnn suite heterophily", started="2026-12-04", total=1.0,
                  partial=True, out_dir="runs")
    assert "Test metric (roc_auc on minesweeper; accuracy on chameleon-filtered) in %" in page
    only = render(suite, runs[:1], command="c", started="s", total=1.0, partial=True, out_dir="runs")
    assert "Test roc_auc in %" in only


def test_a_run_and_its_one_run_summary_row_show_the_same_test_mean(tmp_path):
    from continuous_gnn.cli.suite_page import RunSummary, render

    # The mean of these is 0.56885: 100 times it rounds to 56.89, the mean of the percentages to 56.88.
    tests = [0.4445, 0.3235, 0.6255, 0.6555, 0.9345, 0.209, 0.9895, 0.5655, 0.488, 0.453]
    record = {"config": {"dataset": "texas", "seed": 1, "epochs": 5},
              "splits": [{"test_metric": t, "val_metric": t, "best_epoch": 3} for t in tests],
              "aggregate": {"metric": "accuracy", "test_mean": sum(tests) / len(tests),
                            "val_mean": sum(tests) / len(tests), "wall_time": 1.0, "epoch_time_mean": 0.1}}
    run = RunSummary.from_record("GRAFF", record, "runs/texas.json")
    path = tmp_path / "one.toml"
    path.write_text('title = "t"\nseeds = [1]\n[[models]]\nlabel = "GRAFF"\npreset = "graff"\ndatasets = ["texas"]\n')
    page = render(load_suite(path), [run], command="c", started="s", total=1.0, partial=False, out_dir="runs")
    summary_row = next(line for line in page.splitlines() if line.startswith("| texas | GRAFF |"))
    run_row = next(line for line in page.splitlines() if line.startswith("| GRAFF | texas | 1 |"))
    assert "| 56.88 ± " in summary_row and "| 56.88 | 56.88 |" in run_row, (summary_row, run_row)


def test_a_row_with_a_goal_and_a_stretch_goal_shows_its_gap_to_each(tmp_path):
    from continuous_gnn.cli.suite_page import RunSummary, render

    path = tmp_path / "goals.toml"
    path.write_text('title = "t"\nseeds = [1]\n[[models]]\nlabel = "GRAFF"\npreset = "graff"\n'
                    'datasets = ["texas"]\n'
                    '[[anchors]]\nmodel = "GRAFF"\ndataset = "texas"\nmean = 80.0\nstd = 2.0\nsource = "goal"\n'
                    'target = "mean"\n'
                    '[[anchors]]\nmodel = "GRAFF"\ndataset = "texas"\nmean = 90.0\nstd = 1.0\nsource = "stretch"\n'
                    'target = "mean - std"\n')
    runs = [RunSummary("GRAFF", "texas", 1, "ok", "accuracy", 85.0, 86.0, [85.0], [86.0], [3], 5)]
    page = render(load_suite(path), runs, command="c", started="s", total=1.0, partial=False, out_dir="runs")
    assert "| 80.00 (mean); 89.00 (mean - std) | +5.00 ✓; -4.00 ✗ |" in page


def test_a_page_says_where_training_was_still_improving_when_it_stopped():
    from continuous_gnn.cli.suite_page import RunSummary, render

    suite = load_suite(suite_path("heterophily"))
    late = RunSummary("GRAFF", "minesweeper", 5000, "ok", "roc_auc", 90.0, 91.0, [90.0] * 4, [91.0] * 4,
                      [400, 391, 120, 361], 400)
    early = RunSummary("GRAFF", "tolokers", 5000, "ok", "roc_auc", 84.0, 84.0, [84.0] * 4, [84.0] * 4,
                       [180, 50, 60, 70], 200)
    page = render(suite, [late, early], command="c", started="s", total=1.0, partial=True, out_dir="runs")
    [note] = [line for line in page.splitlines() if line.startswith("Still improving when training stopped")]
    assert "GRAFF on minesweeper (3 of 4 splits)" in note and "tolokers" not in note
    quiet = render(suite, [early], command="c", started="s", total=1.0, partial=True, out_dir="runs")
    assert "Still improving" not in quiet


@pytest.mark.parametrize("best_epochs, epochs, expected", [
    ([91, 100], 100, True),   # past 90 % on both splits
    ([91, 10], 100, True),    # on half of the splits counts
    ([90, 100, 5], 100, False),  # epoch 90 is not past 90 %; one of three is not half
    ([], 100, False),
])
def test_still_improving_means_a_late_best_epoch_on_at_least_half_the_splits(best_epochs, epochs, expected):
    from continuous_gnn.training import still_improving

    assert still_improving(best_epochs, epochs) is expected


def test_the_time_section_gives_each_command_its_summed_run_time_and_its_wall_time():
    from continuous_gnn.cli.suite_page import RunSummary, render

    suite = load_suite(suite_path("heterophily"))

    def summary(dataset, started, wall_time, command):
        return RunSummary("GRAFF", dataset, 5000, "ok", "roc_auc", 90.0, 91.0, [90.0], [91.0], [3], 5,
                          wall_time=wall_time, started=started, command=command)

    side_by_side = "continuous-gnn suite heterophily --jobs 2"
    runs = [summary("tolokers", "2026-12-05T01:32:00+00:00", 750.0, side_by_side),
            summary("minesweeper", "2026-12-05T01:32:01+00:00", 510.0, side_by_side),
            summary("chameleon-filtered", "2026-12-05T01:40:31+00:00", 480.0, side_by_side),
            summary("squirrel-filtered", "2026-12-06T09:00:00+00:00", 90.0, "continuous-gnn suite heterophily")]
    page = render(suite, runs, command="c", started="s", total=1.0, partial=True, out_dir="runs")
    # 12.5 + 8.5 + 8.0 = 29.0 min summed; the last end is 01:48:31, 16.5 min after the first start.
    assert f"| `{side_by_side}` | 3 | 29.0 min | 16.5 min |" in page
    assert "| `continuous-gnn suite heterophily` | 1 | 1.5 min | 1.5 min |" in page
    unrecorded = render(suite, [summary("tolokers", "", 60.0, "")], command="c", started="s", total=1.0,
                        partial=True, out_dir="runs")
    assert "| (not recorded) | 1 | 1.0 min | – |" in unrecorded


def test_a_resumed_suite_counts_each_earlier_command_by_its_wall_time_not_its_summed_run_time():
    from continuous_gnn.cli.suite import _reused_time
    from continuous_gnn.cli.suite_page import RunSummary, wall_span

    def summary(started, wall_time, command):
        return RunSummary("GRAFF", "texas", 0, "ok", wall_time=wall_time, started=started, command=command)

    side_by_side = [summary("2026-12-05T01:00:00+00:00", 600.0, "a --jobs 2"),
                    summary("2026-12-05T01:00:00+00:00", 300.0, "a --jobs 2"),
                    summary("2026-12-05T01:05:00+00:00", 400.0, "a --jobs 2")]
    # 600 s side by side with 300 + 400 s: the command spanned 01:00 to 01:11:40, 700 s; an undated record counts
    # its run time.
    assert _reused_time(side_by_side) == 700.0
    assert _reused_time([*side_by_side, summary("", 50.0, "")]) == 750.0
    # Two commands side by side, 01:05 to 01:15 beside 01:00 to 01:11:40, are covered from 01:00 to 01:15, once;
    # a later one adds its own span, and one inside another's span adds nothing.
    beside = [summary("2026-12-05T01:05:00+00:00", 600.0, "b --jobs 1")]
    later = [summary("2026-12-05T02:00:00+00:00", 60.0, "c")]
    inside = [summary("2026-12-05T01:01:00+00:00", 60.0, "d")]
    assert _reused_time([*side_by_side, *beside]) == 900.0
    assert _reused_time([*side_by_side, *beside, *later, *inside]) == 960.0
    # The same command again, in a session 80 minutes later: its run adds its own 100 s, not the time between, on
    # the page's header and in its row of the Time section.
    again = [summary("2026-12-05T02:30:00+00:00", 100.0, "a --jobs 2")]
    assert _reused_time([*side_by_side, *again]) == 800.0
    assert wall_span([*side_by_side, *again]) == 800.0



def test_an_unusable_page_is_refused_before_any_run(tmp_path, capsys):
    (tmp_path / "file").write_text("keep me")
    flags = ["--datasets", "texas", "--splits", "0", "--epochs", "1", "--out-dir", str(tmp_path / "runs"),
             "--data-root", str(tmp_path / "no-data"), "--no-download"]
    assert main(["suite", "family", *flags, "--page", ""]) == 2
    assert "--page is empty; pass the markdown file to write, or 'none'" in capsys.readouterr().err
    for page, fragment in ((tmp_path / "file" / "p.md", "is a file, not a folder"), (tmp_path, "is a folder")):
        assert main(["suite", "family", *flags, "--page", str(page)]) == 2
        assert fragment in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and (tmp_path / "file").read_text() == "keep me"


@pytest.mark.data
def test_a_users_suite_writes_its_page_beside_itself_and_keeps_records_of_other_flags(tmp_path, data_root,
                                                                                      monkeypatch, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny.toml").write_text('page = "tiny.md"\n' + _MODEL.replace('"texas"', '"cornell"'))
    monkeypatch.chdir(tmp_path)  # neither the working folder nor the project's
    argv = ["suite", str(folder / "tiny.toml"), "--splits", "0", "--data-root", str(data_root), "--out-dir",
            str(tmp_path / "runs"), "--quiet"]
    assert main([*argv, "--epochs", "1"]) == 0
    assert (folder / "tiny.md").is_file() and not (tmp_path / "tiny.md").exists()
    # the same suite with other flags into the same folder keeps the first run's record beside its own
    assert main([*argv, "--epochs", "2"]) == 0
    epochs = sorted(json.loads(p.read_text())["config"]["epochs"] for p in (tmp_path / "runs").glob("*.json"))
    assert epochs == [1, 2]
    capsys.readouterr()
    assert main([*argv, "--epochs", "1"]) == 0  # and both still resume
    assert "done before" in capsys.readouterr().out
