"""Checkpoints and resuming (continuous_gnn.training.resume): an interrupted run resumed from its checkpoints
ends with the result of an uninterrupted one, bit for bit; unreadable, foreign and unsafe checkpoints; the flags.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training import SMALL, _synthetic

from continuous_gnn.cli import main
from continuous_gnn.training import CheckpointError, RunConfig, RunStopped, StopRequest, run, save_checkpoint, train_split
from continuous_gnn.training.build import build_model
from continuous_gnn.training.checkpoint import UnsafeCheckpointError, load_checkpoint
from continuous_gnn.training.history import SplitHistory
from continuous_gnn.training.resume import (
    RESUME_FORMAT,
    Checkpointing,
    ResumeWarning,
    RunCheckpoints,
    checkpoint_files,
)

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


class Interrupted(Exception):
    """Raised from the progress callback: the run stops as a killed process would, between two epochs."""


def _stop_after(epochs: int):
    seen = []

    def progress(info) -> None:
        seen.append(info)
        if len(seen) == epochs:
            raise Interrupted

    return progress


def _comparable(result) -> list[str]:
    """Every field of every split except the wall times, as text (so nan equals nan, and -0.0 is not 0.0)."""
    out = []
    for split in result.splits:
        fields = split.to_dict()
        del fields["wall_time"], fields["epoch_time"]
        out.append(repr(fields))
    return out


def _names(directory: Path) -> list[str]:
    return [path.name for path in checkpoint_files(directory)]


CONFIGS = {
    "dropout": dict(),  # SMALL has dropout and input dropout: torch's global random stream
    "jacobian": dict(jacobian_weight=0.01, kinetic_weight=0.05),  # the probe's generator
    "random-batches": dict(batching="random", num_parts=3),  # the batch sampler's generator
}


@pytest.mark.parametrize("name", CONFIGS)
def test_an_interrupted_run_resumes_to_the_result_of_an_uninterrupted_one(tmp_path, name):
    dataset = _synthetic()
    config = RunConfig(epochs=5, splits=(0, 1), seed=4, **SMALL, **CONFIGS[name])
    uninterrupted = run(config, dataset)
    with pytest.raises(Interrupted):  # in split 1 at epoch 3: split 0 is finished, split 1 checkpointed at 2
        run(config, dataset, progress=_stop_after(8), checkpointing=Checkpointing(tmp_path, every=2))
    assert _names(tmp_path) == ["checkpoint-0001-0000000.pt", "checkpoint-0001-0000002.pt"]
    finished, seen = [], []
    resumed = run(config, dataset, progress=seen.append, on_split=finished.append,
                  checkpointing=Checkpointing(tmp_path, every=2, resume=True))
    assert _comparable(resumed) == _comparable(uninterrupted)
    assert [(info.split, info.epoch) for info in seen] == [(1, 3), (1, 4), (1, 5)]  # only the epochs left
    assert [s.split for s in finished] == [0, 1]  # the restored split is reported too
    assert _names(tmp_path) == ["checkpoint-0001-0000004.pt", "checkpoint-0002-0000000.pt"]
    # the record says where the run continued from, and under which versions and threads that part ran
    record = resumed.to_record()
    assert record["resumed_from"]["checkpoint"] == str(tmp_path / "checkpoint-0001-0000002.pt")
    assert record["resumed_from"]["machine"] == {"torch_threads": torch.get_num_threads()}
    assert record["resumed_from"]["versions"]["torch"] == torch.__version__
    assert record["resumed_from"]["run_time"] > 0 and "resumed_from" not in uninterrupted.to_record()


def test_without_the_random_states_the_resumed_run_would_differ(tmp_path, monkeypatch):
    # The check above can fail: a resume that leaves torch's random state as the reseeded split left it draws
    # other dropout masks.
    dataset = _synthetic()
    config = RunConfig(epochs=4, splits=(0,), **SMALL)
    uninterrupted = run(config, dataset)
    with pytest.raises(Interrupted):
        run(config, dataset, progress=_stop_after(3), checkpointing=Checkpointing(tmp_path, every=2))
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    resumed = run(config, dataset, checkpointing=Checkpointing(tmp_path, every=2, resume=True))
    assert _comparable(resumed) != _comparable(uninterrupted)


def test_the_kept_best_model_and_patience_survive_a_resume(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=12, patience=4, lr=0.05, **{k: v for k, v in SMALL.items() if k != "lr"})
    expected = train_split(config, dataset, 0, keep="best")
    assert expected.epochs_run < 12  # patience stopped it
    with pytest.raises(Interrupted):
        train_split(config, dataset, 0, keep="best", progress=_stop_after(expected.epochs_run - 1),
                    checkpoints=RunCheckpoints(Checkpointing(tmp_path, every=1), config, [0], CPU, keep="best"))
    with pytest.raises(ValueError, match="keep='best' but the checkpoints were made with keep=None"):
        train_split(config, dataset, 0, keep="best", checkpoints=RunCheckpoints(Checkpointing(tmp_path / "other"),
                                                                                config, [0], CPU))
    restored = RunCheckpoints(Checkpointing(tmp_path, every=1, resume=True), config, [0], CPU, keep="best")
    resumed = train_split(config, dataset, 0, keep="best", checkpoints=restored)
    assert repr(resumed.to_dict() | {"wall_time": 0, "epoch_time": 0}) == repr(
        expected.to_dict() | {"wall_time": 0, "epoch_time": 0})
    assert resumed.kept.epoch == expected.kept.epoch == expected.best_epoch
    for key, value in expected.kept.model.state_dict().items():
        assert torch.equal(resumed.kept.model.state_dict()[key], value), key


def test_a_run_that_kept_no_models_does_not_resume_into_one_that_keeps_them(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=5, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 3)
    with pytest.raises(CheckpointError, match="is of a run that kept no models, and this one asks to keep the 'best' "
                                              "one of each split.*resume without it"):
        run(config, dataset, keep="best", checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    # Resuming as it started works, and a run that keeps its models may resume without keeping them.
    run(config, dataset, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    other = tmp_path / "kept"
    with pytest.raises(Interrupted):
        run(config, dataset, keep="best", progress=_stop_after(3), checkpointing=Checkpointing(other, every=1))
    assert run(config, dataset, checkpointing=Checkpointing(other, every=1, resume=True)).splits[0].kept is None


def test_a_finished_run_resumes_to_its_result_without_training(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=2, splits=(2,), **SMALL)
    first = run(config, dataset, checkpointing=Checkpointing(tmp_path))
    assert _names(tmp_path) == ["checkpoint-0001-0000000.pt"]  # only the split's end without ``every``
    seen = []
    again = run(config, dataset, progress=seen.append, checkpointing=Checkpointing(tmp_path, resume=True))
    assert seen == [] and _comparable(again) == _comparable(first)
    assert again.splits[0].wall_time == first.splits[0].wall_time  # restored, not measured again


def test_a_checkpoint_holds_the_documented_entries_and_loads_with_weights_only(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=3, splits=(0,), jacobian_weight=0.01, **SMALL)
    with pytest.raises(Interrupted):
        run(config, dataset, progress=_stop_after(3), checkpointing=Checkpointing(tmp_path, every=2))
    (path,) = checkpoint_files(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"format", "kind", "config", "versions", "environment", "world_size", "splits",
                            "position", "finished", "run_time", "current", "keep"}
    assert payload["keep"] is None
    assert payload["format"] == RESUME_FORMAT and payload["config"] == config.to_dict()
    assert payload["position"] == 0 and payload["finished"] == [] and payload["world_size"] == 1
    assert payload["environment"] == {"torch_threads": torch.get_num_threads()}
    current = payload["current"]
    assert set(current) == {"split", "model", "optimizer", "history", "random"}
    assert set(current["random"]) == {"torch", "cuda", "probes", "batches"}
    assert current["random"]["probes"] is not None and current["random"]["batches"] is None
    assert current["history"]["val_curve"] and len(current["history"]["train_loss"]) == 2
    assert current["optimizer"]["state"]  # Adam's moments


def test_only_the_newest_checkpoints_stay_and_stale_temporaries_go(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=6, splits=(0,), **SMALL)
    stale = tmp_path / ".checkpoint-0000-0000002.pt.abc123.tmp"  # what a process killed mid-write leaves
    stale.write_bytes(b"half")
    run(config, dataset, checkpointing=Checkpointing(tmp_path, every=1, keep=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # .lock: the run's claim on the folder
        ".lock", "checkpoint-0000-0000004.pt", "checkpoint-0000-0000005.pt", "checkpoint-0001-0000000.pt"]


def test_checkpoint_files_are_ordered_by_split_position_then_epoch(tmp_path):
    for name in ("checkpoint-0010-0000001.pt", "checkpoint-0002-0000030.pt", "checkpoint-0002-0000004.pt",
                 "checkpoint-2-3.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert _names(tmp_path) == ["checkpoint-0002-0000004.pt", "checkpoint-0002-0000030.pt",
                                "checkpoint-0010-0000001.pt"]


# ---------------------------------------------------------------------- unreadable and refused checkpoints


def _interrupted(tmp_path: Path, config: RunConfig, epochs: int, **settings) -> None:
    with pytest.raises(Interrupted):
        run(config, _synthetic(), progress=_stop_after(epochs),
            checkpointing=Checkpointing(tmp_path, every=settings.pop("every", 1), **settings))


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one_with_a_warning(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=5, splits=(0,), **SMALL)
    uninterrupted = run(config, dataset)
    _interrupted(tmp_path, config, 4, keep=3)
    older, previous, newest = checkpoint_files(tmp_path)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(ResumeWarning, match=f"resuming from '{previous}': the newer '{newest}' cannot be read"):
        resumed = run(config, dataset, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert _comparable(resumed) == _comparable(uninterrupted)


def _flip_bytes(path: Path) -> None:
    """Change bytes in the middle of a tensor's data, as a failing disk would: the archive stays well formed."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra) + entry.file_size // 2
    for k in range(start, start + 16):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_checkpoint_whose_bytes_changed_is_refused_not_loaded_with_damaged_weights(tmp_path):
    from continuous_gnn.training.checkpoint import read_plain

    path = tmp_path / "model.pt"
    torch.save({"weights": torch.arange(4096, dtype=torch.float32)}, path)
    _flip_bytes(path)
    assert not torch.equal(torch.load(path, weights_only=True)["weights"], torch.arange(4096, dtype=torch.float32))
    with pytest.raises(CheckpointError, match=r"is corrupt: the bytes of its entry '.*/data/0' no longer match the "
                                              r"checksum written with them.*; pass a file that a test wrote"):
        read_plain(path, map_location="cpu", writer="a test")


def test_a_fallback_sets_the_unreadable_checkpoints_aside_so_that_pruning_keeps_the_new_ones(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=5, splits=(0,), **SMALL)
    uninterrupted = run(config, dataset)
    _interrupted(tmp_path, config, 4, keep=3)
    older, previous, newest = checkpoint_files(tmp_path)
    _flip_bytes(newest)
    request = StopRequest()
    with pytest.warns(ResumeWarning, match=f"the newer '{newest}' cannot be read .*is corrupt.*set aside"):
        with pytest.raises(RunStopped) as stopped:
            run(config, dataset, progress=lambda info: request.set("test"), stop=request,
                checkpointing=Checkpointing(tmp_path, every=10, keep=1, resume=True))
    # The checkpoint of the stop stays (before, the unreadable newest name was kept and it was deleted).
    assert stopped.value.checkpoint.is_file() and _names(tmp_path) == [stopped.value.checkpoint.name]
    assert (tmp_path / (newest.name + ".unreadable")).is_file()
    resumed = run(config, dataset, checkpointing=Checkpointing(tmp_path, every=10, keep=1, resume=True))
    assert _comparable(resumed) == _comparable(uninterrupted)


def test_a_checkpoint_whose_state_does_not_fit_the_model_is_a_checkpoint_error(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=5, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 3, keep=1)
    (newest,) = checkpoint_files(tmp_path)
    payload = torch.load(newest, weights_only=True)
    name = next(iter(payload["current"]["model"]))
    payload["current"]["model"][name] = torch.zeros(3)
    torch.save(payload, newest)
    with pytest.raises(CheckpointError, match=f"checkpoint '{newest}' does not fit this run: its state of split 0 "
                                              f"cannot be loaded \\(RuntimeError: .*size mismatch for {name}"):
        run(config, dataset, checkpointing=Checkpointing(tmp_path, every=1, resume=True))


def test_a_checkpoint_with_malformed_curves_is_passed_over(tmp_path):
    dataset = _synthetic()
    config = RunConfig(epochs=5, splits=(0,), **SMALL)
    uninterrupted = run(config, dataset)
    _interrupted(tmp_path, config, 4, keep=2)
    previous, newest = checkpoint_files(tmp_path)
    payload = torch.load(newest, weights_only=True)
    payload["current"]["history"]["val_curve"] = "oops"
    torch.save(payload, newest)
    with pytest.warns(ResumeWarning, match="val_curve must be a list of numbers, got str"):
        resumed = run(config, dataset, checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert _comparable(resumed) == _comparable(uninterrupted)
    payload["current"]["history"]["val_curve"] = [0.5]
    with pytest.raises(ValueError, match=r"curves \['val_curve'\] do not have one entry per epoch \(3\)"):
        SplitHistory.from_state_dict(payload["current"]["history"])


def test_a_cut_short_archive_is_described_by_torchs_finding_alone(tmp_path):
    from continuous_gnn.training.checkpoint import read_plain

    path = tmp_path / "cut.pt"
    torch.save({"weights": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the archive's directory at its end is gone
    with pytest.raises(CheckpointError, match="failed finding central directory") as info:
        read_plain(path, map_location="cpu", writer="a test")
    assert "miniz" not in str(info.value) and "high likelihood" not in str(info.value)  # torch's advice, dropped


def test_no_readable_checkpoint_is_an_error_naming_the_folder_and_the_files(tmp_path):
    config = RunConfig(epochs=3, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 2)
    for path in checkpoint_files(tmp_path):
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"no checkpoint in '{tmp_path}' can be read: checkpoint-0000-0000001.pt"):
        RunCheckpoints(Checkpointing(tmp_path, resume=True), config, [0], CPU)


def test_a_checkpoint_of_another_run_is_refused_naming_what_differs(tmp_path):
    config = RunConfig(epochs=3, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 2)
    settings = Checkpointing(tmp_path, resume=True)
    with pytest.raises(CheckpointError, match=r"belongs to another run \(hidden: checkpoint 16, this run 8; "
                                              r"lr: checkpoint 0.01, this run 0.1\)"):
        RunCheckpoints(settings, config.replace(hidden=8, lr=0.1), [0], CPU)
    with pytest.raises(CheckpointError, match=r"splits: checkpoint \[0\], this run \[0, 1\]"):
        RunCheckpoints(settings, config, [0, 1], CPU)
    # splits that the config names too are named once
    with pytest.raises(CheckpointError, match=r"\(splits: checkpoint \[0\], this run \[0, 1\]\); resume") as refused:
        RunCheckpoints(settings, config.replace(splits=(0, 1)), [0, 1], CPU)
    assert str(refused.value).count("splits:") == 1


def _rewrite(path: Path, **changes) -> None:
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, **changes}, path)


def test_a_checkpoint_of_another_package_version_or_format_is_refused(tmp_path):
    config = RunConfig(epochs=3, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 2)
    (newest,) = checkpoint_files(tmp_path)[-1:]
    payload = torch.load(newest, weights_only=True)
    _rewrite(newest, versions={**payload["versions"], "continuous_gnn": "0.0.1"})
    settings = Checkpointing(tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="was written by continuous_gnn 0.0.1, this is .*resumes only with"):
        RunCheckpoints(settings, config, [0], CPU)
    _rewrite(newest, format=RESUME_FORMAT + 1)
    with pytest.raises(CheckpointError, match=f"has format {RESUME_FORMAT + 1}; this version reads format"):
        RunCheckpoints(settings, config, [0], CPU)


def test_another_thread_count_or_torch_version_resumes_with_a_warning(tmp_path):
    config = RunConfig(epochs=3, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 2)
    newest = checkpoint_files(tmp_path)[-1]
    payload = torch.load(newest, weights_only=True)
    _rewrite(newest, environment={**payload["environment"], "torch_threads": 97},
             versions={**payload["versions"], "torch": "1.0"})
    with pytest.warns(ResumeWarning, match=r"another environment \(torch: checkpoint '1.0', this run "
                                           r".*torch_threads: checkpoint 97, this run \d+\): the result may differ"):
        RunCheckpoints(Checkpointing(tmp_path, resume=True), config, [0], CPU)


class Payload:
    """A class no checkpoint may hold: unpickling it would import and build an arbitrary object."""


def test_a_pickled_object_in_a_checkpoint_is_refused_not_loaded_nor_passed_over(tmp_path):
    config = RunConfig(epochs=3, splits=(0,), **SMALL)
    _interrupted(tmp_path, config, 2, keep=5)
    newest = checkpoint_files(tmp_path)[-1]
    payload = torch.load(newest, weights_only=True)
    torch.save({**payload, "finished": [Payload()]}, newest)
    with pytest.raises(UnsafeCheckpointError, match=f"'{newest}' holds objects outside the plain data and tensors"
                                                    ".*Unsupported global: GLOBAL test_resume.Payload.*not loaded"):
        RunCheckpoints(Checkpointing(tmp_path, resume=True), config, [0], CPU)
    # The model checkpoints of save_checkpoint are read the same way.
    dataset = _synthetic()
    model = build_model(config, dataset.num_features, dataset.num_classes)
    path = save_checkpoint(tmp_path / "model.pt", model, config, num_features=dataset.num_features,
                           num_classes=dataset.num_classes)
    torch.save({**torch.load(path, weights_only=True), "metadata": {"note": Payload()}}, path)
    with pytest.raises(UnsafeCheckpointError, match="Unsupported global: GLOBAL test_resume.Payload"):
        load_checkpoint(path)


def test_checkpointing_settings_are_checked():
    with pytest.raises(ValueError, match="Checkpointing.every must be at least 1, got 0"):
        Checkpointing(Path("x"), every=0)
    with pytest.raises(TypeError, match="Checkpointing.keep must be an int, got float 2.0"):
        Checkpointing(Path("x"), keep=2.0)
    with pytest.raises(TypeError, match="Checkpointing.resume must be a bool"):
        Checkpointing(Path("x"), resume="yes")
    with pytest.raises(TypeError, match="Checkpointing.directory must be a path"):
        Checkpointing(3)
    assert Checkpointing("x").directory == Path("x")
    assert [epoch for epoch in range(1, 8) if Checkpointing("x", every=3).due(epoch, 6)] == [3]
    assert not any(Checkpointing("x").due(epoch, 6) for epoch in range(1, 7))


def test_the_folder_must_fit_the_request(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="checkpoint folder '.*file' is a file; pass a folder"):
        Checkpointing(tmp_path / "file")
    with pytest.raises(ValueError, match=f"nothing to resume: checkpoint folder '{tmp_path}' holds no checkpoints"):
        Checkpointing(tmp_path, resume=True).check_folder()
    with pytest.raises(ValueError, match="nothing to resume: checkpoint folder '.*missing' does not exist"):
        Checkpointing(tmp_path / "missing", resume=True).check_folder()
    (tmp_path / "checkpoint-0000-0000001.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds checkpoints \\(newest checkpoint-0000-0000001.pt\\); "
                                         "resume that run"):
        Checkpointing(tmp_path).check_folder()
    (tmp_path / "checkpoint-0000-0000002.pt").mkdir()  # a folder under a checkpoint's name
    with pytest.raises(ValueError, match="holds 'checkpoint-0000-0000002.pt', which is not a file but has a "
                                         "checkpoint's name"):
        Checkpointing(tmp_path, resume=True).check_folder()


# The claim's module alone, loaded from its file: importing the package (torch, PyG) would take seconds.
_HOLD = f"""
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("folder_claim", {str(ROOT / "continuous_gnn" / "training" / "folder_claim.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
claim = module.FolderClaim(Path(sys.argv[1]), "checkpoint folder")
print("held", flush=True)
time.sleep(120)
"""


def test_a_checkpoint_folder_is_written_by_one_run_at_a_time(tmp_path):
    # Two runs in one folder deleted each other's checkpoints and temporaries, and one of them died of it.
    import socket

    from continuous_gnn.training.folder_claim import FolderInUseError

    folder = tmp_path / "checkpoints"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        config = RunConfig(**SMALL, splits=(0,))
        with pytest.raises(FolderInUseError, match=f"checkpoint folder '{folder}' is in use by another run "
                                                   f"\\(process {holder.pid} on {socket.gethostname()}\\); wait"):
            RunCheckpoints(Checkpointing(folder, every=1), config, [0], CPU)
        assert not checkpoint_files(folder)
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops a killed process's lock: the folder is free again, and a finished run gives it up too
    dataset = _synthetic()
    run(RunConfig(**SMALL, splits=(0,)), dataset, checkpointing=Checkpointing(folder, every=1))
    _assert_free(folder)


def _assert_free(folder: Path) -> None:
    """Another process can claim ``folder`` now."""
    second = subprocess.run([sys.executable, "-c", _HOLD.replace("time.sleep(120)", ""), str(folder)],
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and second.stdout == "held\n", second.stderr


def test_a_failed_run_gives_its_folder_up(tmp_path):
    # A notebook's interrupted run held the folder until the interpreter ended: a terminal could not resume it.
    config = RunConfig(**SMALL, splits=(0,), epochs=4)
    with pytest.raises(Interrupted):
        run(config, _synthetic(), checkpointing=Checkpointing(tmp_path, every=1), progress=_stop_after(2))
    _assert_free(tmp_path)
    resumed = run(config, _synthetic(), checkpointing=Checkpointing(tmp_path, every=1, resume=True))
    assert resumed.splits[0].epochs_run == 4
    # a claim refused by the folder's own checks is given up as well, and a folder to resume from is never created
    (tmp_path / "checkpoint-0000-0000009.pt").mkdir()
    with pytest.raises(ValueError, match="which is not a file"):
        RunCheckpoints(Checkpointing(tmp_path, every=1, resume=True), config, [0], CPU)
    _assert_free(tmp_path)
    with pytest.raises(ValueError, match="nothing to resume: checkpoint folder '.*typo' does not exist"):
        RunCheckpoints(Checkpointing(tmp_path / "typo", resume=True), config, [0], CPU)
    assert not (tmp_path / "typo").exists()


def test_two_runs_of_one_process_do_not_share_a_folder(tmp_path):
    from continuous_gnn.training.folder_claim import FolderClaim, FolderInUseError

    first = FolderClaim(tmp_path, "checkpoint folder")
    with pytest.raises(FolderInUseError, match=f"process {os.getpid()} on"):
        FolderClaim(tmp_path, "checkpoint folder")
    first.release()
    first.release()  # twice is harmless
    FolderClaim(tmp_path, "checkpoint folder").release()


def test_a_file_system_without_locks_is_used_unlocked_with_a_warning(tmp_path, monkeypatch):
    import errno

    from continuous_gnn.training import folder_claim

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(folder_claim.fcntl, "flock", no_locks)  # NFS without lockd
    config = RunConfig(**SMALL, splits=(0,), epochs=2)
    with pytest.warns(folder_claim.FolderClaimWarning, match="its file system cannot lock files .*No locks available"):
        result = run(config, _synthetic(), checkpointing=Checkpointing(tmp_path, every=1))
    assert result.splits[0].epochs_run == 2


# ---------------------------------------------------------------------- the command line


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint-every", "5"], "--checkpoint-every needs --checkpoint-dir DIR"),
    (["--resume"], "--resume needs --checkpoint-dir DIR"),
    (["--checkpoint-keep", "3"], "--checkpoint-keep needs --checkpoint-dir DIR"),
    (["--checkpoint-dir", "{tmp}", "--checkpoint-every", "0"], "--checkpoint-every must be >= 1, got 0"),
    (["--checkpoint-dir", "{tmp}", "--checkpoint-keep", "two"], "--checkpoint-keep must be an integer"),
    (["--checkpoint-dir", "{tmp}/file"], "--checkpoint-dir '{tmp}/file' is a file"),
    (["--checkpoint-dir", "{tmp}/empty", "--resume"], "nothing to resume: checkpoint folder '{tmp}/empty' does not"),
    (["--checkpoint-dir", "{tmp}/full"], "already holds checkpoints"),
])
def test_checkpoint_flag_mistakes_are_usage_errors_before_any_data_is_read(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "checkpoint-0000-0000003.pt").write_bytes(b"")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    status = main(["train", "--dataset", "texas", "--data-root", str(tmp_path / "no-data"), *argv])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert message.replace("{tmp}", str(tmp_path)) in err


def _train(data_root: Path, data_cache: Path, *argv: str) -> list[str]:
    return ["train", "--dataset", "texas", "--splits", "0", "--hidden", "8", "--time", "1", "--step-size", "0.5",
            "--quiet", "--data-root", str(data_root), "--cache-dir", str(data_cache), *argv]


def _splits(record_path: Path) -> list[dict]:
    splits = json.loads(record_path.read_text())["splits"]
    for split in splits:
        del split["wall_time"], split["epoch_time"]
    return splits


@pytest.mark.data
def test_the_command_line_shows_the_fallback_warning_on_one_line(tmp_path, capsys, data_root, data_cache):
    folder = tmp_path / "ck"
    argv = _train(data_root, data_cache, "--epochs", "4", "--checkpoint-dir", str(folder), "--checkpoint-every", "1",
                  "--checkpoint-keep", "9")
    assert main([*argv, "--out", str(tmp_path / "whole.json")]) == 0
    files = checkpoint_files(folder)
    for path in files[3:]:  # as if the process had died during epoch 4
        path.unlink()
    files[2].write_bytes(files[2].read_bytes()[:100])
    capsys.readouterr()
    assert main([*argv, "--resume", "--out", str(tmp_path / "resumed.json")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"continuous-gnn train: warning: resuming from '{files[1]}': the newer '{files[2]}' cannot be read ("), err
    assert _splits(tmp_path / "resumed.json") == _splits(tmp_path / "whole.json")
    status = main([*_train(data_root, data_cache, "--epochs", "5", "--checkpoint-dir", str(folder), "--resume")])
    assert status == 2 and "belongs to another run (epochs: checkpoint 4, this run 5)" in capsys.readouterr().err


@pytest.mark.data
def test_a_killed_training_process_resumes_to_the_record_of_an_uninterrupted_run(tmp_path, data_root, data_cache):
    folder = tmp_path / "ck"
    argv = _train(data_root, data_cache, "--epochs", "30", "--dropout", "0.3", "--checkpoint-dir", str(folder),
                  "--checkpoint-every", "3")
    # One thread in every process: the float reductions of a run depend on the thread count.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "continuous_gnn", *argv]
    # The uninterrupted run, without checkpoints at all (writing them changes nothing either), goes on beside the
    # killed one and its resumption: each process spends seconds importing torch and torch_geometric.
    whole = subprocess.Popen([*command[:command.index("--checkpoint-dir")], "--out", str(tmp_path / "whole.json")],
                             env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process = subprocess.Popen([*command, "--out", str(tmp_path / "killed.json")], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not checkpoint_files(folder) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, err.decode()
    assert not (tmp_path / "killed.json").exists()
    epochs_done = int(checkpoint_files(folder)[-1].stem.split("-")[2])
    assert 3 <= epochs_done < 30
    resumed = subprocess.run([*command, "--resume", "--out", str(tmp_path / "resumed.json")], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    _, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, err.decode()
    record = json.loads((tmp_path / "resumed.json").read_text())
    assert record["machine"]["torch_threads"] == 1
    assert _splits(tmp_path / "resumed.json") == _splits(tmp_path / "whole.json")


@pytest.mark.slow  # two torchrun launches of two ranks each: a minute or more on a two-core machine
@pytest.mark.data
def test_data_parallel_ranks_all_resume_from_the_checkpoints_rank_0_wrote(tmp_path, data_root, data_cache):
    from test_distributed import _torchrun

    argv = ["-m", "continuous_gnn", *_train(data_root, data_cache, "--epochs", "4", "--dropout", "0.5", "--distributed",
                                            "--batching", "random", "--num-parts", "2")]
    whole = tmp_path / "whole"
    _torchrun(*argv, "--checkpoint-dir", str(whole), "--checkpoint-every", "1", "--checkpoint-keep", "9",
              "--out", str(tmp_path / "whole.json"))
    assert _names(whole) == [f"checkpoint-0000-000000{epoch}.pt" for epoch in (1, 2, 3)] + ["checkpoint-0001-0000000.pt"]
    # Only the checkpoint after epoch 2, as if both ranks had died during epoch 3.
    (tmp_path / "later").mkdir()
    copied = shutil.copy(whole / "checkpoint-0000-0000002.pt", tmp_path / "later")
    streams = torch.load(copied, weights_only=True)["current"]["random"]["torch"]
    assert len(streams) == 2 and not torch.equal(*streams)  # each rank draws its own dropout masks
    _torchrun(*argv, "--checkpoint-dir", str(tmp_path / "later"), "--resume", "--out", str(tmp_path / "resumed.json"))
    assert _splits(tmp_path / "resumed.json") == _splits(tmp_path / "whole.json")


@pytest.mark.data
def test_save_model_keeps_each_splits_best_model_for_study_and_across_a_resume(tmp_path, capsys, data_root, data_cache):
    from continuous_gnn.data import load_dataset
    from continuous_gnn.training import build_graph, prepare_features
    from continuous_gnn.training.metrics import accuracy

    dataset = load_dataset("texas", data_root, cache_dir=data_cache)

    folder, model = tmp_path / "ck", tmp_path / "models" / "texas.pt"
    argv = [*_train(data_root, data_cache, "--epochs", "4", "--dropout", "0.3", "--checkpoint-dir", str(folder),
                    "--checkpoint-keep", "9", "--save-model", str(model)), "--splits", "0,1"]
    assert main([*argv, "--out", str(tmp_path / "whole.json")]) == 0
    record = json.loads((tmp_path / "whole.json").read_text())
    paths = {split: tmp_path / "models" / f"texas-split{split}.pt" for split in (0, 1)}
    assert record["saved_models"] == {str(split): str(path) for split, path in paths.items()}
    for entry in record["splits"]:  # each file holds the model of the epoch whose test metric the record reports
        saved = load_checkpoint(paths[entry["split"]])
        assert saved.metadata["epoch"] == entry["best_epoch"] and saved.metadata["split"] == entry["split"]
        net = saved.model.eval()
        with torch.no_grad():
            logits = net(prepare_features(dataset.data.x, CPU), build_graph(dataset.data, saved.config, CPU))
        test_mask = dataset.split(entry["split"])[2]
        assert float(accuracy(logits, dataset.data.y, test_mask[None])[0]) == pytest.approx(entry["test_metric"])
    # Resumed after split 0: the new process saves split 1, and the record still names split 0's earlier file.
    (tmp_path / "later").mkdir()
    shutil.copy(folder / "checkpoint-0001-0000000.pt", tmp_path / "later")
    paths[1].unlink()
    at = argv.index(str(folder))
    resumed = [*argv[:at], str(tmp_path / "later"), *argv[at + 1:], "--resume", "--out", str(tmp_path / "r.json")]
    assert main(resumed) == 0
    assert paths[1].is_file()
    assert json.loads((tmp_path / "r.json").read_text())["saved_models"] == record["saved_models"]
    # Another run's file at split 0's path is not named: a warning says so.
    shutil.copy(paths[1], paths[0])
    (tmp_path / "again").mkdir()
    shutil.copy(folder / "checkpoint-0001-0000000.pt", tmp_path / "again")
    capsys.readouterr()
    assert main([*argv[:at], str(tmp_path / "again"), *argv[at + 1:], "--resume", "--out", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["saved_models"] == {"1": str(paths[1])}
    assert (f"split 0 was finished by an earlier process of this run, and {paths[0]} is not the model it saved (it "
            "holds the model of another run or split)") in capsys.readouterr().err
    # A run that kept no models cannot resume into one that saves them: its earlier best models are gone.
    plain = [arg for arg in argv if arg not in ("--save-model", str(model))]
    at = plain.index(str(folder))
    plain_folder = tmp_path / "plain"
    (tmp_path / "plain").mkdir()
    assert main([*plain[:at], str(plain_folder), *plain[at + 1:], "--out", str(tmp_path / "p.json")]) == 0
    for path in checkpoint_files(plain_folder)[3:]:
        path.unlink()
    status = main([*plain[:at], str(plain_folder), *plain[at + 1:], "--save-model", str(model), "--resume",
                   "--out", str(tmp_path / "p2.json")])
    assert status == 2 and "is of a run that kept no models" in capsys.readouterr().err
    # A training-state checkpoint is not a model, and the message says how to get one.
    with pytest.raises(CheckpointError, match="is a training-state checkpoint .*train --save-model PATH"):
        load_checkpoint(folder / "checkpoint-0001-0000000.pt")
    capsys.readouterr()
    assert main(_train(data_root, data_cache, "--save-model", str(tmp_path), "--out", str(tmp_path / "x.json"))) == 2
    assert "is not a file path" in capsys.readouterr().err


@pytest.mark.data
def test_train_refuses_outputs_that_would_overwrite_its_inputs_or_each_other_before_training(
        tmp_path, capsys, data_root, data_cache):
    config = tmp_path / "mine.toml"
    config.write_text('dataset = "texas"\nhidden = 8\n')
    base = _train(data_root, data_cache, "--epochs", "1", "--config", str(config))
    models = tmp_path / "m"
    for flags, message in (
        (["--out", str(config)], "--config and --out name the same file"),  # the record replaced the TOML
        (["--save-model", str(config)], "--config and --save-model name the same file"),
        # With two splits the models go to model-split<N>.pt: the record may not take one of those names.
        (["--splits", "0,1", "--out", str(models / "model-split0.pt"), "--save-model", str(models / "model.pt")],
         "--out and --save-model name the same file"),
    ):
        capsys.readouterr()
        assert main([*base, *flags]) == 2
        assert message in capsys.readouterr().err
        assert config.read_text() == 'dataset = "texas"\nhidden = 8\n' and not models.exists()
    (models / "model-split1.pt").mkdir(parents=True)  # found only when split 1 had been trained, as OS error 21
    assert main([*base, "--splits", "0,1", "--out", str(tmp_path / "r.json"), "--save-model", str(models / "model.pt")]) == 2
    assert "--save-model" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
    # The record and the model path may share a name when the models take per-split names.
    shared = str(tmp_path / "y.json")
    assert main([*base, "--splits", "0,1", "--out", shared, "--save-model", shared]) == 0
    assert json.loads(Path(shared).read_text())["saved_models"] == {
        str(split): str(tmp_path / f"y-split{split}.json") for split in (0, 1)}
