r"""Integrate a vector field with torchdiffeq, with explicit grids, solve statistics and typed failures."""

from __future__ import annotations

import math
import numbers
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from .errors import IntegrationError
from .solvers import (
    ADAPTIVE_METHODS,
    IMPLICIT_METHODS,
    SCIPY_METHODS,
    check_method,
    check_options,
    is_fixed,
    valid_options,
)

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-5
#: Step budget of each adaptive solve (forward and adjoint backward, rejected steps included) when
#: ``max_steps`` is not given: a stiff problem fails with :class:`IntegrationError` instead of running for hours.
DEFAULT_MAX_STEPS = 10_000
#: Largest fixed grid built when ``max_steps`` is not given: a mistyped step size (``1e-9``) is an error up
#: front instead of a grid of billions of points that exhausts memory or runs for hours.
DEFAULT_MAX_GRID_STEPS = 1_000_000
_GRID_SLACK = 1e-9


@dataclass
class SolveStats:
    """Statistics of one :func:`integrate` call; a fresh record per call, so there is nothing to reset.

    Counts come from a wrapper around the vector field (evaluations) and from torchdiffeq's public step
    callbacks (steps), so they are exact, not estimates.

    Attributes:
        method (str): the forward solver.
        adjoint (bool): whether gradients come from the adjoint method.
        nfe_forward (int): vector-field evaluations of the forward solve.
        nfe_backward (int): evaluations of the adjoint's backward solve; filled in when ``backward()`` runs and
            always 0 with direct backprop (autograd replays the stored graph instead).
        steps_accepted (int): steps of the forward solve (every step for a fixed grid).
        steps_rejected (int): steps an adaptive method tried and rejected (each costs evaluations too).
        steps_backward (int): accepted steps of the adjoint's backward solve.
        last_dt (float or None): the last accepted forward step size.
        t_final (float or None): the time the forward solve reached. For a fixed grid this is ``t_end``. An
            adaptive method takes its last step past ``t_end`` when that step is the one its error control
            chooses, and returns ``x(t_end)`` by interpolating inside that step (dense output), so
            ``t_final >= t_end`` there.
        wall_time (float): seconds spent in the forward solve (the backward solve is not timed here).
        steps_backward_rejected (int): rejected steps of an adaptive adjoint backward solve.
    """

    method: str
    adjoint: bool = False
    nfe_forward: int = 0
    nfe_backward: int = 0
    steps_accepted: int = 0
    steps_rejected: int = 0
    steps_backward: int = 0
    last_dt: float | None = None
    t_final: float | None = None
    wall_time: float = 0.0
    steps_backward_rejected: int = 0

    @property
    def nfe(self) -> int:
        """Forward plus backward evaluations."""
        return self.nfe_forward + self.nfe_backward

    def as_dict(self) -> dict:
        """The fields as a plain ``dict`` (for logging), plus ``nfe``."""
        return {**asdict(self), "nfe": self.nfe}


@dataclass(frozen=True)
class Solution:
    """The result of :func:`integrate`.

    Attributes:
        final (Tensor): the state at ``t_end``, shape like ``x0``.
        times (Tensor): the times of ``states``, always starting at 0 and ending at ``t_end`` (float64).
        states (Tensor): the states at ``times``, shape ``(len(times), *x0.shape)``.
        stats (SolveStats): solve statistics.
    """

    final: Tensor
    times: Tensor
    states: Tensor
    stats: SolveStats = field(repr=False)


def fixed_grid(t_end: float, *, step_size: float | None = None, num_steps: int | None = None) -> Tensor:
    r"""The explicit time grid of a fixed-step solve, as float64.

    ``num_steps=L`` gives exactly ``L`` equal steps. ``step_size=τ`` gives :math:`\lfloor T/τ \rfloor` steps of
    size τ, plus one shorter last step when :math:`T` is not a multiple of τ (torchdiffeq's convention); when
    :math:`T = Lτ` up to rounding, exactly ``L`` steps.
    """
    if (step_size is None) == (num_steps is None):
        raise ValueError("a fixed-grid method needs exactly one of step_size or num_steps")
    t_end = _as_float(t_end, "t_end")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if num_steps is not None:
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        return torch.linspace(0.0, t_end, num_steps + 1, dtype=torch.float64)
    step_size = _as_float(step_size, "step_size")
    if not (step_size > 0 and math.isfinite(step_size)):
        raise ValueError(f"step_size must be positive and finite, got {step_size}")
    ratio = t_end / step_size
    whole = round(ratio)
    if abs(ratio - whole) <= _GRID_SLACK * max(1.0, ratio) and whole >= 1:
        grid = torch.arange(whole + 1, dtype=torch.float64) * step_size
        grid[-1] = t_end
        return grid
    whole = math.floor(ratio)
    grid = torch.arange(whole + 1, dtype=torch.float64) * step_size
    return torch.cat([grid, torch.tensor([t_end], dtype=torch.float64)])


def _segment_grid(grid: Tensor) -> Callable[[Callable, Tensor, Tensor], Tensor]:
    """A torchdiffeq ``grid_constructor`` returning the points of ``grid`` between the ends of ``t``.

    torchdiffeq calls it once per forward solve and, in the adjoint's backward pass, once per interval in
    reversed time (it then negates what we return), so it must keep the direction of ``t``.
    """

    def construct(func, y0, t):
        lo, hi = (t[0], t[-1]) if t[0] <= t[-1] else (t[-1], t[0])
        g = grid.to(device=t.device, dtype=t.dtype)
        slack = _GRID_SLACK * max(1.0, float(g[-1].abs()))
        inner = g[(g > lo + slack) & (g < hi - slack)]
        points = torch.cat([lo.reshape(1), inner, hi.reshape(1)])
        return points if t[0] <= t[-1] else points.flip(0)

    return construct


class _Counted(nn.Module):
    """Wraps the user's field: counts evaluations and steps, enforces the budgets, and checks for inf/nan.

    Step budgets, step-size underflow and non-finite states are checked in torchdiffeq's public
    ``callback_step`` (called before every attempted step, with the same test torchdiffeq asserts right after),
    so that failures of the adjoint's backward solve, which runs inside autograd, are typed errors too.
    """

    def __init__(self, func: Callable, stats: SolveStats, max_nfe: int | None, max_steps: int | None,
                 rtol, atol) -> None:
        super().__init__()
        self.func = func
        self.stats = stats
        self.max_nfe = max_nfe
        self.max_steps = [max_steps, max_steps]  # forward, backward
        self.rtol, self.atol = rtol, atol
        self.backward_phase = False
        self.t_reached: float | None = None
        self.attempts = [0, 0]  # forward, backward
        self.user_error: BaseException | None = None

    def _fail(self, reason: str, t: float | None, nfe: int, detail: str = "") -> IntegrationError:
        return IntegrationError(reason, method=self.stats.method, rtol=self.rtol, atol=self.atol, t=t, nfe=nfe,
                                detail=detail)

    @property
    def _phase(self) -> str:
        return "adjoint backward solve" if self.backward_phase else "forward solve"

    @property
    def _nfe(self) -> int:
        return self.stats.nfe_backward if self.backward_phase else self.stats.nfe_forward

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        stats = self.stats
        if self.backward_phase:
            stats.nfe_backward += 1
        else:
            stats.nfe_forward += 1
        nfe = self._nfe
        if self.max_nfe is not None and nfe > self.max_nfe:
            raise self._fail("max_nfe", float(t.detach()), nfe - 1,
                             f"max_nfe={self.max_nfe} reached in the {self._phase}")
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
        if not _all_finite(out):
            raise self._fail("non_finite", float(t.detach()), nfe,
                             f"the vector field returned inf or nan in the {self._phase}")
        return out

    def _attempt(self, t0: Tensor, y0: Tensor, dt: Tensor, adaptive: bool) -> None:
        """Called before every step (accepted or not); ``t0`` is the true time even in reversed solves."""
        phase = int(self.backward_phase)
        self.attempts[phase] += 1
        budget = self.max_steps[phase]
        if budget is not None and self.attempts[phase] > budget:
            raise self._fail("max_steps", self._where(t0), self._nfe,
                             f"max_steps={budget} reached in the {self._phase}")
        if adaptive:
            # torchdiffeq asserts exactly this next; a reversed (backward) solve runs in negated time.
            internal = -t0 if self.backward_phase else t0
            if not bool(internal + dt > internal):
                raise self._fail("dt_underflow", self._where(t0), self._nfe,
                                 f"the step size fell to {float(dt):.3g} in the {self._phase}")
            states = y0 if isinstance(y0, (tuple, list)) else (y0,)  # the adjoint's state is a tuple
            if not all(_all_finite(y) for y in states):
                raise self._fail("non_finite", self._where(t0), self._nfe,
                                 f"the state became inf or nan in the {self._phase}")

    def _where(self, t0: Tensor) -> float:
        return float(t0.detach())

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


def _all_finite(tensor: Tensor) -> bool:
    """Whether every entry is finite: one sum (fast), and the elementwise test only if the sum is not finite
    (a sum of finite values can overflow, so that case is checked exactly)."""
    tensor = tensor.detach()
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def _install_step_callbacks(module: _Counted, fixed: bool, suffix: str = "") -> None:
    """Attach torchdiffeq's public step callbacks; ``suffix="_adjoint"`` for the backward solve."""

    if fixed:
        def step(self, t0, y0, dt):
            self._attempt(t0, y0, dt, adaptive=False)
            self._count_step(t0, dt)

        setattr(module, "callback_step" + suffix, types.MethodType(step, module))
        return

    def attempt(self, t0, y0, dt):
        self._attempt(t0, y0, dt, adaptive=True)

    def accept(self, t0, y0, dt):
        self._count_step(t0, dt)

    def reject(self, t0, y0, dt):
        self._count_step(t0, dt, rejected=True)

    setattr(module, "callback_step" + suffix, types.MethodType(attempt, module))
    setattr(module, "callback_accept_step" + suffix, types.MethodType(accept, module))
    setattr(module, "callback_reject_step" + suffix, types.MethodType(reject, module))


def _untracked_tensors(func: Callable, tracked: Sequence[Tensor]) -> list[str]:
    """Names of tensors that ``func`` captures, that require grad, and that the adjoint would not see.

    Looked at: the attributes of ``func`` and of its submodules (one level into dataclass attributes and into
    lists, tuples and dicts), the closure of ``func`` itself and the module-level names its code reads, and the
    same for plain functions stored as module attributes (wrappers).
    """
    known = {id(t) for t in tracked}
    found: list[str] = []

    def visit(name: str, value) -> None:
        if isinstance(value, Tensor) and value.requires_grad and id(value) not in known:
            found.append(name)

    def visit_closure(prefix: str, function) -> None:
        code = getattr(function, "__code__", None)
        for name, cell in zip(getattr(code, "co_freevars", ()), getattr(function, "__closure__", None) or ()):
            try:
                visit(prefix + name, cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        module_globals = getattr(function, "__globals__", {})
        for name in getattr(code, "co_names", ()):
            if name in module_globals:
                visit(prefix + name, module_globals[name])

    def visit_container(path: str, value) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            visit(f"{path}[{key!r}]", item)

    if isinstance(func, nn.Module):
        for prefix, module in func.named_modules():
            for attr, value in vars(module).items():
                if attr.startswith("_"):
                    continue
                path = f"{prefix + '.' if prefix else ''}{attr}"
                visit(path, value)
                if hasattr(value, "__dataclass_fields__"):
                    for sub in value.__dataclass_fields__:
                        visit(f"{path}.{sub}", getattr(value, sub))
                elif isinstance(value, (list, tuple, dict)):
                    visit_container(path, value)
                elif isinstance(value, types.FunctionType):
                    visit_closure(f"{path}.", value)
            for name in ("forward", "__call__"):
                method = type(module).__dict__.get(name)
                if isinstance(method, types.FunctionType):
                    visit_closure(f"{prefix + '.' if prefix else ''}{name}.", method)
    visit_closure("", func)
    return found


def _jump_times(func: Callable, t_end: float | None = None) -> list[float]:
    """Times where ``func`` jumps, sorted, from its ``jump_times()`` method if it has one (a bound
    :class:`~continuous_gnn.EnergySchedule` declares its piece boundaries); only those inside :math:`(0, T)`
    when ``t_end`` is given."""
    declared = getattr(func, "jump_times", None)
    if not callable(declared):
        return []
    times = [float(v) for v in declared()]
    if t_end is not None:
        slack = _GRID_SLACK * max(1.0, t_end)
        times = [t for t in times if slack < t < t_end - slack]
    return sorted(set(times))


def _snap(grid: Tensor, jumps: Sequence[float], t_end: float) -> Tensor:
    """``grid`` with each point that lies within rounding of a jump time replaced by that time."""
    grid = grid.clone()
    slack = 1e-6 * max(1.0, t_end)
    for jump in jumps:
        nearest = int((grid - jump).abs().argmin())
        if abs(float(grid[nearest]) - jump) <= slack:
            grid[nearest] = jump
    return grid


def _as_float(value, name: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _grid_length(t_end: float, step_size, num_steps) -> int:
    """The number of steps :func:`fixed_grid` would build, computed without building it."""
    if step_size is None or num_steps is not None:  # fixed_grid reports a bad combination
        return num_steps if isinstance(num_steps, int) else 0
    step = _as_float(step_size, "step_size")
    return math.ceil(t_end / step) if step > 0 and math.isfinite(step) else 0


def _tolerances(rtol, atol, default_rtol: float, default_atol: float, what: str) -> tuple[float, float]:
    rtol = default_rtol if rtol is None else _as_float(rtol, what + "rtol")
    atol = default_atol if atol is None else _as_float(atol, what + "atol")
    if not (rtol > 0 and atol >= 0 and math.isfinite(rtol) and math.isfinite(atol)):
        raise ValueError(f"tolerances must be rtol > 0 and atol >= 0, got {what}rtol={rtol}, {what}atol={atol}")
    return rtol, atol


def integrate(
    func: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    t_end: float,
    *,
    method: str = "euler",
    step_size: float | None = None,
    num_steps: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    save_at: Sequence[float] | Tensor | None = None,
    adjoint: bool = False,
    adjoint_method: str | None = None,
    adjoint_step_size: float | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    seminorm: bool = False,
    adjoint_params: Sequence[Tensor] | None = None,
    max_nfe: int | None = None,
    max_steps: int | None = None,
    options: dict | None = None,
) -> Solution:
    r"""Solve :math:`\dot x = f(t, x)` on :math:`[0, T]` from :math:`x(0) = x_0` with a torchdiffeq method.

    Fixed-grid methods (``euler``, ``midpoint``, ``rk4``, ...) step on an explicit grid (:func:`fixed_grid`):
    ``num_steps=L`` or ``step_size=τ`` with :math:`T = Lτ` means exactly ``L`` steps, and a ``T`` that is not
    a multiple of τ ends with one shorter step. Adaptive methods (``dopri5``, ...) take ``rtol``/``atol``
    (torchdiffeq's error control: the RMS norm of the embedded error estimate relative to
    ``atol + rtol * |x|``). ``implicit_adams`` is fixed-grid, and its ``rtol``/``atol`` are the convergence
    tolerances of the Adams–Moulton corrector iteration.

    With ``adjoint=True`` gradients come from torchdiffeq's ``odeint_adjoint``: memory does not grow with the
    number of steps, but gradients are only as accurate as the backward solve (direct backprop is exact for the
    discretised forward pass and is the default). The adjoint parameters are the module's parameters plus any
    tensor it declares through ``captured_tensors()`` (a bound :class:`~continuous_gnn.GradientFlow` declares
    its ``x0``), plus ``adjoint_params``. Any other captured tensor that requires grad would silently get no
    gradient, so it raises ``ValueError``.

    A vector field that jumps in time (a bound :class:`~continuous_gnn.EnergySchedule`, or any ``func`` with a
    ``jump_times()`` method returning times) gets those times as torchdiffeq's ``jump_t`` with adaptive
    methods, so that steps end exactly on the jumps instead of being rejected around them. On a fixed grid,
    grid points within rounding of a jump are snapped onto it and ``perturb=True`` is set, so each stage of a
    step is evaluated strictly inside that step (a step ending on a jump does not see the next piece).

    Args:
        func: the vector field ``f(t, x)``; an ``nn.Module`` for the adjoint.
        x0 (Tensor): the initial state.
        t_end (float): :math:`T > 0`.
        method (str): a torchdiffeq method name (default: ``"euler"``).
        step_size (float, optional): τ for a fixed-grid method.
        num_steps (int, optional): ``L`` for a fixed-grid method (instead of ``step_size``).
        rtol, atol (float, optional): tolerances of an adaptive method, or of ``implicit_adams``'s corrector
            (default: ``1e-3`` and ``1e-5``).
        save_at (sequence of float, optional): extra times in :math:`(0, T)` at which to return the state;
            for a fixed grid they must be grid points.
        adjoint (bool): use the adjoint method for gradients (default: ``False``).
        adjoint_method (str, optional): method of the backward solve (default: ``method``).
        adjoint_step_size (float, optional): its step if fixed-grid (default: the forward grid).
        adjoint_rtol, adjoint_atol (float, optional): its tolerances if adaptive (default: ``rtol``, ``atol``).
        seminorm (bool): measure the adaptive backward error without the parameter adjoints, which usually
            needs fewer steps (Kidger et al. 2021) (default: ``False``).
        adjoint_params (sequence of Tensor, optional): extra tensors that need adjoint gradients.
        max_nfe (int, optional): raise :class:`~continuous_gnn.IntegrationError` past this many evaluations
            in either solve (default: unlimited).
        max_steps (int, optional): budget of attempted steps (accepted plus rejected) of each solve, forward
            and adjoint backward; a fixed grid longer than it is refused before solving (default:
            :data:`DEFAULT_MAX_GRID_STEPS` = 1 000 000 grid steps for a fixed grid, :data:`DEFAULT_MAX_STEPS`
            = 10 000 for an adaptive method; not enforced for ``scipy_solver``, whose steps are invisible).
        options (dict, optional): further torchdiffeq options, checked against
            :func:`~continuous_gnn.solvers.valid_options`: ``first_step``, ``min_step``, ``max_step``,
            ``safety``, ``ifactor``, ``dfactor``, ``step_t``, ``jump_t``, ``dtype``, ``norm`` for adaptive
            methods; ``max_iters``, ``max_order``, ``perturb`` for the Adams methods; ``perturb`` for other
            fixed-grid methods; ``solver`` (default ``"RK45"``), ``min_step``, ``max_step`` for
            ``scipy_solver``. Adaptive options other than ``norm`` also apply to an adaptive backward solve.

    Returns:
        Solution: the final state, the saved states and :class:`SolveStats`.

    Raises:
        ValueError / TypeError: on invalid arguments, each naming the fix (an option that the method would
            ignore is an error, never a warning).
        IntegrationError: when the solve fails (non-finite state, step underflow, budgets), with the reason,
            method, tolerances, time reached, evaluations and advice. An exception raised inside ``func``
            reaches the caller unchanged.
    """
    method = check_method(method)
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise TypeError("x0 must be a floating-point tensor")
    if not callable(func):
        raise TypeError(f"func must be callable as func(t, x), got {type(func).__name__}")
    t_end = _as_float(t_end, "t_end")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 contains inf or nan; check the encoder output and the input features")
    for name, budget in (("max_nfe", max_nfe), ("max_steps", max_steps)):
        if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {budget!r}")
    if not adjoint:
        ignored = [name for name, value in (
            ("adjoint_method", adjoint_method), ("adjoint_step_size", adjoint_step_size),
            ("adjoint_rtol", adjoint_rtol), ("adjoint_atol", adjoint_atol), ("adjoint_params", adjoint_params),
        ) if value is not None] + (["seminorm"] if seminorm else [])
        if ignored:
            raise ValueError(f"{', '.join(ignored)} only apply with adjoint=True; pass adjoint=True or drop them")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of torchdiffeq options, got {type(options).__name__}")
    fixed = is_fixed(method)
    options = dict(options or {})
    if fixed:
        if method in IMPLICIT_METHODS:
            rtol, atol = _tolerances(rtol, atol, DEFAULT_RTOL, DEFAULT_ATOL, "")
        elif rtol is not None or atol is not None:
            raise ValueError(f"rtol/atol apply to adaptive methods, not to the fixed-grid method {method!r}; "
                             "give step_size or num_steps")
        check_options(method, options)
        steps = _grid_length(t_end, step_size, num_steps)
        budget = DEFAULT_MAX_GRID_STEPS if max_steps is None else max_steps
        if steps > budget:  # checked before the grid exists: a mistyped step size must not exhaust memory
            raise IntegrationError("max_steps", method=method, rtol=rtol, atol=atol, t=0.0, nfe=0,
                                   detail=f"the grid has {steps:.6g} steps but max_steps={budget}",
                                   advice="use a larger step_size or a smaller T, or raise max_steps")
        grid = fixed_grid(t_end, step_size=step_size, num_steps=num_steps)
        jumps = _jump_times(func, t_end)
        if jumps:
            # Grid points within rounding of a jump are the jump itself, and every stage of a step is
            # evaluated just inside it (torchdiffeq's perturb), so step k sees only the field of its piece.
            grid = _snap(grid, jumps, t_end)
            options.setdefault("perturb", True)
    else:
        if step_size is not None or num_steps is not None:
            raise ValueError(f"step_size/num_steps apply to fixed-grid methods, not to the adaptive method "
                             f"{method!r}; give rtol/atol")
        rtol, atol = _tolerances(rtol, atol, DEFAULT_RTOL, DEFAULT_ATOL, "")
        check_options(method, options)
        grid = None
        if max_steps is None:
            max_steps = DEFAULT_MAX_STEPS

    times = _save_times(save_at, t_end, grid)
    stats = SolveStats(method=method, adjoint=adjoint)
    counted = _Counted(func, stats, max_nfe, max_steps, rtol, atol)
    if fixed:
        _install_step_callbacks(counted, fixed=True)
        options["grid_constructor"] = _segment_grid(grid)
        # implicit_adams: corrector tolerances; other fixed-grid methods ignore rtol/atol entirely.
        solver_kwargs = {"rtol": rtol, "atol": atol} if method in IMPLICIT_METHODS else {}
    else:
        if method in ADAPTIVE_METHODS:
            _install_step_callbacks(counted, fixed=False)
            jumps = _jump_times(func, t_end)
            if jumps and "jump_t" not in options:
                options["jump_t"] = torch.tensor(jumps, dtype=torch.float64)
        elif method in SCIPY_METHODS:
            options.setdefault("solver", "RK45")
            if "min_step" in options and options["solver"] != "LSODA":
                raise ValueError(f"min_step applies to scipy's 'LSODA' only, not to solver={options['solver']!r}")
        solver_kwargs = {"rtol": rtol, "atol": atol}
    t = times.to(x0.device)

    started = time.perf_counter()
    try:
        if adjoint:
            kwargs = _adjoint_kwargs(func, counted, method, grid, t_end, options, rtol, atol, adjoint_method,
                                     adjoint_step_size, adjoint_rtol, adjoint_atol, seminorm, adjoint_params)
            states = odeint_adjoint(counted, x0, t, method=method, options=options, **solver_kwargs, **kwargs)
        elif method in SCIPY_METHODS:
            with warnings.catch_warnings():
                # torchdiffeq always hands scipy min_step=0, which every scipy solver but LSODA flags as unused.
                warnings.filterwarnings("ignore", message=r"The following arguments have no effect.*`min_step`")
                states = odeint(counted, x0, t, method=method, options=options, **solver_kwargs)
        else:
            states = odeint(counted, x0, t, method=method, options=options, **solver_kwargs)
    except AssertionError as err:
        if err is counted.user_error:
            raise
        raise _translate(err, counted) from err
    stats.wall_time = time.perf_counter() - started
    stats.t_final = counted.t_reached if counted.t_reached is not None else float(t[-1])
    if not _all_finite(states):
        # The last update overflowed after the last evaluation (which was still finite).
        raise counted._fail("non_finite", stats.t_final, stats.nfe_forward, "the final state is inf or nan")
    counted.backward_phase = True
    return Solution(final=states[-1], times=times, states=states, stats=stats)


def _save_times(save_at, t_end: float, grid: Tensor | None) -> Tensor:
    if save_at is None:
        requested = []
    else:
        requested = [float(v) for v in (save_at.tolist() if isinstance(save_at, Tensor) else save_at)]
    for value in requested:
        if not 0 <= value <= t_end:
            raise ValueError(f"save_at time {value} lies outside [0, t_end={t_end}]")
    slack = _GRID_SLACK * max(1.0, t_end)
    inner = sorted({v for v in requested if slack < v < t_end - slack})
    if grid is not None:
        snapped = []
        for value in inner:
            nearest = grid[(grid - value).abs().argmin()]
            if abs(float(nearest) - value) > 1e-6 * max(1.0, t_end):
                raise ValueError(
                    f"save_at time {value} is not on the fixed grid; choose multiples of the step size "
                    "or use an adaptive method"
                )
            snapped.append(float(nearest))
        inner = snapped
    return torch.tensor([0.0, *inner, t_end], dtype=torch.float64)


def _adjoint_kwargs(func, counted, method, grid, t_end, options, rtol, atol, adjoint_method, adjoint_step_size,
                    adjoint_rtol, adjoint_atol, seminorm, extra_params) -> dict:
    adjoint_method = check_method(adjoint_method or method, "adjoint_method")
    if adjoint_method in SCIPY_METHODS or method in SCIPY_METHODS:
        raise ValueError("scipy_solver cannot be differentiated; use a torchdiffeq method with adjoint=True")
    params = list(func.parameters()) if isinstance(func, nn.Module) else []
    captured = getattr(func, "captured_tensors", None)
    if callable(captured):
        params += [t for t in captured() if t.requires_grad]
    if extra_params is not None:
        if isinstance(extra_params, Tensor) or not all(isinstance(p, Tensor) for p in extra_params):
            raise TypeError("adjoint_params must be a list or tuple of tensors, e.g. adjoint_params=[w]")
        params += list(extra_params)
    missing = _untracked_tensors(func, params)
    if missing:
        raise ValueError(
            f"the vector field captures tensors that require grad but are not adjoint parameters: {missing}. "
            "Under the adjoint they would silently get no gradient. Pass them as adjoint_params=[...], make them "
            "nn.Parameters, or use direct backprop (adjoint=False)"
        )
    # Options carry over when the backward method understands them (never the forward norm: the adjoint
    # state is (t, x, adjoint of x, adjoint of the parameters), measured by torchdiffeq's adjoint norm).
    adjoint_options = {k: v for k, v in options.items()
                       if k not in ("norm", "grid_constructor") and k in valid_options(adjoint_method)}
    if is_fixed(adjoint_method):
        if seminorm:
            raise ValueError("seminorm only changes adaptive step-size control; "
                             "use an adaptive adjoint_method such as 'dopri5'")
        if adjoint_method in IMPLICIT_METHODS:
            default = (rtol, atol) if method in IMPLICIT_METHODS else (DEFAULT_RTOL, DEFAULT_ATOL)
            adjoint_rtol, adjoint_atol = _tolerances(adjoint_rtol, adjoint_atol, *default, "adjoint_")
        elif adjoint_rtol is not None or adjoint_atol is not None:
            raise ValueError(f"adjoint_rtol/atol do not apply to the fixed-grid adjoint_method {adjoint_method!r}")
        else:
            adjoint_rtol = adjoint_atol = 1.0  # unused by these fixed grids; torchdiffeq needs numbers
        if adjoint_step_size is not None:
            backward_grid = fixed_grid(t_end, step_size=adjoint_step_size)
            jumps = _jump_times(func, t_end)
            if jumps:
                backward_grid = _snap(backward_grid, jumps, t_end)
        elif grid is not None:
            backward_grid = grid
        else:
            raise ValueError(f"a fixed-grid adjoint_method {adjoint_method!r} needs adjoint_step_size "
                             "after an adaptive forward solve")
        adjoint_options["grid_constructor"] = _segment_grid(backward_grid)
        _install_step_callbacks(counted, fixed=True, suffix="_adjoint")
    else:
        if adjoint_step_size is not None:
            raise ValueError(f"adjoint_step_size applies to fixed-grid adjoint methods, not {adjoint_method!r}")
        default = (rtol, atol) if method in ADAPTIVE_METHODS else (DEFAULT_RTOL, DEFAULT_ATOL)
        adjoint_rtol, adjoint_atol = _tolerances(adjoint_rtol, adjoint_atol, *default, "adjoint_")
        if counted.max_steps[1] is None:
            counted.max_steps[1] = DEFAULT_MAX_STEPS
        if seminorm:
            adjoint_options["norm"] = "seminorm"
        jumps = _jump_times(func, t_end)
        if jumps and "jump_t" not in adjoint_options:
            adjoint_options["jump_t"] = torch.tensor(jumps, dtype=torch.float64)
        _install_step_callbacks(counted, fixed=False, suffix="_adjoint")
    return {
        "adjoint_method": adjoint_method,
        "adjoint_rtol": adjoint_rtol,
        "adjoint_atol": adjoint_atol,
        "adjoint_options": adjoint_options,
        "adjoint_params": tuple(params),
    }


def _translate(err: AssertionError, counted: _Counted) -> IntegrationError:
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
    return counted._fail(reason, counted.t_reached, counted._nfe, message.split(":")[0])
