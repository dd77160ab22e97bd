"""What the adjoint method needs besides the solver settings: its parameters, and the torchdiffeq arguments of
the backward solve.

``odeint_adjoint`` differentiates only the tensors it is given as ``adjoint_params``; any other tensor the
field reads that requires grad silently gets no gradient. :func:`adjoint_parameters` collects the field's
parameters, its declared :meth:`~continuous_gnn.ode.VectorField.captured_tensors` and the caller's extra
tensors, and refuses a field that reads anything else that requires grad (:func:`untracked_tensors`).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .field import captured_tensors, jump_times
from .grid import fixed_grid, inside, segment_grid, snap
from .methods import is_fixed, valid_options
from .settings import Adjoint

__all__ = ["adjoint_parameters", "backward_arguments", "untracked_tensors"]

#: Largest autograd history walked to decide whether a captured tensor depends on tracked tensors only; a longer
#: one is reported as untracked (declare the tensor, or compute it from parameters of the field).
_MAX_HISTORY = 10_000


#: What every ``nn.Module`` keeps in its ``__dict__`` (its parameter, buffer, submodule and hook tables), which
#: the scan for captured tensors reads through ``named_modules`` and ``named_buffers`` instead; a user's own
#: attributes, private ones included, are scanned.
_MODULE_TABLES = frozenset(vars(nn.Module()))


def adjoint_parameters(func: Callable, extra: Sequence[Tensor] | None) -> tuple[Tensor, ...]:
    """The tensors the adjoint differentiates: ``func``'s parameters, its captured tensors that require grad,
    and ``extra``.

    Raises:
        TypeError: if ``extra`` is not a list or tuple of tensors.
        ValueError: if ``func`` reads a tensor that requires grad and is none of these (it would get no
            gradient), naming it.
    """
    params = list(func.parameters()) if isinstance(func, nn.Module) else []
    params += [t for t in captured_tensors(func) if t.requires_grad]
    if extra is not None:
        if isinstance(extra, Tensor) or not all(isinstance(p, Tensor) for p in extra):
            raise TypeError("adjoint_params must be a list or tuple of tensors, e.g. adjoint_params=[w]")
        params += list(extra)
    # Once each: torchdiffeq would add up the gradient of a tensor given twice (a module's parameters passed
    # again as adjoint_params, as torchdiffeq's own examples do).
    params = list({id(p): p for p in params}.values())
    missing = untracked_tensors(func, params)
    if missing:
        raise ValueError(
            f"the vector field captures tensors that require grad but are not adjoint parameters: {missing}. "
            "Under the adjoint they would silently get no gradient. Pass them as adjoint_params=[...], make them "
            "nn.Parameters, or use direct backprop (adjoint=False)"
        )
    return tuple(params)


def backward_arguments(func: Callable, adjoint: Adjoint, grid: Tensor | None, t_end: float,
                       options: dict[str, Any], max_steps: int | None = None) -> dict[str, Any]:
    """``odeint_adjoint``'s keyword arguments for the backward solve of ``adjoint`` (from :meth:`Adjoint.for_solver`).

    ``grid`` is the forward grid (``None`` after an adaptive solve), ``options`` the forward solve's
    torchdiffeq options and ``max_steps`` the solver's step budget, which bounds a backward grid of its own too.

    Forward options carry over when the backward method understands them, except ``norm``: the adjoint state
    is (t, x, adjoint of x, adjoint of the parameters), measured by torchdiffeq's own adjoint norm.
    """
    method = adjoint.method
    backward_options = {k: v for k, v in options.items()
                        if k not in ("norm", "grid_constructor") and k in valid_options(method)}
    jumps = inside(jump_times(func), t_end)
    rtol, atol = adjoint.rtol, adjoint.atol
    if is_fixed(method):
        if adjoint.step_size is not None:
            try:
                backward_grid = fixed_grid(t_end, step_size=adjoint.step_size, max_steps=max_steps)
            except ValueError as err:
                raise ValueError(f"the adjoint's backward grid: {err} (the step_size there is the adjoint's, "
                                 "Adjoint(step_size=...))") from None
            if jumps:
                backward_grid = snap(backward_grid, jumps, t_end)
        else:
            backward_grid = grid  # Adjoint.for_solver guarantees a forward grid here
        backward_options["grid_constructor"] = segment_grid(backward_grid)
        if rtol is None:
            rtol = atol = 1.0  # unused by these fixed grids; torchdiffeq needs numbers
    else:
        if adjoint.seminorm:
            backward_options["norm"] = "seminorm"
        if jumps and "jump_t" not in backward_options:
            backward_options["jump_t"] = torch.tensor(jumps, dtype=torch.float64)
    return {"adjoint_method": method, "adjoint_rtol": rtol, "adjoint_atol": atol,
            "adjoint_options": backward_options}


def untracked_tensors(func: Callable, tracked: Sequence[Tensor]) -> list[str]:
    """Names of tensors that ``func`` captures, that require grad, and that the adjoint would not see.

    A tensor computed from tracked tensors only (its autograd history reaches no other tensor that requires
    grad) is not reported: the adjoint differentiates through it. Looked at: the attributes and buffers of
    ``func`` and of its submodules (and, a few levels deep, into dataclasses, lists, tuples, dicts and other
    plain objects they hold), the closures of every method their classes define and the module-level names
    that code reads, the closure of ``func`` itself, and the same for plain functions stored as module
    attributes (wrappers); for a ``functools.partial`` its arguments and the callable it wraps, for another
    callable object or a bound method the object's attributes and its ``__call__``.
    """
    known = {id(t) for t in tracked}
    boundaries = {id(t.grad_fn) for t in tracked if t.grad_fn is not None}
    found: list[str] = []

    def covered(tensor: Tensor) -> bool:
        """Whether every tensor that requires grad in ``tensor``'s history is tracked: then the adjoint's
        vector-Jacobian products reach them through it (attention weights computed from tracked parameters)."""
        stack, seen = [tensor.grad_fn], set()
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen or id(node) in boundaries:
                continue
            seen.add(id(node))
            if len(seen) > _MAX_HISTORY:
                return False
            variable = getattr(node, "variable", None)  # AccumulateGrad: the leaf it accumulates into
            if variable is not None:
                if id(variable) not in known:
                    return False
                continue
            stack.extend(next_node for next_node, _ in node.next_functions)
        return True

    reported: set[int] = set()

    def visit(name: str, value) -> None:
        if (isinstance(value, Tensor) and value.requires_grad and id(value) not in known and id(value) not in reported
                and not (value.grad_fn is not None and covered(value))):
            found.append(name)  # a tensor held under several names is named once, by the first
            reported.add(id(value))

    def visit_closure(prefix: str, function) -> None:
        code = getattr(function, "__code__", None)
        for name, cell in zip(getattr(code, "co_freevars", ()), getattr(function, "__closure__", None) or ()):
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            visit_value(prefix + name, contents)
        module_globals = getattr(function, "__globals__", {})
        for name in getattr(code, "co_names", ()):
            if name in module_globals:
                visit(prefix + name, module_globals[name])

    def visit_callable(prefix: str, function, depth: int = 0) -> None:
        """A callable that is no module: a partial's arguments and wrapped callable, an object's attributes and
        its ``__call__``, a bound method's object, then the code's closure and globals."""
        if depth > 4:  # partials of partials: deep enough for anything a user writes
            return
        if isinstance(function, functools.partial):
            for index, argument in enumerate(function.args):
                visit_value(f"{prefix}args[{index}]", argument)
            for key, argument in function.keywords.items():
                visit_value(prefix + key, argument)
            visit_callable(prefix, function.func, depth + 1)
            return
        owner = function.__self__ if isinstance(function, types.MethodType) else None
        if owner is None and not isinstance(function, (types.FunctionType, types.BuiltinFunctionType)):
            owner = function  # an object with __call__
            call = type(function).__dict__.get("__call__")
            if isinstance(call, types.FunctionType):
                visit_closure(f"{prefix}__call__.", call)
        if owner is not None and not isinstance(owner, nn.Module) and hasattr(owner, "__dict__"):
            for attr, value in vars(owner).items():
                visit_value(f"{prefix}{type(owner).__name__}.{attr}", value)
        visit_closure(prefix, function)

    seen_values: set[int] = set()

    def visit_value(path: str, value, depth: int = 0) -> None:
        """A tensor, or what a container, a dataclass, a plain object or a function holds (modules are visited
        through ``named_modules``, tensors' own attributes never)."""
        visit(path, value)
        if depth > 3 or isinstance(value, (Tensor, nn.Module, type, types.ModuleType, str, bytes)):
            return
        if id(value) in seen_values:
            return
        seen_values.add(id(value))
        if isinstance(value, (list, tuple, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                visit_value(f"{path}[{key!r}]", item, depth + 1)
        elif isinstance(value, types.FunctionType):
            visit_closure(f"{path}.", value)
        elif hasattr(value, "__dataclass_fields__"):
            for sub in value.__dataclass_fields__:
                visit_value(f"{path}.{sub}", getattr(value, sub, None), depth + 1)
        elif hasattr(value, "__dict__") and not callable(value):
            for attr, item in vars(value).items():
                visit_value(f"{path}.{attr}", item, depth + 1)

    if isinstance(func, nn.Module):
        for prefix, module in func.named_modules():
            base = f"{prefix}." if prefix else ""
            for attr, value in vars(module).items():
                if attr not in _MODULE_TABLES:  # buffers are read from theirs below
                    visit_value(base + attr, value)
            for name, buffer in module.named_buffers(recurse=False):
                visit(base + name, buffer)
            for cls in type(module).__mro__:  # every method: energy(), gradient() and helpers read tensors too
                if cls is object or cls.__module__.startswith("torch."):
                    continue
                for name, method in vars(cls).items():
                    # __init__ and the other special methods do not run in the solve (but for __call__).
                    if isinstance(method, types.FunctionType) and (not name.startswith("__") or name == "__call__"):
                        visit_closure(f"{base}{name}.", method)
        visit_closure("", func)
    else:
        visit_callable("", func)
    return found
