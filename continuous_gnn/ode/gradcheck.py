r"""Compare adjoint gradients with direct backprop: :func:`grad_check`.

Direct backprop differentiates the discretised forward solve exactly; the adjoint method solves a second ODE
backwards in time, so its gradients carry that solve's discretisation error (which shrinks with the step size
or tolerance). :func:`grad_check` measures the gap per parameter, for a
:class:`~continuous_gnn.ContinuousGNN` or for any loss written as a function of :func:`~continuous_gnn.integrate`
keyword arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..models.continuous_gnn import ContinuousGNN
from .settings import Adjoint

__all__ = ["GradCheckReport", "ParameterGap", "grad_check"]

_ADJOINT_KEYWORDS = ("adjoint_method", "adjoint_step_size", "adjoint_rtol", "adjoint_atol", "seminorm")


@dataclass(frozen=True)
class ParameterGap:
    r"""How far one parameter's adjoint gradient :math:`g_a` is from its direct gradient :math:`g_d`.

    Attributes:
        max_abs (float): :math:`\|g_a - g_d\|_\infty`.
        max_rel (float): :math:`\|g_a - g_d\|_\infty / \|g_d\|_\infty` (0 when both vanish, ``inf`` when only
            :math:`g_d` does).
        scale (float): :math:`\|g_d\|_\infty`.
        passed (bool): :math:`\|g_a - g_d\|_\infty \le \mathrm{atol} + \mathrm{rtol}\,\|g_d\|_\infty`, and
            the parameter is not ``unused``.
        unused (bool): the loss does not depend on the parameter: direct backprop returns no gradient for it,
            and the adjoint none or zeros (it returns one for every parameter of the integrated module), so there
            is nothing to compare; such a parameter fails (default: ``False``).
    """

    max_abs: float
    max_rel: float
    scale: float
    passed: bool
    unused: bool = False


@dataclass(frozen=True)
class GradCheckReport:
    """The result of :func:`grad_check`.

    Attributes:
        parameters (dict[str, ParameterGap]): the gap of each parameter, by name.
        max_abs (float): the largest absolute gap over all parameters.
        max_rel (float): the largest relative gap over all parameters.
        passed (bool): whether every parameter passed (``False`` when any parameter is unused).
        rtol, atol (float): the tolerances of the check.
        nfe_backward (int or None): evaluations of the adjoint's backward solve (when the function exposes its
            :class:`~continuous_gnn.SolveStats`: always for a model, else when it returns ``(loss, solution)``).
    """

    parameters: dict[str, ParameterGap]
    max_abs: float
    max_rel: float
    passed: bool
    rtol: float
    atol: float
    nfe_backward: int | None = field(default=None)

    @property
    def unused(self) -> list[str]:
        """Names of the parameters that received no gradient in either run."""
        return [name for name, gap in self.parameters.items() if gap.unused]

    def __str__(self) -> str:
        width = max([9, *(len(name) for name in self.parameters)])
        lines = [f"{'parameter':<{width}}  {'max abs':>10}  {'max rel':>10}  ok"]
        for name, gap in self.parameters.items():
            verdict = "yes" if gap.passed else "NO (unused)" if gap.unused else "NO"
            lines.append(f"{name:<{width}}  {gap.max_abs:10.3e}  {gap.max_rel:10.3e}  {verdict}")
        verdict = "passed" if self.passed else "FAILED"
        lines.append(f"{verdict} (rtol={self.rtol:g}, atol={self.atol:g}); max abs {self.max_abs:.3e}, "
                     f"max rel {self.max_rel:.3e}")
        return "\n".join(lines)


def _named_params(model_or_fn, params) -> dict[str, Tensor]:
    if params is None:
        if not isinstance(model_or_fn, nn.Module):
            raise ValueError("grad_check of a plain function needs params=[...] or {name: tensor}")
        named = {name: p for name, p in model_or_fn.named_parameters() if p.requires_grad}
    elif isinstance(params, Mapping):
        named = dict(params)
    else:
        named = {f"param{i}": p for i, p in enumerate(params)}
    if not named:
        raise ValueError("grad_check needs at least one tensor that requires grad")
    for name, p in named.items():
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise ValueError(f"{name} must be a tensor that requires grad")
    return named


def _gap(adjoint: Tensor, direct: Tensor, rtol: float, atol: float) -> ParameterGap:
    max_abs = float((adjoint - direct).abs().max()) if direct.numel() else 0.0
    scale = float(direct.abs().max()) if direct.numel() else 0.0
    if scale > 0:
        max_rel = max_abs / scale
    else:
        max_rel = 0.0 if max_abs == 0 else math.inf
    return ParameterGap(max_abs=max_abs, max_rel=max_rel, scale=scale, passed=max_abs <= atol + rtol * scale)


def grad_check(
    model_or_fn: nn.Module | Callable[..., Any],
    *inputs: Any,
    params: Iterable[Tensor] | Mapping[str, Tensor] | None = None,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    rtol: float = 1e-3,
    atol: float = 1e-8,
    seed: int = 0,
    **adjoint_kwargs: Any,
) -> GradCheckReport:
    r"""Gradients by the adjoint method vs direct backprop, parameter by parameter.

    Two ways to call it:

    * ``grad_check(model, x, graph)`` for a :class:`~continuous_gnn.ContinuousGNN`: the model runs twice with
      its own ``solver`` settings, once by direct backprop and once with the adjoint method, built from
      ``adjoint_kwargs`` (e.g. ``seminorm=True`` or ``adjoint_rtol=1e-6``), as overrides of
      :meth:`~continuous_gnn.ContinuousGNN.solve` (the model itself is not changed); the loss is
      ``loss_fn(model(x, graph))`` (default: the mean of the squared logits).
    * ``grad_check(fn, params=[...])`` for a function ``fn(**integrate_kwargs)`` that returns a scalar loss
      (or ``(loss, solution)``) computed with :func:`~continuous_gnn.integrate`; it is called as
      ``fn(adjoint=False)`` and ``fn(adjoint=True, **adjoint_kwargs)``. Extra positional ``inputs`` are passed
      first.

    Both runs start from the same RNG state (seeded with ``seed`` inside :func:`torch.random.fork_rng`, so the
    global RNG is left untouched), so dropout masks agree. A parameter passes when
    :math:`\|g_a - g_d\|_\infty \le \mathrm{atol} + \mathrm{rtol}\,\|g_d\|_\infty`. Choose ``rtol`` to match
    the solver: about the adaptive tolerance, or the step's local error for a fixed grid (with the same fixed
    grid backwards, Euler's adjoint differs from backprop by :math:`O(\tau)`).

    A parameter the loss does not depend on receives no gradient from direct backprop, and none or zeros from the
    adjoint (zeros when it belongs to the integrated module); both sides would compare as zero and pass
    vacuously, so it is flagged ``unused`` in the report (listed by
    :attr:`GradCheckReport.unused`) and fails the check. Pass ``params`` without it to compare the others.

    Args:
        model_or_fn: a :class:`~continuous_gnn.ContinuousGNN`, or a function of integrate keyword arguments.
        *inputs: the model's inputs (or leading arguments of ``fn``).
        params: the tensors to compare, a sequence or a ``{name: tensor}`` mapping (default: the model's
            parameters that require grad; required for a plain function).
        loss_fn (callable, optional): maps the model output to a scalar (default: ``out.square().mean()``).
        rtol (float): relative tolerance (default: ``1e-3``).
        atol (float): absolute tolerance (default: ``1e-8``).
        seed (int): the RNG seed of both runs (default: ``0``).
        **adjoint_kwargs: integrate arguments of the adjoint run only (``seminorm``, ``adjoint_method``,
            ``adjoint_rtol``, ``adjoint_atol``, ``adjoint_step_size``).

    Returns:
        GradCheckReport: per-parameter gaps and the overall verdict; ``passed`` is ``False`` when a parameter is
        unused.
    """
    if not (0 <= rtol < math.inf and 0 <= atol < math.inf):  # a nan tolerance would fail every check silently
        raise ValueError(f"rtol and atol must be finite and non-negative, got rtol={rtol}, atol={atol}")
    named = _named_params(model_or_fn, params)
    is_model = isinstance(model_or_fn, ContinuousGNN)
    if not is_model and not callable(model_or_fn):
        raise TypeError(f"expected a ContinuousGNN or a callable, got {type(model_or_fn).__name__}")
    adjoint_settings = None
    if is_model:
        unknown = sorted(set(adjoint_kwargs) - set(_ADJOINT_KEYWORDS))
        if unknown:
            raise TypeError(f"grad_check got unknown adjoint argument(s) {unknown}; choose from "
                            f"{', '.join(_ADJOINT_KEYWORDS)}")
        adjoint_settings = Adjoint(adjoint_kwargs.get("adjoint_method"),
                                   step_size=adjoint_kwargs.get("adjoint_step_size"),
                                   rtol=adjoint_kwargs.get("adjoint_rtol"), atol=adjoint_kwargs.get("adjoint_atol"),
                                   seminorm=adjoint_kwargs.get("seminorm", False))
    if loss_fn is None:
        def loss_fn(out: Tensor) -> Tensor:
            return out.square().mean()

    def run(adjoint: bool) -> tuple[list[Tensor | None], int | None]:
        # manual_seed seeds every CUDA device too, so their states are saved and restored with the CPU's.
        with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
            torch.manual_seed(seed)
            nfe = None
            if is_model:
                out, solution = model_or_fn.forward_with_solution(*inputs, adjoint=adjoint_settings if adjoint else None)
                loss, stats = loss_fn(out), solution.stats
            else:
                extra = {"adjoint": adjoint, **(adjoint_kwargs if adjoint else {})}
                result = model_or_fn(*inputs, **extra)
                loss, stats = (result[0], result[1].stats) if isinstance(result, tuple) else (result, None)
            if not isinstance(loss, Tensor) or loss.dim() != 0:
                raise ValueError("the loss must be a 0-dim tensor")
            grads = torch.autograd.grad(loss, list(named.values()), allow_unused=True)
            if stats is not None:
                nfe = stats.nfe_backward
        return list(grads), nfe

    def gap(p: Tensor, adjoint: Tensor | None, direct: Tensor | None) -> ParameterGap:
        # Backprop gives a parameter the loss does not read no gradient; the adjoint gives every parameter of the
        # integrated module one, all zeros for such a parameter.
        if direct is None and (adjoint is None or not bool(adjoint.any())):
            return ParameterGap(max_abs=0.0, max_rel=0.0, scale=0.0, passed=False, unused=True)
        # Unused in one run only: the other run's gradient is compared with zeros.
        return _gap(torch.zeros_like(p) if adjoint is None else adjoint,
                    torch.zeros_like(p) if direct is None else direct, rtol, atol)

    direct, _ = run(False)
    adjoint, nfe_backward = run(True)
    gaps = {name: gap(p, a, d) for (name, p), a, d in zip(named.items(), adjoint, direct)}
    return GradCheckReport(
        parameters=gaps,
        max_abs=max(g.max_abs for g in gaps.values()),
        max_rel=max(g.max_rel for g in gaps.values()),
        passed=all(g.passed for g in gaps.values()),
        rtol=rtol,
        atol=atol,
        nfe_backward=nfe_backward,
    )
