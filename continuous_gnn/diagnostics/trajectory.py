r"""Diagnostics recorded along a trajectory :math:`X(t_0), X(t_1), \dots` of any solver.

:data:`DIAGNOSTICS` maps a metric name to a function ``(x, graph, cache) -> Tensor`` returning a 0-dim
tensor; ``cache`` is a dict shared by all states of one trajectory, so that expensive graph-only work
(the eigen-decomposition behind the ``cos_*`` metrics) is done once per call of
:func:`trajectory_diagnostics`. Register a new metric by adding an entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from continuous_gnn.diagnostics._checks import as_node_features, frobenius_norm
from continuous_gnn.diagnostics.energy import dirichlet_energy, rayleigh_quotient
from continuous_gnn.diagnostics.mad import mean_average_distance
from continuous_gnn.diagnostics.spectral import eigvec_cosines, laplacian_spectrum
from continuous_gnn.graph import Graph

__all__ = ["DIAGNOSTICS", "DEFAULT_METRICS", "Diagnostic", "trajectory_diagnostics"]

#: A diagnostic: ``(x, graph, cache) -> Tensor``, a 0-dim value of one state ``x`` (see :data:`DIAGNOSTICS`).
Diagnostic = Callable[[Tensor, Graph, dict], Tensor]

#: Metrics computed when none are named: all :math:`O(|E|\,d)`, no eigen-decomposition.
DEFAULT_METRICS: tuple[str, ...] = ("dirichlet", "rayleigh", "norm")


def _cosine(key: str) -> Diagnostic:
    def diagnostic(x: Tensor, graph: Graph, cache: dict) -> Tensor:
        if "spectrum" not in cache:
            cache["spectrum"] = laplacian_spectrum(graph)
        return eigvec_cosines(x, graph, cache["spectrum"])[key]

    diagnostic.__doc__ = f"``eigvec_cosines(x, graph)[{key!r}]`` (dense eigendecomposition, once per trajectory)."
    return diagnostic


def _norm(x: Tensor, graph: Graph, cache: dict) -> Tensor:
    """Frobenius norm of ``x`` (:func:`~continuous_gnn.diagnostics._checks.frobenius_norm`), once ``x`` is known
    to be node features of ``graph``, as the other diagnostics check."""
    return frobenius_norm(as_node_features(x, graph.num_nodes))


def _mad(use_graph: bool) -> Diagnostic:
    """MAD of a state, ``nan`` for one that blew up: ``mean_average_distance`` refuses non-finite rows (a nan row
    would be dropped like a zero row), but a trajectory records a blown-up state as the other diagnostics do."""
    def mad(x: Tensor, graph: Graph, cache: dict) -> Tensor:
        if isinstance(x, Tensor) and x.is_floating_point() and not bool(torch.isfinite(x).all()):
            return torch.full((), float("nan"), dtype=x.dtype, device=x.device)
        return mean_average_distance(x, graph if use_graph else None)
    return mad


#: name -> diagnostic; see the module docstring.
DIAGNOSTICS: dict[str, Diagnostic] = {
    "dirichlet": lambda x, graph, cache: dirichlet_energy(x, graph),
    "rayleigh": lambda x, graph, cache: rayleigh_quotient(x, graph),
    "norm": _norm,
    "mad": _mad(use_graph=True),
    "mad_global": _mad(use_graph=False),
    "cos_low": _cosine("low"),
    "cos_high": _cosine("high"),
    "cos_low_channel_mean": _cosine("low_channel_mean"),
    "cos_high_channel_mean": _cosine("high_channel_mean"),
}


def _as_states(states: Tensor | Sequence[Tensor]) -> list[Tensor]:
    if isinstance(states, Tensor):
        if states.dim() != 3:
            raise ValueError(
                f"a trajectory tensor must have shape (num_times, num_nodes, channels); got {tuple(states.shape)}"
            )
        return list(states.unbind(0))
    if hasattr(states, "states") and hasattr(states, "times"):  # a Solution: its states, with its times
        raise TypeError("states is a Solution; pass its states and times: "
                        "trajectory_diagnostics(solution.states, solution.times, graph)")
    if not isinstance(states, Sequence):
        raise TypeError(f"states must be a (num_times, num_nodes, channels) tensor or a sequence of states, got "
                        f"{type(states).__name__}")
    return list(states)


@torch.no_grad()
def trajectory_diagnostics(
    states: Tensor | Sequence[Tensor],
    times: Tensor | Sequence[float] | None,
    graph: Graph,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> list[dict[str, Any]]:
    """Evaluate diagnostics on every state of a trajectory.

    Args:
        states (Tensor or sequence of Tensor): a tensor of shape ``(T, n, d)`` (as returned by
            ``torchdiffeq.odeint``) or a sequence of ``(n, d)`` tensors.
        times (Tensor or sequence of float, optional): the time of each state, length ``T``
            (default: the step indices ``0, 1, ...``).
        graph (Graph): the graph the states live on.
        metrics (sequence of str): names from :data:`DIAGNOSTICS`
            (default: :data:`DEFAULT_METRICS`).

    Returns:
        list[dict]: one dict per state, ``{"time": float, name: float, ...}`` with plain Python floats.

    Raises:
        TypeError: when ``metrics`` or ``times`` is not a sequence.
        ValueError: on an unknown metric name (the message lists the known ones), no metric, no state, times
            that are not finite and strictly increasing, or when ``times`` and ``states`` differ in length.
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    if not hasattr(metrics, "__iter__"):
        raise TypeError(f"metrics must be a sequence of names from {sorted(DIAGNOSTICS)}, got "
                        f"{type(metrics).__name__}")
    metrics = list(metrics)
    if not metrics:
        raise ValueError(f"no diagnostics asked for; name some of {sorted(DIAGNOSTICS)} (or leave metrics out for "
                         f"{list(DEFAULT_METRICS)})")
    unknown = [name for name in metrics if name not in DIAGNOSTICS]
    if unknown:
        raise ValueError(f"unknown diagnostics {unknown}; known: {sorted(DIAGNOSTICS)}")
    state_list = _as_states(states)
    if not state_list:
        raise ValueError("the trajectory has no states; pass at least one (num_nodes, channels) state")
    if times is None:
        time_list = [float(k) for k in range(len(state_list))]
    else:
        if not isinstance(times, Tensor) and not isinstance(times, Sequence):
            raise TypeError(f"times must be a sequence of floats, one per state, got {type(times).__name__}")
        time_list = [float(t) for t in (times.flatten() if isinstance(times, Tensor) else times)]
    if len(time_list) != len(state_list):
        raise ValueError(f"got {len(state_list)} states but {len(time_list)} times")
    if not all(math.isfinite(t) for t in time_list) or any(b <= a for a, b in zip(time_list, time_list[1:])):
        raise ValueError(f"times must be finite and strictly increasing, one per state in order; got {time_list}")

    cache: dict = {}
    records = []
    for time, state in zip(time_list, state_list):
        record: dict[str, Any] = {"time": time}
        for name in metrics:
            record[name] = float(DIAGNOSTICS[name](state, graph, cache))
        records.append(record)
    return records
