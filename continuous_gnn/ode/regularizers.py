r"""Trajectory regularisers integrated alongside the state: kinetic energy and Jacobian Frobenius norm.

For a vector field :math:`f(t, x)` on :math:`[0, T]` (Finlay et al. 2020, "How to train your neural ODE"):

.. math::
    R_K = \int_0^T \|f(t, x(t))\|^2 \,dt, \qquad
    R_J = \int_0^T \Big\|\frac{\partial f}{\partial x}(t, x(t))\Big\|_F^2 \,dt,

with :math:`\|\cdot\|` the Euclidean norm of the flattened state (the Frobenius norm of node features) and
:math:`\|J\|_F^2 = \sum_{ij} J_{ij}^2` the **Frobenius** norm of the Jacobian of the flattened field. Both
integrals are appended to the state as two extra scalar channels, so any solver (fixed or adaptive, direct
or adjoint) integrates them on the same steps as :math:`x`:

.. math::
    \frac{d}{dt}\begin{pmatrix} x \\ r_K \\ r_J \end{pmatrix}
    = \begin{pmatrix} f(t, x) \\ \|f(t, x)\|^2 \\ \|\varepsilon^\top \partial_x f(t, x)\|^2 \end{pmatrix},
    \qquad r_K(0) = r_J(0) = 0.

:math:`R_J` uses Hutchinson's estimator :math:`\|J\|_F^2 = \operatorname{tr}(J^\top J)
= \mathbb E_\varepsilon\big[\|\varepsilon^\top J\|^2\big]` for any probe with
:math:`\mathbb E[\varepsilon\varepsilon^\top] = I` (standard Gaussian or Rademacher), one vector–Jacobian
product per evaluation. The probe is drawn once per solve (from an explicit ``torch.Generator``) and held
fixed over time, so the augmented field stays smooth in :math:`t` for adaptive solvers; :math:`r_J(T)` is then
an unbiased estimate of :math:`R_J` (up to the solver's error). This is **not** the divergence
:math:`\operatorname{tr}(J) = \mathbb E[\varepsilon^\top J \varepsilon]` that some codebases compute under the
name ``jacobian_norm2``.

For an exact gradient flow :math:`f = -\nabla E`, :math:`R_K = E(x(0)) - E(x(T))` (the energy dissipated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_bool
from .field import VectorField, captured_tensors, jump_times
from .integrate import integrate
from .solution import Solution

__all__ = [
    "REGULARIZERS",
    "RegularizedField",
    "hutchinson_frobenius",
    "integrate_regularized",
    "regularized_forward",
    "sample_probe",
]

#: Names of the regularisers, in the order of the extra state channels.
REGULARIZERS = ("kinetic", "jacobian")
_NOISES = ("gaussian", "rademacher")


def sample_probe(like: Tensor, noise: str = "gaussian", generator: torch.Generator | None = None) -> Tensor:
    r"""A Hutchinson probe :math:`\varepsilon` shaped like ``like``, with
    :math:`\mathbb E[\varepsilon\varepsilon^\top] = I`.

    Args:
        like (Tensor): gives the shape, dtype and device.
        noise (str): ``"gaussian"`` (:math:`\varepsilon_i \sim \mathcal N(0, 1)`) or ``"rademacher"``
            (:math:`\varepsilon_i = \pm 1` with probability 1/2 each, the lower-variance choice) (default:
            ``"gaussian"``).
        generator (torch.Generator, optional): the source of randomness; the global RNG when ``None``
            (default: ``None``).
    """
    if noise not in _NOISES:
        raise ValueError(f"unknown noise {noise!r}; choose one of {_NOISES}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    device = like.device if generator is None else generator.device
    if noise == "gaussian":
        probe = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=device)
    else:
        probe = torch.randint(0, 2, like.shape, generator=generator, device=device).to(like.dtype) * 2 - 1
    return probe.to(like.device)


def hutchinson_frobenius(output: Tensor, x: Tensor, probe: Tensor, *, create_graph: bool | None = None) -> Tensor:
    r"""One Hutchinson sample of the squared Frobenius norm of :math:`J = \partial\, \mathrm{output} / \partial x`.

    .. math::
        \widehat{\|J\|_F^2} = \|\varepsilon^\top J\|^2 = \sum_j \Big(\sum_i \varepsilon_i J_{ij}\Big)^2,
        \qquad \mathbb E_\varepsilon\big[\widehat{\|J\|_F^2}\big] = \operatorname{tr}(J^\top J) = \|J\|_F^2,

    computed with one vector–Jacobian product. ``output`` must have been computed from ``x`` with grad enabled.

    Args:
        output (Tensor): :math:`f(x)`, shape like ``probe``.
        x (Tensor): the input it was computed from.
        probe (Tensor): :math:`\varepsilon`, e.g. from :func:`sample_probe`.
        create_graph (bool, optional): keep the graph of the estimate for differentiation (default:
            whether grad mode is on).

    Returns:
        Tensor: a 0-dim tensor.
    """
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    if not output.requires_grad:  # f does not depend on x (or on anything): J = 0
        return output.new_zeros(())
    (vjp,) = torch.autograd.grad(output, x, probe, create_graph=create_graph, allow_unused=True)
    if vjp is None:
        return output.new_zeros(())
    return (vjp * vjp).sum()


class RegularizedField(VectorField):
    r"""The augmented vector field of a flat state :math:`z = (\operatorname{vec}(x), r_K, r_J)`.

    Only the requested channels are present: ``kinetic`` adds :math:`\dot r_K = \|f\|^2`, ``jacobian`` adds
    :math:`\dot r_J = \|\varepsilon^\top \partial_x f\|^2` (see the module docstring). The field follows the
    grad-mode rules of :class:`~continuous_gnn.energies.Energy`: the vector–Jacobian product runs inside
    ``torch.enable_grad()`` on a fresh leaf only when the state is not already tracked, and keeps its graph
    only when grad mode was on at entry, so it works under ``torch.no_grad()``, direct backprop and the adjoint.

    Args:
        func: the vector field ``f(t, x)``.
        shape (torch.Size): the shape of :math:`x`.
        kinetic (bool): add the kinetic-energy channel.
        jacobian (bool): add the Jacobian-Frobenius channel.
        probe (Tensor, optional): :math:`\varepsilon`, shaped like :math:`x`; required with ``jacobian``.
    """

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor], shape: torch.Size, *, kinetic: bool,
                 jacobian: bool, probe: Tensor | None = None) -> None:
        super().__init__()
        if jacobian and (probe is None or tuple(probe.shape) != tuple(shape)):
            raise ValueError("the Jacobian regulariser needs a probe shaped like the state")
        self.func = func
        self.shape = torch.Size(shape)
        self.numel = self.shape.numel()
        self.kinetic = kinetic
        self.jacobian = jacobian
        self.probe = probe

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        x = z[: self.numel].view(self.shape)
        grad_on = torch.is_grad_enabled()
        extras = []
        if self.jacobian:
            with torch.enable_grad():
                leaf = x if x.requires_grad else x.detach().requires_grad_()
                f = self.func(t, leaf)
                jac = hutchinson_frobenius(f, leaf, self.probe, create_graph=grad_on)
            if not grad_on:
                f, jac = f.detach(), jac.detach()
        else:
            f = self.func(t, x)
            jac = None
        if self.kinetic:
            extras.append((f * f).sum().reshape(1))
        if jac is not None:
            extras.append(jac.reshape(1).to(f.dtype))
        return torch.cat([f.reshape(-1), *extras])

    def captured_tensors(self) -> tuple[Tensor, ...]:
        """The tensors the wrapped field declares (e.g. a bound ``x0``), for the adjoint."""
        return captured_tensors(self.func)

    def jump_times(self) -> list[float]:
        """The wrapped field's jumps in time (e.g. the pieces of an :class:`~continuous_gnn.EnergySchedule`)."""
        return jump_times(self.func)

    def extra_repr(self) -> str:
        return f"shape={tuple(self.shape)}, kinetic={self.kinetic}, jacobian={self.jacobian}"


def integrate_regularized(
    func: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    t_end: float,
    *,
    kinetic: bool = True,
    jacobian: bool = False,
    noise: str = "gaussian",
    generator: torch.Generator | None = None,
    probe: Tensor | None = None,
    **solver_kwargs: Any,
) -> tuple[Solution, dict[str, Tensor]]:
    r"""Integrate :math:`\dot x = f(t, x)` and the requested regularisers together, with any solver.

    .. math::
        R_K = \int_0^T \|f(t, x(t))\|^2 dt, \qquad
        R_J \approx \int_0^T \|\varepsilon^\top \partial_x f(t, x(t))\|^2 dt, \quad
        \mathbb E_\varepsilon[R_J] = \int_0^T \|\partial_x f(t, x(t))\|_F^2 dt.

    The regularisers are extra scalar channels of one flat state (see :class:`RegularizedField`), so they are
    differentiable by direct backprop and by the adjoint like the state itself. Adaptive error control sees the
    flat state (RMS over all entries), where the two extra channels weigh like two more entries: the steps are
    essentially those of the unregularised solve. Statistics count evaluations of the augmented field, one
    per evaluation of :math:`f` (plus one vector–Jacobian product each with ``jacobian=True``).

    Args:
        func: the vector field ``f(t, x)`` (an ``nn.Module`` for the adjoint; a bound
            :class:`~continuous_gnn.GradientFlow` works as is).
        x0 (Tensor): the initial state.
        t_end (float): :math:`T`.
        kinetic (bool): compute :math:`R_K` (default: ``True``).
        jacobian (bool): compute :math:`R_J`, the squared Frobenius norm of the Jacobian (default: ``False``).
        noise (str): Hutchinson probe, ``"gaussian"`` or ``"rademacher"`` (default: ``"gaussian"``).
        generator (torch.Generator, optional): randomness of the probe (default: ``None``, the global RNG).
        probe (Tensor, optional): a given probe shaped like ``x0`` instead of a random one (default: ``None``).
        **solver_kwargs: arguments of :func:`~continuous_gnn.integrate` (``solver``, ``adjoint``,
            ``save_at``, or the torchdiffeq-style keywords ``method``, ``step_size``, ``rtol``, ...).

    Returns:
        tuple: the :class:`~continuous_gnn.Solution` of :math:`x` alone (``final``, ``states`` shaped like
        ``x0``; its ``stats`` are those of the augmented solve; its ``integrals`` hold the regularisers) and a
        dict with ``"kinetic"`` and/or ``"jacobian"``, 0-dim tensors holding :math:`R_K` and :math:`R_J` at
        :math:`T`.

    Raises:
        ValueError: if no regulariser is requested, on an unknown ``noise``, or a ``probe`` of the wrong shape.
        TypeError: if ``probe`` is given and is no tensor.
    """
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise TypeError("x0 must be a floating-point tensor")
    check_bool(kinetic, "kinetic")
    check_bool(jacobian, "jacobian")
    if not (kinetic or jacobian):
        raise ValueError("request at least one regulariser (kinetic=True or jacobian=True), or call integrate")
    if jacobian:
        if probe is None:
            probe = sample_probe(x0, noise, generator)
        elif not isinstance(probe, Tensor):
            raise TypeError(f"probe must be a tensor shaped like the state, got {type(probe).__name__}; draw one "
                            "with sample_probe(x0)")
        elif tuple(probe.shape) != tuple(x0.shape):
            raise ValueError(f"probe must have the shape of x0 {tuple(x0.shape)}, got {tuple(probe.shape)}")
        probe = probe.detach().to(dtype=x0.dtype, device=x0.device)
        if not bool(torch.isfinite(probe).all()):
            raise ValueError("probe must be finite; drop or fix its inf/nan entries")
    else:
        probe = None
    names = [name for name, on in zip(REGULARIZERS, (kinetic, jacobian)) if on]
    field = RegularizedField(func, x0.shape, kinetic=kinetic, jacobian=jacobian, probe=probe)
    z0 = torch.cat([x0.reshape(-1), x0.new_zeros(len(names))])
    solution = integrate(field, z0, t_end, **solver_kwargs)
    numel = x0.numel()
    states = solution.states[:, :numel].reshape(len(solution.times), *x0.shape)
    values = {name: solution.final[numel + i] for i, name in enumerate(names)}
    return Solution(final=states[-1], times=solution.times, states=states, stats=solution.stats,
                    integrals=values), values


def regularized_forward(model: nn.Module, x: Tensor, graph, *, kinetic: bool = True, jacobian: bool = False,
                        noise: str = "gaussian", generator: torch.Generator | None = None,
                        **overrides: Any) -> tuple[Tensor, Solution, dict[str, Tensor]]:
    r"""A :class:`~continuous_gnn.ContinuousGNN` forward pass that also returns the flow's regularisers.

    Runs the model's own encode → integrate path (:meth:`~continuous_gnn.ContinuousGNN.solve`, with its solver
    settings unless ``overrides`` replace them) and decoder, with the regularisers integrated alongside. On a
    fixed grid the logits are bitwise those of ``model(x, graph)`` and the gradients agree up to rounding
    (autograd sums their pieces in another order once the state is flattened); an adaptive method's error
    control also sees the regulariser channels, so there the two agree to the solver's tolerance. A typical
    training loss is ``cross_entropy + λ_K · regs["kinetic"] + λ_J · regs["jacobian"]``.

    Args:
        model (ContinuousGNN): the model.
        x (Tensor): node features ``(|V|, p)``.
        graph (Graph): the graph.
        kinetic, jacobian, noise, generator: as in :func:`integrate_regularized`.
        **overrides: ``t_end``, ``solver``, ``adjoint`` or ``save_at`` for this call, as in
            :meth:`~continuous_gnn.ContinuousGNN.solve`.

    Returns:
        tuple: logits ``(|V|, k)``, the :class:`~continuous_gnn.Solution` of the flow, and the dict of
        regulariser values.
    """

    def integrator(func, x0, t_end, **kwargs):
        solution, _ = integrate_regularized(func, x0, t_end, kinetic=kinetic, jacobian=jacobian, noise=noise,
                                            generator=generator, **kwargs)
        return solution

    if not callable(getattr(model, "forward_with_solution", None)):
        raise TypeError(f"regularized_forward takes a ContinuousGNN (a model with forward_with_solution), got "
                        f"{type(model).__name__}; for another field, call integrate_regularized")
    logits, solution = model.forward_with_solution(x, graph, integrator=integrator, **overrides)
    return logits, solution, dict(solution.integrals)
