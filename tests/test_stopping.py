"""Stopping a checkpointed run early (continuous_gnn.training.stopping): it stops at an epoch's end with a
checkpoint, a resumed run ends with the result of an uninterrupted one, signals set the request, and the command
line stops on SIGINT/SIGTERM with the command that continues the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_resume import _comparable, _names, _train
from test_training import SMALL, _synthetic

from continuous_gnn.cli import main
from continuous_gnn.training import RunConfig, RunStopped, StopRequest, run, stop_on_signals
from continuous_gnn.training.resume import Checkpointing, RunCheckpoints, checkpoint_files

ROOT = Path(__file__).resolve().parents[1]


def _stop_at(request: StopRequest, epochs_seen: int):
    """A progress callback that sets ``request`` during the ``epochs_seen``-th epoch of the run (counted over its
    splits), as a signal arriving then would."""
    seen = []

    def progress(info) -> None:
        seen.append(info)
        if len(seen) == epochs_seen:
            request.set("test")

    return progress


def _stopped_and_resumed(tmp_path: Path, config: RunConfig, epochs_seen: int, **checkpointing) -> tuple[RunStopped, list]:
    dataset = _synthetic()
    request = StopRequest()
    with pytest.raises(RunStopped) as stopped:
        run(config, dataset, progress=_stop_at(request, epochs_seen), stop=request,
            checkpointing=Checkpointing(tmp_path, **checkpointing))
    resumed = run(config, dataset, checkpointing=Checkpointing(tmp_path, resume=True))
    return stopped.value, _comparable(resumed)


def test_a_run_asked_to_stop_mid_split_checkpoints_that_epoch_and_resumes_to_the_uninterrupted_result(tmp_path):
    config = RunConfig(epochs=5, splits=(0, 1), seed=4, **SMALL)
    uninterrupted = _comparable(run(config, _synthetic()))
    stopped, resumed = _stopped_and_resumed(tmp_path, config, epochs_seen=7)  # epoch 2 of split 1
    assert (stopped.reason, stopped.split, stopped.epochs_done) == ("test", 1, 2)
    assert stopped.checkpoint == tmp_path / "checkpoint-0001-0000002.pt"
    assert "resume with Checkpointing(" in str(stopped)
    assert resumed == uninterrupted


def test_a_stop_during_a_splits_last_epoch_finishes_the_split_and_stops_before_the_next(tmp_path):
    config = RunConfig(epochs=4, splits=(0, 1), seed=4, **SMALL)
    uninterrupted = _comparable(run(config, _synthetic()))
    stopped, resumed = _stopped_and_resumed(tmp_path, config, epochs_seen=4)
    assert (stopped.split, stopped.epochs_done) == (0, 4)
    assert stopped.checkpoint == tmp_path / "checkpoint-0001-0000000.pt"
    assert resumed == uninterrupted


def test_a_stop_during_the_runs_last_epoch_lets_the_run_finish(tmp_path):
    config = RunConfig(epochs=3, splits=(0, 1), seed=4, **SMALL)
    request = StopRequest()
    result = run(config, _synthetic(), progress=_stop_at(request, 6), stop=request,
                 checkpointing=Checkpointing(tmp_path))
    assert _comparable(result) == _comparable(run(config, _synthetic()))


def test_a_checkpoint_due_at_the_stopping_epoch_is_written_once(tmp_path, monkeypatch):
    written = []
    write = RunCheckpoints._write
    monkeypatch.setattr(RunCheckpoints, "_write", lambda self, epoch, current: (written.append(epoch),
                                                                               write(self, epoch, current)))
    config = RunConfig(epochs=6, splits=(0,), seed=4, **SMALL)
    stopped, _ = _stopped_and_resumed(tmp_path, config, epochs_seen=2, every=2, keep=9)
    assert stopped.epochs_done == 2
    assert written[:1] == [2] and written.count(2) == 1  # the resumed run writes 4 and the split's end after it
    request = StopRequest()  # between two due ones: the stopping epoch is written beside them
    with pytest.raises(RunStopped):
        run(config, _synthetic(), progress=_stop_at(request, 3), stop=request,
            checkpointing=Checkpointing(tmp_path / "odd", every=2, keep=9))
    assert _names(tmp_path / "odd") == ["checkpoint-0000-0000002.pt", "checkpoint-0000-0000003.pt"]


def test_a_stop_request_needs_checkpoints_and_is_checked_before_training(tmp_path):
    config = RunConfig(epochs=2, splits=(0,), **SMALL)
    trained = []
    with pytest.raises(ValueError, match="needs checkpoints to stop into.*checkpointing=Checkpointing"):
        run(config, _synthetic(), progress=trained.append, stop=StopRequest())
    with pytest.raises(TypeError, match="stop must be a StopRequest, got Event"):
        run(config, _synthetic(), progress=trained.append, stop=threading.Event(),
            checkpointing=Checkpointing(tmp_path))
    assert trained == []
    with pytest.raises(TypeError, match="non-empty str"):
        StopRequest().set("")


def test_the_first_request_keeps_its_reason():
    request = StopRequest()
    assert not request.is_set and request.agreed(None, None) is None
    request.set("SIGTERM")
    request.set("SIGINT")
    assert request.is_set and request.reason == "SIGTERM" and request.agreed(None, None) == "SIGTERM"


def test_the_first_signal_sets_the_request_and_a_later_second_interrupts_at_once(monkeypatch):
    from continuous_gnn.training import stopping

    monkeypatch.setattr(stopping, "REPEAT_GRACE_S", 0.3)
    before = signal.getsignal(signal.SIGTERM)
    heard = []
    request = StopRequest()
    with stop_on_signals(request, on_signal=heard.append):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between two bytecodes of the main thread
        assert request.reason == "SIGTERM" and heard == ["SIGTERM"]
        # At once, it is the first signal forwarded (torchrun passes its SIGTERM on to workers that had it too).
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert request.reason == "SIGTERM" and heard == ["SIGTERM"]
        time.sleep(0.3)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before


class _Ranks:
    """The collective of StopRequest.agreed, as the other ranks would answer it."""

    def __init__(self, *others: int) -> None:
        self.others = others

    def gather(self, values):
        import torch
        return [values.clone(), *(torch.tensor([code]) for code in self.others)]


def test_ranks_agree_to_stop_and_a_rank_without_a_signal_takes_the_signal_of_another():
    import torch

    cpu = torch.device("cpu")
    assert StopRequest().agreed(_Ranks(0, 0), cpu) is None
    assert StopRequest().agreed(_Ranks(0, signal.SIGTERM.value), cpu) == "SIGTERM"
    assert StopRequest().agreed(_Ranks(-1, signal.SIGINT.value), cpu) == "SIGINT"
    assert StopRequest().agreed(_Ranks(-1), cpu) == "another rank's stop request"
    own = StopRequest()
    own.set("SIGINT")
    assert own.agreed(_Ranks(signal.SIGTERM.value), cpu) == "SIGINT"


def test_signals_are_caught_only_from_the_main_thread():
    errors = []

    def install() -> None:
        try:
            with stop_on_signals(StopRequest()):
                pass
        except ValueError as err:
            errors.append(str(err))

    thread = threading.Thread(target=install)
    thread.start()
    thread.join()
    assert errors and "main thread only" in errors[0]
    with pytest.raises(TypeError, match="needs a StopRequest"):
        with stop_on_signals(threading.Event()):
            pass


@pytest.mark.data
def test_the_command_line_stops_on_sigterm_with_a_checkpoint_and_the_command_that_resumes(tmp_path, data_root,
                                                                                          data_cache, capsys):
    folder = tmp_path / "ck"
    argv = _train(data_root, data_cache, "--epochs", "200", "--checkpoint-dir", str(folder))
    every = ["--checkpoint-every", "1", "--checkpoint-keep", "1"]  # so that the test sees the run under way
    process = subprocess.Popen([sys.executable, "-m", "continuous_gnn", *argv, *every, "--out", str(tmp_path / "run.json")],
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not checkpoint_files(folder) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the first checkpoint is written inside the run, where the handlers are in place
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopping at the end of this epoch to write a checkpoint" in err
    (line,) = [line for line in err.splitlines() if "stopped (SIGTERM)" in line]
    epochs_done = int(line.split("after epoch ")[1].split()[0])
    (checkpoint,) = checkpoint_files(folder)
    assert checkpoint.name == f"checkpoint-0000-{epochs_done:07d}.pt" and str(checkpoint) in line
    assert 1 <= epochs_done < 200 and not (tmp_path / "run.json").exists()
    command = line.split("continue with: ")[1]
    assert command.startswith("continuous-gnn train --dataset texas") and command.endswith(" --resume")
    # The printed command continues the run (here without a checkpoint at every epoch, which is no run setting).
    assert main([*argv, "--out", str(tmp_path / "run.json"), "--resume"]) == 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["resumed_from"]["checkpoint"] == str(checkpoint)
    assert len(record["splits"][0]["train_loss"]) == 200


@pytest.mark.slow  # one torchrun launch of two ranks: half a minute or more on a two-core machine
def test_data_parallel_ranks_stop_together_when_one_is_asked(tmp_path):
    import torch
    from test_distributed import _torchrun

    _torchrun(str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), "5", "stop")
    ranks = [json.loads((tmp_path / f"stopped{rank}.json").read_text()) for rank in (0, 1)]
    checkpoint = str(tmp_path / "ck" / "checkpoint-0000-0000002.pt")
    assert ranks[0] == {"reason": "another rank's stop request", "split": 0, "epochs_done": 2, "checkpoint": checkpoint}
    assert ranks[1] == {**ranks[0], "reason": "rank 1's signal"}
    assert _names(tmp_path / "ck") == ["checkpoint-0000-0000002.pt"]
    assert len(torch.load(checkpoint, weights_only=True)["current"]["random"]["torch"]) == 2
