"""Solver benchmark: accuracy, NFE, time and memory of every torchdiffeq method, direct vs adjoint backprop.

This module measures; ``continuous-gnn solvers`` (:mod:`continuous_gnn.cli.solvers`) chooses the
configurations and the model settings, and writes the report. Every configuration trains in a fresh
subprocess (forked from a fork server that has only imported the modules; one CPU thread), which also measures
its peak memory.

Memory method (CPU): in the child, after one warm-up training step, the kernel's peak-RSS counter is reset
(``/proc/self/clear_refs`` ← 5, which resets ``VmHWM``), the current RSS is read, one more training step runs,
and the peak is ``VmHWM - VmRSS_before``: the extra resident memory of one forward + backward pass. glibc's
``MALLOC_MMAP_THRESHOLD_`` is pinned to 64 KiB in the child, so tensor buffers are mapped and unmapped
individually and RSS follows live tensors. The bytes that autograd saves for backward (unique storages,
counted with ``torch.autograd.graph.saved_tensors_hooks``) are reported as a second, deterministic measure.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from dataclasses import dataclass

from .peak import measure_peak

__all__ = ["ADAPTIVE", "ModelSettings", "child", "run_child", "fork_server"]

#: The adaptive methods of the benchmark; the others run on a fixed grid.
ADAPTIVE = ("dopri5", "bosh3", "adaptive_heun")


@dataclass(frozen=True)
class ModelSettings:
    """The model and optimiser of one benchmarked dataset (chosen by the command, not here)."""

    hidden: int
    t_end: float
    step: float
    rtol: float
    atol: float
    lr: float
    w: str
    normalize_features: bool | None
    dropout: float
    input_dropout: float
    weight_decay: float


def child(config: dict, settings: ModelSettings) -> dict:
    """Train one configuration; returns the measurements (runs inside a fresh interpreter).

    ``config`` names the dataset, data root, method, backprop and epochs, and may change the step (``step``), the
    horizon (``t_end``), the activation, the seed and the adjoint's options (``adjoint_kwargs``); ``settings``
    holds the rest of the model and the optimiser.
    """
    import torch
    from torch.nn import functional as F

    from continuous_gnn import ContinuousGNN, Graph, IntegrationError
    from continuous_gnn.data import load_dataset
    from continuous_gnn.energies import GRAFFEnergy

    torch.set_num_threads(1)
    dataset = load_dataset(config["dataset"], config["data_root"], normalize_features=settings.normalize_features)
    data = dataset.data
    graph = Graph.from_data(data)
    train, val, test = dataset.split(0)
    method = config["method"]
    solver: dict = {"method": method}
    if method in ADAPTIVE:
        solver.update(rtol=settings.rtol, atol=settings.atol)
    else:
        solver["step_size"] = config.get("step", settings.step)
    if config["adjoint"]:
        solver["adjoint"] = True
        solver.update(config.get("adjoint_kwargs", {}))
    torch.manual_seed(config.get("seed", 0))
    model = ContinuousGNN(dataset.num_features, settings.hidden, dataset.num_classes,
                          GRAFFEnergy(settings.hidden, w=settings.w), t_end=config.get("t_end", settings.t_end),
                          solver=solver, dropout=settings.dropout, input_dropout=settings.input_dropout,
                          activation=config.get("activation"))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    saved: dict[int, int] = {}

    def pack(tensor):
        try:
            storage = tensor.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # sparse or other storage-less tensors
            pass
        return tensor

    def train_step(track: bool = False) -> tuple[float, float, int, int]:
        model.train()
        optimizer.zero_grad()
        wall, cpu = time.perf_counter(), time.process_time()
        if track:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                logits, solution = model.forward_with_solution(data.x, graph)
                loss = F.cross_entropy(logits[train], data.y[train])
        else:
            logits, solution = model.forward_with_solution(data.x, graph)
            loss = F.cross_entropy(logits[train], data.y[train])
        loss.backward()
        optimizer.step()
        return (time.perf_counter() - wall, time.process_time() - cpu, solution.stats.nfe_forward,
                solution.stats.nfe_backward)

    result: dict = {"config": config, "failed": None}
    non_converged = 0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            epochs, best = [], (-1.0, 0.0, 0)
            for epoch in range(1, config["epochs"] + 1):
                if epoch == 2:  # the measured step: after one warm-up step (allocator, lazy initialisation)
                    step, peak = measure_peak(lambda: train_step(track=True))
                    epochs.append(step)
                    result["peak_method"], result["peak_bytes"] = peak.method, peak.bytes
                    result["saved_bytes"] = sum(saved.values())
                else:
                    epochs.append(train_step())
                model.eval()
                with torch.no_grad():
                    pred = model(data.x, graph).argmax(1)
                val_acc = float((pred[val] == data.y[val]).float().mean())
                test_acc = float((pred[test] == data.y[test]).float().mean())
                if val_acc > best[0]:
                    best = (val_acc, test_acc, epoch)
            non_converged = sum("did not converge" in str(w.message) for w in caught)
    except IntegrationError as err:
        result["failed"] = str(err).split(". Fix:")[0]
        return result
    timed = epochs[2:] or epochs[1:]
    result.update(
        val_acc=best[0], test_acc=best[1], best_epoch=best[2],
        nfe_forward=statistics.mean(e[2] for e in epochs), nfe_backward=statistics.mean(e[3] for e in epochs),
        nfe_forward_per_epoch=[e[2] for e in epochs], nfe_backward_per_epoch=[e[3] for e in epochs],
        epoch_wall=statistics.median(e[0] for e in timed), epoch_cpu=statistics.median(e[1] for e in timed),
        non_converged_warnings=non_converged, epochs_run=len(epochs),
    )
    return result


# ----------------------------------------------------------------------------------------------- parent process


def _child_entry(conn, config: dict, settings: ModelSettings) -> None:
    try:
        result = child(config, settings)
    except BaseException as err:  # reported to the parent, which records the configuration as failed
        result = {"config": config, "failed": f"child crashed: {type(err).__name__}: {err}"}
    conn.send(result)
    conn.close()


def run_child(context, config: dict, settings: ModelSettings, timeout: float) -> dict:
    """Run one configuration in a fresh process forked from the fork server (modules imported, nothing run)."""
    started = time.perf_counter()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child_entry, args=(send, config, settings))
    process.start()
    send.close()
    result = None
    if receive.poll(timeout):
        try:
            result = receive.recv()
        except EOFError:
            result = None
    process.join(5.0)
    if process.is_alive():
        process.kill()  # only this configuration's own process
        process.join()
        result = result or {"config": config, "failed": f"timed out after {timeout:.0f} s"}
    if result is None:
        result = {"config": config, "failed": f"child exited with code {process.exitcode}"}
    result["subprocess_s"] = time.perf_counter() - started
    return result


def fork_server():
    """A fork server with torch, PyG and the package imported, and the child environment of every run.

    ``MALLOC_MMAP_THRESHOLD_`` must be in the environment when a process starts (glibc reads it once), so it
    is set before the server starts; the children inherit it with the allocator state.
    """
    import multiprocessing

    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "torch_geometric", "continuous_gnn", "continuous_gnn.data", __name__])
    return context
