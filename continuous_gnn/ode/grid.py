r"""Fixed time grids: the one step count, the explicit grid, and the points torchdiffeq steps between.

torchdiffeq builds a fixed-step grid from ``step_size`` with a ceiling that can add a spurious step
(T = 0.14, τ = 0.01 gives 15 evaluations in float64). The package never lets it: every fixed-grid solve gets
the grid of :func:`fixed_grid`, whose length is :func:`count_steps`, the only step count in the package.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["GRID_SLACK", "DEFAULT_MAX_GRID_STEPS", "as_float", "count_steps", "fixed_grid", "save_times",
           "segment_grid", "snap"]

#: Relative slack under which :math:`T/τ` counts as a whole number, and two times as the same time.
GRID_SLACK = 1e-9
#: Largest fixed grid built when ``max_steps`` is not given: a mistyped step size (``1e-9``) is an error up
#: front instead of a grid of billions of points that exhausts memory or runs for hours.
DEFAULT_MAX_GRID_STEPS = 1_000_000


def as_float(value: object, name: str) -> float:
    """``value`` as a float: a real number or a one-element tensor; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape {tuple(value.shape)}")
        if value.requires_grad:  # read as a number, it would silently get no gradient
            raise TypeError(f"{name} is a tensor that requires grad, but solves take it as a number and give it no "
                            f"gradient; pass {name}.item() (a learned {name} is not supported)")
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def count_steps(t_end: float, step_size: float) -> int | float:
    r"""The number of steps of size τ that cover :math:`[0, T]`: the length of ``fixed_grid(T, step_size=τ)``.

    :math:`L` when :math:`T = Lτ` up to rounding (relative slack :data:`GRID_SLACK`), else
    :math:`\lfloor T/τ \rfloor + 1` (the last step is shorter). A ceiling would count T = 0.9, τ = 0.03 as 31
    steps, because 0.9 / 0.03 = 30.000000000000004 in floating point; the grid has 30.

    Returns:
        int: the step count, or ``math.inf`` when :math:`T/τ` overflows (τ is a subnormal number).

    Raises:
        TypeError: unless both are numbers.
        ValueError: unless ``t_end`` is positive and finite and ``step_size`` positive.
    """
    t_end, step_size = as_float(t_end, "t_end"), as_float(step_size, "step_size")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    ratio = t_end / step_size
    if not math.isfinite(ratio):
        return math.inf
    whole = round(ratio)
    if whole >= 1 and abs(ratio - whole) <= GRID_SLACK * max(1.0, ratio):
        return whole
    return math.floor(ratio) + 1


def shown_steps(steps: int | float) -> str:
    """A step count for a message: with thousands separators, or as ``1e+12`` when it is huge or infinite."""
    return f"{steps:,}" if math.isfinite(steps) and steps < 10**7 else f"{steps:.3g}"


def fixed_grid(t_end: float, *, step_size: float | None = None, num_steps: int | None = None,
               max_steps: int | None = None) -> Tensor:
    r"""The explicit time grid of a fixed-step solve, as float64.

    ``num_steps=L`` gives exactly ``L`` equal steps. ``step_size=τ`` gives :func:`count_steps` steps: steps of
    size τ, plus one shorter last step when :math:`T` is not a multiple of τ (torchdiffeq's convention); when
    :math:`T = Lτ` up to rounding, exactly ``L`` steps ending on :math:`T`.

    Raises:
        ValueError: on bad times or steps, or a grid of more than ``max_steps`` steps (default
            :data:`DEFAULT_MAX_GRID_STEPS`), found before any memory is taken.
    """
    if (step_size is None) == (num_steps is None):
        raise ValueError("a fixed-grid method needs exactly one of step_size or num_steps")
    t_end = as_float(t_end, "t_end")
    if not (t_end > 0 and math.isfinite(t_end)):
        raise ValueError(f"t_end must be a positive finite time, got {t_end}")
    if num_steps is not None:
        if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        return torch.linspace(0.0, t_end, num_steps + 1, dtype=torch.float64)
    step_size = as_float(step_size, "step_size")
    if not (step_size > 0 and math.isfinite(step_size)):
        raise ValueError(f"step_size must be positive and finite, got {step_size}")
    steps = count_steps(t_end, step_size)
    limit = DEFAULT_MAX_GRID_STEPS if max_steps is None else max_steps
    if steps > limit:
        raise ValueError(f"T / step_size = {t_end:g} / {step_size:g} gives {shown_steps(steps)} steps, more than the {limit:,} "
                         "allowed; use a larger step_size or a smaller T, or raise max_steps")
    grid = torch.arange(steps + 1, dtype=torch.float64) * step_size
    grid[-1] = t_end  # the last step ends on T: exactly when τ divides T, shorter otherwise
    return grid


def segment_grid(grid: Tensor) -> Callable[[Callable, Tensor, Tensor], Tensor]:
    """A torchdiffeq ``grid_constructor`` returning the points of ``grid`` between the ends of ``t``.

    torchdiffeq calls it once per forward solve and, in the adjoint's backward pass, once per interval in
    reversed time (it then negates what we return), so it must keep the direction of ``t``. The points are chosen
    on the host, from one read of ``t``'s ends, and moved to ``t``'s device once.
    """

    slack = GRID_SLACK * max(1.0, abs(float(grid[-1])))

    def construct(func, y0, t):
        first, last = t[[0, -1]].tolist()  # exact: a float holds any float32 or float64 value
        lo, hi = min(first, last), max(first, last)
        g = grid.to(dtype=t.dtype)
        inner = g[(g > lo + slack) & (g < hi - slack)]
        points = torch.cat([g.new_tensor([lo]), inner, g.new_tensor([hi])])
        return (points if first <= last else points.flip(0)).to(t.device)

    return construct


def inside(times: Sequence[float], t_end: float) -> list[float]:
    """The distinct ``times`` strictly inside :math:`(0, T)`, sorted."""
    slack = GRID_SLACK * max(1.0, t_end)
    return sorted({float(t) for t in times if slack < float(t) < t_end - slack})


def snap(grid: Tensor, jumps: Sequence[float], t_end: float) -> Tensor:
    """``grid`` with each point that lies within rounding of a jump time replaced by that time."""
    grid = grid.clone()
    slack = 1e-6 * max(1.0, t_end)
    for jump in jumps:
        nearest = int((grid - jump).abs().argmin())
        if abs(float(grid[nearest]) - jump) <= slack:
            grid[nearest] = jump
    return grid


def save_times(save_at: Sequence[float] | Tensor | None, t_end: float, grid: Tensor | None) -> Tensor:
    """The output times of a solve: 0, the requested ``save_at`` times inside :math:`(0, T)`, and :math:`T`.

    ``save_at`` is strictly increasing, so that the states come back in its order; a requested 0 or :math:`T` is
    the first or last state. On a fixed ``grid`` each requested time must be a grid point (it is snapped onto it).
    """
    if save_at is None:
        requested = []
    else:
        values = save_at.tolist() if isinstance(save_at, Tensor) and save_at.dim() == 1 else save_at
        try:
            if isinstance(values, (str, bytes, Tensor)):
                raise TypeError
            values = list(values)
            if any(isinstance(v, (str, bytes, bool)) for v in values):  # float() would read "0.5" and True
                raise TypeError
            requested = [float(v) for v in values]
        except (TypeError, ValueError):
            shown = f"a {save_at.dim()}-d tensor" if isinstance(save_at, Tensor) else type(save_at).__name__
            raise TypeError(f"save_at must be a sequence of times (a list, a tuple or a 1-d tensor), got {shown}; "
                            "for one time write [t]") from None
    for value in requested:
        if not 0 <= value <= t_end:
            raise ValueError(f"save_at time {value} lies outside [0, t_end={t_end}]")
    if any(later <= earlier for earlier, later in zip(requested, requested[1:])):
        raise ValueError(f"save_at must be strictly increasing, as the states come back in time order; got "
                         f"{requested}: sort it and drop repeats")
    points = inside(requested, t_end)
    if grid is not None:
        snapped = []
        for value in points:
            nearest = grid[(grid - value).abs().argmin()]
            if abs(float(nearest) - value) > 1e-6 * max(1.0, t_end):
                raise ValueError(
                    f"save_at time {value} is not on the fixed grid; choose multiples of the step size "
                    "or use an adaptive method"
                )
            snapped.append(float(nearest))
        points = snapped
    return torch.tensor([0.0, *points, t_end], dtype=torch.float64)
