"""The wrapper every solve runs through: it counts evaluations and steps, and turns failures into typed errors."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import IntegrationError
from .solution import SolveStats

__all__ = ["GuardedField", "all_finite", "finite_flag"]


def all_finite(tensor: Tensor) -> bool:
    """Whether every entry is finite, read back to the host: :func:`finite_flag` as a ``bool``."""
    return bool(finite_flag(tensor))


def finite_flag(tensor: Tensor) -> Tensor:
    """Whether every entry is finite, as a flag on the tensor's device (nothing is read back). Exact, in one
    read: the smallest and largest entries are finite exactly when all are (nan and ±inf reach one of them), and
    unlike a sum they cannot overflow."""
    tensor = tensor.detach()
    if tensor.numel() == 0:
        return torch.ones((), dtype=torch.bool, device=tensor.device)
    if tensor.is_complex():
        return torch.isfinite(tensor).all()
    low, high = torch.aminmax(tensor)
    return torch.isfinite(low) & torch.isfinite(high)


class GuardedField(nn.Module):
    r"""Wraps the user's field: counts evaluations and steps, enforces the budgets, and checks for inf/nan.

    Step budgets, step-size underflow and non-finite states are checked in torchdiffeq's public step
    callbacks (``callback_step`` runs before every attempted step, with the test torchdiffeq asserts right
    after), so that failures of the adjoint's backward solve, which runs inside autograd, are typed errors too.

    On a fixed grid (``grid`` given) the forward solve never reads a value back from the device: each
    evaluation's finiteness is kept as a device flag, and the step statistics come from the grid.
    :func:`~continuous_gnn.integrate` reads the flags and the returned states' finiteness back once, at the end
    (:meth:`solve_finite`), and only when one fails asks :meth:`non_finite_solve` which evaluation failed first.
    The final states alone would not do: a stage that no update weighs directly (the first of ``midpoint``,
    whose step is :math:`x + \tau f(x + \tfrac{\tau}{2} k_1)`) can return inf where the next stage, evaluated
    at an infinite point, returns a finite value. On a GPU each read-back waits for the queued work, so a
    training step no longer waits once per evaluation and three times per step.

    torchdiffeq finds the callbacks as attributes of the field and warns about any that the method cannot
    call, so the constructor sets exactly those of the forward and backward methods: ``callback_step`` for a
    fixed grid; ``callback_step``, ``callback_accept_step`` and ``callback_reject_step`` for an adaptive
    Runge–Kutta method; none for ``scipy_solver``; the same names with ``_adjoint`` for the backward solve.

    Args:
        func: the user's field ``f(t, x)``.
        stats (SolveStats): the record to fill in.
        forward (str): ``"fixed"``, ``"adaptive"`` or ``"none"`` (no step callbacks).
        backward (str or None): the same for the adjoint's backward solve (``None`` without the adjoint).
        max_nfe (int, optional): evaluation budget of each solve.
        max_steps (tuple): attempted-step budgets of the forward and backward solves (``None`` = unlimited).
        rtol, atol (float, optional): the forward tolerances, for error messages.
        backward_solver (tuple, optional): the backward solve's method, rtol and atol (the tolerances ``None`` for
            a fixed grid), for the error messages of that solve.
        grid (Tensor, optional): the forward solve's fixed grid (with ``forward="fixed"``).
        on_step (callable, optional): called as ``on_step(t, x)`` with each point that the forward solve's steps
            reach inside :math:`(0, T)` (:func:`~continuous_gnn.integrate`'s ``on_step``).
    """

    def __init__(self, func: Callable, stats: SolveStats, *, forward: str, backward: str | None,
                 max_nfe: int | None, max_steps: tuple[int | None, int | None],
                 rtol: float | None, atol: float | None, grid: Tensor | None = None,
                 backward_solver: tuple[str, float | None, float | None] | None = None,
                 on_step: Callable[[float, Tensor], None] | None = None) -> None:
        super().__init__()
        if (grid is not None) != (forward == "fixed"):
            raise ValueError("a fixed-grid forward solve needs its grid, and only it")
        self.func = func
        self.stats = stats
        self.max_nfe = max_nfe
        self.max_steps = max_steps
        self.rtol, self.atol = rtol, atol
        if (backward_solver is not None) != (backward is not None):
            raise ValueError("an adjoint's backward solve needs its method and tolerances, and only it")
        self.backward_solver = backward_solver
        self.backward_phase = False
        self.t_reached: float | None = None
        self.attempts = [0, 0]  # forward, backward
        self.user_error: BaseException | None = None
        self.grid_times: list[float] | None = grid.tolist() if grid is not None else None
        self.on_step = on_step
        # (t, whether f(t, x) was finite) of every forward evaluation on a fixed grid, read only after a failure
        self.finite_flags: list[tuple[Tensor, Tensor]] = []
        for suffix, kind in (("", forward), ("_adjoint", backward)):
            if kind == "fixed":
                setattr(self, "callback_step" + suffix, self._fixed_step)
            elif kind == "adaptive":
                setattr(self, "callback_step" + suffix, self._adaptive_attempt)
                setattr(self, "callback_accept_step" + suffix, self._accept)
                setattr(self, "callback_reject_step" + suffix, self._reject)

    def fail(self, reason: str, t: float | None, nfe: int, detail: str = "",
             advice: str | None = None) -> IntegrationError:
        """The error of the solve now running, named by that solve's own method and tolerances."""
        method, rtol, atol = (self.backward_solver if self.backward_phase and self.backward_solver is not None
                              else (self.stats.method, self.rtol, self.atol))
        return IntegrationError(reason, method=method, rtol=rtol, atol=atol, t=t, nfe=nfe, detail=detail, advice=advice)

    @property
    def phase(self) -> str:
        return "adjoint backward solve" if self.backward_phase else "forward solve"

    @property
    def nfe(self) -> int:
        return self.stats.nfe_backward if self.backward_phase else self.stats.nfe_forward

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        stats = self.stats
        if self.backward_phase:
            stats.nfe_backward += 1
        else:
            stats.nfe_forward += 1
        nfe = self.nfe
        if self.max_nfe is not None and nfe > self.max_nfe:
            # On a fixed grid the tolerances do not set the cost, so the general advice would mislead.
            fixed = self.grid_times is not None and not self.backward_phase
            raise self.fail("max_nfe", float(t.detach()), nfe - 1, f"max_nfe={self.max_nfe} reached in the {self.phase}",
                            advice=("use a larger step_size, a method with fewer evaluations per step or a smaller T, "
                                    "or raise max_nfe") if fixed else None)
        try:
            out = self.func(t, x)
        except BaseException as err:  # re-raised unchanged; remembered so integrate never translates it
            self.user_error = err
            raise
        if not isinstance(out, Tensor) or out.shape != x.shape or out.dtype != x.dtype:
            # torchdiffeq would broadcast a wrong shape into the state on fixed grids, silently.
            got = (f"{tuple(out.shape)} {out.dtype}" if isinstance(out, Tensor) else type(out).__name__)
            raise ValueError(f"the vector field returned {got} for a state of shape {tuple(x.shape)} {x.dtype}; "
                             "f(t, x) must return a tensor of x's shape and dtype")
        if self.grid_times is not None and not self.backward_phase:
            self.finite_flags.append((t.detach(), finite_flag(out)))
        elif not all_finite(out):
            raise self.fail("non_finite", float(t.detach()), nfe, f"the vector field returned inf or nan in the {self.phase}")
        return out

    def solve_finite(self, states: Tensor) -> bool:
        """Whether ``states`` and every forward evaluation of a fixed grid were finite, in one read-back."""
        return bool(torch.stack([finite_flag(states), *(flag for _, flag in self.finite_flags)]).all())

    def non_finite_solve(self, t_final: float) -> IntegrationError:
        """The error of a solve whose final states are not finite: the first evaluation that returned inf or nan
        (one read-back for all of them), else the last update, which overflowed after the last evaluation."""
        if self.finite_flags:
            finite = torch.stack([flag for _, flag in self.finite_flags]).tolist()
            if not all(finite):
                first = finite.index(False)
                return self.fail("non_finite", float(self.finite_flags[first][0]), first + 1,
                                 "the vector field returned inf or nan in the forward solve")
        return self.fail("non_finite", t_final, self.stats.nfe_forward, "the final state is inf or nan")

    # ------------------------------------------------------------------ torchdiffeq's step callbacks

    def _fixed_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self._attempt(t0, y0, dt, adaptive=False)
        if self.grid_times is None or self.backward_phase:
            self._count_step(t0, dt)
            return
        # The steps of a fixed grid are the grid's: read from it, not from the device.
        self.stats.steps_accepted += 1
        step = self.stats.steps_accepted
        if step > 1 and self.on_step is not None:  # the start of step k is where step k - 1 ended
            self.on_step(self.grid_times[step - 1], y0)
        self.stats.last_dt = self.grid_times[step] - self.grid_times[step - 1]
        self.t_reached = self.grid_times[step]

    def _adaptive_attempt(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self._attempt(t0, y0, dt, adaptive=True)

    def _accept(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        # torchdiffeq reports an accepted step by its start; the start of one is where the one before ended.
        if self.on_step is not None and not self.backward_phase and self.stats.steps_accepted > 0:
            self.on_step(float(t0.detach()), y0)
        self._count_step(t0, dt)

    def _reject(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self._count_step(t0, dt, rejected=True)

    def _attempt(self, t0: Tensor, y0: Tensor, dt: Tensor, adaptive: bool) -> None:
        """Called before every step (accepted or not); ``t0`` is the true time even in reversed solves."""
        phase = int(self.backward_phase)
        self.attempts[phase] += 1
        budget = self.max_steps[phase]
        if budget is not None and self.attempts[phase] > budget:
            raise self.fail("max_steps", float(t0.detach()), self.nfe, f"max_steps={budget} reached in the {self.phase}")
        if adaptive:
            # torchdiffeq asserts exactly this next; a reversed (backward) solve runs in negated time.
            internal = -t0 if self.backward_phase else t0
            if not bool(internal + dt > internal):
                raise self.fail("dt_underflow", float(t0.detach()), self.nfe,
                                f"the step size fell to {float(dt):.3g} in the {self.phase}")
            states = y0 if isinstance(y0, (tuple, list)) else (y0,)  # the adjoint's state is a tuple
            if not all(all_finite(y) for y in states):
                raise self.fail("non_finite", float(t0.detach()), self.nfe,
                                f"the state became inf or nan in the {self.phase}")

    def _count_step(self, t0: Tensor, dt: Tensor, rejected: bool = False) -> None:
        stats = self.stats
        if self.backward_phase:
            if rejected:
                stats.steps_backward_rejected += 1
            else:
                stats.steps_backward += 1
            return
        if rejected:
            stats.steps_rejected += 1
        else:
            stats.steps_accepted += 1
            stats.last_dt = float(dt.detach())
            self.t_reached = float(t0.detach()) + float(dt.detach())

    def translate(self, err: AssertionError) -> IntegrationError:
        """torchdiffeq's bare assertions as typed errors (a fallback: the step callbacks catch these first)."""
        message = str(err)
        if "underflow in dt" in message:
            reason = "dt_underflow"
        elif "max_num_steps" in message:
            reason = "max_steps"
        elif "non-finite" in message:
            reason = "non_finite"
        else:
            raise err
        return self.fail(reason, self.t_reached, self.nfe, message.split(":")[0])
