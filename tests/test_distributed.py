"""Data-parallel training: two gloo ranks on loopback under torchrun, the command line's checks, the world record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ddp_worker
import pytest
import torch
from torch.nn import functional as F

from continuous_gnn.cli import main
from continuous_gnn.cli.train import TORCHRUN_VARIABLES
from continuous_gnn.training.batches import EpochBatches
from continuous_gnn.training.build import build_model
from continuous_gnn.training.distributed import World, backend_for

ROOT = Path(__file__).resolve().parents[1]
#: torchrun and two ranks each import torch and PyG; on a busy two-core machine that takes most of this.
TIMEOUT_S = 240


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    for name in TORCHRUN_VARIABLES:
        env.pop(name, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _one_step(batch_losses) -> tuple[dict[str, torch.Tensor], float]:
    """Parameters after one Adam step on the mean of the given batch losses, from the run's initialisation, and
    the mean of those losses weighted by the batches' training nodes."""
    config, dataset = ddp_worker.CONFIG, ddp_worker.dataset()
    seed = config.seed  # split 0
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(config, dataset.num_features, dataset.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    batches = EpochBatches(config, dataset, 0, seed, torch.device("cpu"))
    groups = batches.groups()
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total, nodes = 0.0, 0
    for index in batch_losses:
        batch = batches.materialise(groups[index])
        logits, _ = model.forward_with_solution(batch.features, batch.graph)
        loss = F.cross_entropy(logits[batch.train_index], batch.targets)
        (loss / len(batch_losses)).backward()
        total, nodes = total + loss.item() * batch.train_index.numel(), nodes + batch.train_index.numel()
    optimizer.step()
    return model.state_dict(), total / nodes


def test_two_ranks_take_the_step_of_the_averaged_gradient(tmp_path):
    _torchrun(str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), "1")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    both, loss = _one_step([0, 1])  # one process accumulating the two batches the two ranks trained on
    alone, _ = _one_step([0])
    for name, reference in both.items():
        for rank in ranks:  # DDP keeps the ranks' parameters equal
            assert torch.allclose(rank["state"][name], reference, rtol=1e-5, atol=1e-7), name
    assert any(not torch.allclose(ranks[0]["state"][n], alone[n], rtol=1e-5, atol=1e-7) for n in alone)
    # Evaluation on the full graph, and the epoch's loss and NFE over both ranks, agree on every rank.
    assert ranks[0]["val_curve"] == ranks[1]["val_curve"] and ranks[0]["train_loss"] == ranks[1]["train_loss"]
    assert ranks[0]["nfe_forward"] == [2 * 2]  # two batches of two Euler steps
    assert ranks[0]["train_loss"] == [pytest.approx(loss, rel=1e-6)]  # weighted by training nodes over both ranks


def test_pieces_that_no_step_reaches_neither_stop_the_ranks_nor_move(tmp_path):
    # Without DDP's find_unused_parameters, the second step failed on every rank ("Expected to have finished
    # reduction in the prior iteration"). A single process leaves such pieces alone too: no gradient, no step.
    _torchrun(str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), "2", "pieces")
    ranks = [torch.load(tmp_path / f"rank{r}.pt")["state"] for r in (0, 1)]
    config, dataset = ddp_worker.PIECES, ddp_worker.dataset()
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        initial = build_model(config, dataset.num_features, dataset.num_classes).state_dict()
    pieces = {name: [name.startswith(f"flow.energy.energies.{k}.") for k in range(4)] for name in initial}
    assert all(any(marks) for name, marks in pieces.items() if "energies" in name), pieces
    for name, value in initial.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        unreached = pieces[name][1] or pieces[name][3]
        assert torch.equal(ranks[0][name], value) == unreached, name


def test_ddp_looks_for_unused_parameters_only_where_a_step_may_leave_some():
    from continuous_gnn.training import RunConfig
    from continuous_gnn.training.build import may_leave_parameters_unused

    assert not may_leave_parameters_unused(RunConfig())
    assert not may_leave_parameters_unused(RunConfig(time_dependent=True))  # one piece per step: each is reached
    assert may_leave_parameters_unused(RunConfig(time_dependent=True, time_pieces=8))
    assert may_leave_parameters_unused(RunConfig(energy="continuous_gnn.energies:DirichletEnergy"))


def test_world_checks_its_ranks():
    assert World(1, 2).is_main is False and World(0, 1).is_main
    with pytest.raises(ValueError, match="need 0 <= rank < size"):
        World(2, 2)
    assert World(0, 2, local_rank=1).device(torch.device("cuda")) == torch.device("cuda", 1)
    assert World(0, 2, local_rank=1).device(torch.device("cpu")) == torch.device("cpu")
    assert (backend_for("cpu"), backend_for("cuda:0")) == ("gloo", "nccl")


def test_distributed_without_torchrun_names_torchrun(monkeypatch, capsys):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    status = main(["train", "--distributed", "--dataset", "texas", "--batching", "random", "--num-parts", "2",
                   "--data-root", "/nonexistent"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "--distributed runs under torchrun, which sets RANK" in err
    assert "torchrun --nproc-per-node 2 -m continuous_gnn train --distributed" in err


@pytest.mark.parametrize("variables, fragment", [
    (("0", "2", "0", "127.0.0.1", "abc"), "MASTER_PORT='abc' is not a port number (1 to 65535)"),
    (("0", "2", "0", "127.0.0.1", "70000"), "MASTER_PORT='70000' is not a port number"),
])
def test_a_torchrun_environment_that_cannot_meet_is_refused_before_any_work(monkeypatch, capsys, variables,
                                                                             fragment):
    for name, value in zip(TORCHRUN_VARIABLES, variables):
        monkeypatch.setenv(name, value)
    status = main(["train", "--distributed", "--dataset", "texas", "--batching", "random", "--num-parts", "2",
                   "--data-root", "/nonexistent"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and fragment in err, err


def test_torchrun_processes_without_distributed_are_refused(monkeypatch, capsys):
    # Each would train the whole run alone and write its own record.
    for name, value in zip(TORCHRUN_VARIABLES, ("1", "2", "1", "127.0.0.1", "29500")):
        monkeypatch.setenv(name, value)
    assert main(["train", "--dataset", "texas", "--data-root", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "one of 2 that torchrun started (WORLD_SIZE=2), but --distributed is not given" in err
    assert err.count("\n") == 1
    monkeypatch.setenv("WORLD_SIZE", "1")  # a single process under torchrun trains as without it
    assert main(["train", "--dataset", "texas", "--data-root", "/nonexistent"]) == 2
    assert "torchrun" not in capsys.readouterr().err


@pytest.mark.data
def test_distributed_needs_batching_and_checks_before_the_processes_meet(monkeypatch, capsys, data_root, data_cache):
    # No process group is started: with a second rank that never comes this would wait, not fail.
    for name, value in zip(TORCHRUN_VARIABLES, ("0", "2", "0", "127.0.0.1", "1")):
        monkeypatch.setenv(name, value)
    argv = ["train", "--distributed", "--dataset", "texas", "--data-root", str(data_root), "--cache-dir",
            str(data_cache)]
    assert main(argv) == 2
    assert "training across 2 processes gives each its own batches; set batching" in capsys.readouterr().err
    assert main([*argv, "--batching", "random", "--num-parts", "3"]) == 2
    assert "an epoch has 3 batches, which 2 processes cannot share evenly" in capsys.readouterr().err


@pytest.mark.data
def test_a_rank_whose_peer_is_gone_ends_with_one_line_not_a_traceback(monkeypatch, capsys, tmp_path, data_root,
                                                                      data_cache):
    import socket

    import continuous_gnn.training as training
    from continuous_gnn.training.distributed import process_group_failed

    with socket.socket() as probe:  # a free port for this one-rank group
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in zip(TORCHRUN_VARIABLES, ("0", "1", "0", "127.0.0.1", str(port))):
        monkeypatch.setenv(name, value)
    gloo = ("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:4497: Connection "
            "reset by peer")
    assert process_group_failed(RuntimeError(gloo)) and not process_group_failed(RuntimeError("shape mismatch"))

    def peer_gone(*args, **kwargs):
        raise RuntimeError(gloo)

    monkeypatch.setattr(training, "run", peer_gone)
    argv = ["train", "--distributed", "--dataset", "texas", "--batching", "random", "--num-parts", "2", "--epochs",
            "1", "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", str(tmp_path / "r.json")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "rank 0 of 1: the process group failed, most likely because another rank stopped or never started" in err
    assert "rerun the whole command, with --resume and the same --checkpoint-dir" in err


@pytest.mark.data
def test_torchrun_trains_with_one_command_and_only_rank_0_writes(tmp_path, data_root, data_cache):
    out = tmp_path / "runs"
    out.mkdir()
    done = _torchrun("-m", "continuous_gnn", "train", "--distributed", "--dataset", "texas", "--splits", "0",
                     "--epochs", "2", "--hidden", "8", "--batching", "random", "--num-parts", "2", "--quiet",
                     "--data-root", str(data_root), "--cache-dir", str(data_cache), "--out", f"{out}/")
    assert done.stdout.count("split  0") == 1 and done.stdout.count("record ") == 1, done.stdout
    (path,) = out.iterdir()
    record = json.loads(path.read_text())
    assert record["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert record["config"]["batching"] == "random" and len(record["splits"][0]["train_loss"]) == 2
