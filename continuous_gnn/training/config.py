r"""The run configuration: one frozen, validated record of everything a training run depends on.

A :class:`RunConfig` is built from layers of plain dictionaries, later layers winning
(:func:`~continuous_gnn.training.config_io.resolve_config`). Every layer goes through the same key and type
checks (:func:`check_overrides`), so an unknown key or a wrong type fails with a message that names it,
wherever it came from. Nothing here reads ``sys.argv`` or the environment: the command line
(:mod:`continuous_gnn.cli`) decides what the layers are. :meth:`RunConfig.solver_settings` is the one place a
run's typed solver settings are built.

TOML has no null, so optional fields are either omitted from a file or given the string ``"none"``;
``from_dict`` also accepts ``None`` (JSON ``null``), which is what :meth:`RunConfig.to_dict` writes.
Adding a field (as ``kinetic_weight`` and ``jacobian_weight`` were added) only needs a new dataclass field with
``help`` metadata: checks, ``to_dict``, TOML and the command-line flag follow from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..energies.base import Energy
from ..energies.parametrizations import OMEGA_STYLES, W_STYLES
from ..fields.registry import FLOWS, check_options, flow_class
from ..ode.grid import count_steps
from ..ode.methods import METHODS, SCIPY_METHODS, is_fixed
from ..ode.settings import DEFAULT_ATOL, DEFAULT_MAX_GRID_STEPS, DEFAULT_RTOL, Adaptive, Adjoint, FixedGrid, Solver
from .splits import MAX_SPLITS, parse_splits

__all__ = [
    "ENERGIES",
    "ACTIVATIONS",
    "ENCODERS",
    "TRAINABLE_METHODS",
    "RunConfig",
    "parse_splits",
    "field_type",
    "check_overrides",
]

#: Energies and fields a run can train by name (``energy`` also takes an import path ``module:Class``).
ENERGIES = tuple(FLOWS)
#: Pointwise activations of GRAFF-NL; ``None`` is the exact (linear) gradient flow.
ACTIVATIONS = (None, "relu", "tanh")
ENCODERS = ("linear", "mlp")

_NONE_STRINGS = ("none", "null")
#: Methods a run can train with (SciPy's solvers are not differentiable).
TRAINABLE_METHODS = tuple(m for m in METHODS if m not in SCIPY_METHODS)


def _f(default: Any, help: str, choices: tuple | None = None, *, shown: str | None = None) -> Any:
    """A field with its command-line help, allowed values and (optionally) how to describe its default."""
    metadata = {"help": help, "choices": choices, "shown_default": shown}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class RunConfig:
    """Everything a training run depends on (validated on construction; raises ``ValueError``/``TypeError``).

    Fields are documented by their ``help`` metadata (shown by ``continuous-gnn train --help``). Options of
    the GRAFF energy (``w``, ``omega``, ``source``, ``w_learnable``) are not used by the Dirichlet energies.
    ``step_size`` applies to fixed-grid methods only and ``rtol``/``atol`` to adaptive methods only; a value
    given for the wrong kind of method is an error, not silently ignored.
    """

    # data
    dataset: str | None = _f(None, "dataset name (see continuous_gnn.data.DATASETS)")
    splits: tuple[int, ...] | None = _f(None, "splits to run: '0-9', '0,3,5' or 'all'", shown="all")
    normalize_features: bool | None = _f(None, "row-normalise the features", shown="the dataset's default")
    self_loops: bool = _f(True, "add self-loops before normalising: Ā = D̃^-1/2 (A+I) D̃^-1/2 (the paper's Ā)")
    # energy and flow
    energy: str = _f("graff", "energy whose gradient flow is integrated, or a field: " + ", ".join(FLOWS)
                     + ", or your own class as module.path:ClassName")
    energy_options: dict[str, Any] = field(default_factory=dict, hash=False, metadata={
        "help": "keyword arguments of the energy's constructor (a TOML table [energy_options]; on the command "
                "line --energy-option KEY=VALUE, repeatable)", "choices": None, "shown_default": "none"})
    w: str = _f("diag_dom", "parametrisation of W (GRAFF)", W_STYLES)
    omega: str = _f("diag", "parametrisation of Ω (GRAFF)", OMEGA_STYLES)
    source: bool = _f(True, "include the source term +βF(0) (GRAFF)")
    w_learnable: bool = _f(True, "train W; false keeps its random initialisation fixed (GRAFF)")
    activation: str | None = _f(None, "pointwise activation σ of GRAFF-NL: none, relu, tanh", ACTIVATIONS)
    normalize_field: bool = _f(False, "standardise the vector field per channel over the nodes, like the official "
                                      "code's untrained BatchNorm (then no gradient flow)")
    time_dependent: bool = _f(False, "piecewise-constant energy weights over [0, T] instead of shared weights "
                                     "(one set per piece, see time_pieces)")
    time_pieces: int | None = _f(None, "number of pieces of time_dependent weights; required with adaptive methods",
                                 shown="none, i.e. one per fixed-grid step")
    detach_source: bool = _f(False, "feed the source term a detached F(0) (the official code's behaviour)")
    # solver
    method: str = _f("euler", "torchdiffeq method", TRAINABLE_METHODS)
    step_size: float | None = _f(1.0, "step τ of a fixed-grid method (none for adaptive methods)")
    time: float = _f(1.0, "integration time T")
    rtol: float | None = _f(None, "relative tolerance of an adaptive method", shown="none, i.e. 1e-3")
    atol: float | None = _f(None, "absolute tolerance of an adaptive method", shown="none, i.e. 1e-5")
    adjoint: bool = _f(False, "gradients by the adjoint method instead of direct backprop")
    adjoint_method: str | None = _f(None, "method of the adjoint's backward solve", TRAINABLE_METHODS,
                                    shown="none, i.e. the forward method")
    seminorm: bool = _f(False, "seminorm error control in an adaptive adjoint backward solve")
    max_nfe: int | None = _f(None, "fail a solve after this many function evaluations")
    # model
    hidden: int = _f(64, "hidden channels d")
    encoder: str = _f("linear", "encoder: linear, or mlp (linear + two residual blocks)", ENCODERS)
    dropout: float = _f(0.5, "dropout before the decoder (and inside the mlp encoder)")
    input_dropout: float = _f(0.5, "dropout on the input features")
    # regularisation of the flow (Finlay et al. 2020), added to the training loss only
    kinetic_weight: float = _f(0.0, "weight λ_K of the kinetic energy ∫‖f‖² dt in the training loss")
    jacobian_weight: float = _f(0.0, "weight λ_J of the Jacobian Frobenius norm ∫‖∂f/∂x‖²_F dt (Hutchinson "
                                     "estimate) in the training loss")
    # optimisation
    lr: float = _f(0.005, "Adam learning rate")
    weight_decay: float = _f(5e-4, "Adam weight decay")
    epochs: int = _f(150, "training epochs per split")
    patience: int | None = _f(None, "stop after this many epochs without a better validation metric")
    seed: int = _f(0, "base seed; split i is trained with seed + i")
    device: str = _f("cpu", "torch device, e.g. cpu or cuda:0")
    # mini-batches on subgraphs (continuous_gnn.training.batches); evaluation stays full-graph
    batching: str = _f("none", "training batches: none (full batch), random (random node partitions, RandomNodeLoader), "
                               "metis (METIS clusters as in ClusterGCN; pip install pymetis) or neighbor (NeighborLoader; "
                               "needs pyg-lib or torch-sparse)", ("none", "random", "metis", "neighbor"))
    num_parts: int | None = _f(None, "batching: number of node partitions (random, metis) or of seed batches per epoch "
                                     "(neighbor)")
    parts_per_batch: int | None = _f(None, "batching = metis: clusters joined into one batch", shown="none, i.e. 1")
    num_neighbors: str | None = _f(None, "batching = neighbor: neighbours sampled per hop, comma-separated, e.g. '10,10' "
                                         "(-1 takes all)")

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ conversions

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> RunConfig:
        """Build a config from a mapping; missing keys take the defaults.

        Raises:
            ValueError: on an unknown key (the message names it and suggests close matches) or a bad value.
            TypeError: if ``values`` is not a mapping.
        """
        return cls(**check_overrides(values, source=source))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (``splits`` as a list); ``RunConfig.from_dict(c.to_dict()) == c``."""
        out = dataclasses.asdict(self)
        if out["splits"] is not None:
            out["splits"] = list(out["splits"])
        return out

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (checked like :meth:`from_dict`)."""
        return RunConfig.from_dict({**self.to_dict(), **changes})

    @property
    def fixed_grid(self) -> bool:
        """Whether :attr:`method` is a fixed-grid method."""
        return is_fixed(self.method)

    def solver_settings(self) -> tuple[Solver, Adjoint | None]:
        """The typed solver settings of this config: the only place a run's solver is built.

        ``FixedGrid(method, step_size=step_size)`` or ``Adaptive(method, rtol, atol)`` (torchdiffeq's defaults
        1e-3 and 1e-5 when unset), with ``max_nfe``; and ``Adjoint(adjoint_method, seminorm=seminorm)`` when
        ``adjoint`` is on, else ``None``.
        """
        if self.fixed_grid:
            solver: Solver = FixedGrid(self.method, step_size=self.step_size, max_nfe=self.max_nfe)
        else:
            solver = Adaptive(self.method, rtol=DEFAULT_RTOL if self.rtol is None else self.rtol,
                              atol=DEFAULT_ATOL if self.atol is None else self.atol, max_nfe=self.max_nfe)
        adjoint = Adjoint(self.adjoint_method, seminorm=self.seminorm) if self.adjoint else None
        return solver, adjoint


# ---------------------------------------------------------------------- value checks


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def field_type(name: str) -> tuple[Any, bool]:
    """The value type of a :class:`RunConfig` field and whether it may be ``None``."""
    return _unwrap_optional(_hints()[name])


def _is_none_string(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in _NONE_STRINGS


#: Bounds that keep a config from asking for more than any run can allocate or count (a typo such as
#: ``--hidden 100000000`` or ``--step-size 1e-300`` is an error up front, not an allocation failure or a hang).
MAX_HIDDEN = 65_536
MAX_TIME_PIECES = 10_000
MAX_SEED = 2**63 - 1 - MAX_SPLITS  # torch seeds are 64-bit; split i trains with seed + i
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _options(value: Any, source: str) -> dict[str, Any]:
    """``energy_options``: a table of names to TOML values (numbers, strings, booleans, or lists of them)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{source}: energy_options must be a table of option names to values, got {value!r}")
    for key, item in value.items():
        items = item if isinstance(item, (list, tuple)) else [item]
        if not isinstance(key, str) or not all(isinstance(v, (bool, int, float, str)) for v in items):
            raise ValueError(f"{source}: energy_options.{key} must be a number, string, boolean or a list of them, "
                             f"got {item!r}")
    return {key: list(item) if isinstance(item, tuple) else item for key, item in value.items()}


def _convert(name: str, value: Any, source: str) -> Any:
    """Check one value against its field's type; return it normalised (ints to floats, lists to tuples)."""
    if name == "splits":
        try:
            return parse_splits(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: splits: {err}") from None
    if name == "energy_options":
        return _options(value, source)
    hint, optional = _unwrap_optional(_hints()[name])
    if value is None or (optional and _is_none_string(value)):
        if optional:
            return None
        raise ValueError(f"{source}: {name} cannot be none")

    def bad(expected: str) -> ValueError:
        return ValueError(f"{source}: {name} must be {expected}, got {value!r} ({type(value).__name__})")

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("a finite number")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise TypeError(f"internal: no converter for field {name!r} of type {hint!r}")  # pragma: no cover


def check_overrides(values: Mapping[str, Any], *, source: str = "config") -> dict[str, Any]:
    """Check keys and value types of a partial config; return the normalised dict.

    Cross-field rules (e.g. ``step_size`` only for fixed-grid methods) are checked later, when the layers are
    merged into a :class:`RunConfig`.

    Args:
        values: the partial config.
        source: where it came from (a file name, "preset graff/cora", "command line"), used in messages.

    Raises:
        ValueError: on unknown keys (named, with close matches) or bad values.
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"{source}: a config must be a mapping of field names to values, got {type(values).__name__}")
    names = RunConfig.field_names()
    unknown = [k for k in values if k not in names]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key).replace("-", "_"), names, n=3, cutoff=0.6)
            hints.append(f"{key!r}" + (f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""))
        raise ValueError(
            f"{source}: unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(hints)}. "
            f"Valid keys: {', '.join(names)}"
        )
    return {key: _convert(key, value, source) for key, value in values.items()}


def _validate(c: RunConfig) -> None:
    for name in RunConfig.field_names():
        value = getattr(c, name)
        normalised = _convert(name, value, "RunConfig")
        if normalised != value or type(normalised) is not type(value):
            object.__setattr__(c, name, normalised)
    meta = {f.name: f.metadata for f in dataclasses.fields(RunConfig)}
    for name in RunConfig.field_names():
        choices = meta[name].get("choices")
        value = getattr(c, name)
        if choices is not None and value is not None and value not in choices:
            shown = ", ".join("none" if ch is None else str(ch) for ch in choices)
            close = difflib.get_close_matches(str(value), [str(ch) for ch in choices if ch is not None], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {name} {value!r}{hint}; choose one of: {shown}")

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ValueError(message)

    if c.dataset is not None:
        require(c.dataset.strip() != "", "dataset must not be empty")
    flow = flow_class(c.energy)  # an unknown name or a bad import path says which
    check_options(c.energy, c.energy_options)
    if c.energy == "graff":
        shadowed = sorted(set(c.energy_options) & {"w", "omega", "source", "w_learnable", "allow_asymmetric"})
        require(not shadowed, f"energy_options {shadowed} are config fields of the GRAFF energy; set them at the "
                              "top level (on the command line: --w, --omega, --source, --w-learnable)")
    if not issubclass(flow, Energy):
        given = [name for name, on in (("activation", c.activation is not None),
                                       ("normalize_field", c.normalize_field),
                                       ("time_dependent", c.time_dependent)) if on]
        require(not given, f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to an energy's gradient "
                           f"flow; {c.energy!r} is a field and is integrated as it is")
    require(c.time > 0, f"time (T) must be positive, got {c.time}")
    require(1 <= c.hidden <= MAX_HIDDEN, f"hidden must be an integer in [1, {MAX_HIDDEN}], got {c.hidden}")
    require(c.lr > 0, f"lr must be positive, got {c.lr}")
    for name in ("weight_decay", "kinetic_weight", "jacobian_weight"):
        # Training runs in float32: a larger coefficient cannot be converted, and the optimiser raises deep inside
        # (a huge lr instead makes the first update diverge, which the loop reports as a diverged run).
        require(getattr(c, name) <= FLOAT32_MAX, f"{name} must be at most {FLOAT32_MAX:.3g} (float32's largest "
                                                  f"number), got {getattr(c, name):g}")
    require(c.weight_decay >= 0, f"weight_decay must be non-negative, got {c.weight_decay}")
    for name in ("dropout", "input_dropout"):
        require(0.0 <= getattr(c, name) < 1.0, f"{name} must lie in [0, 1), got {getattr(c, name)}")
    require(c.epochs >= 1, f"epochs must be a positive integer, got {c.epochs}")
    require(c.patience is None or c.patience >= 1, f"patience must be a positive integer or none, got {c.patience}")
    require(0 <= c.seed <= MAX_SEED, f"seed must be an integer in [0, 2**63 - {MAX_SPLITS + 1}], got {c.seed}")
    require(c.max_nfe is None or c.max_nfe >= 1, f"max_nfe must be a positive integer or none, got {c.max_nfe}")
    for name in ("kinetic_weight", "jacobian_weight"):
        require(getattr(c, name) >= 0, f"{name} must be non-negative (0 turns it off), got {getattr(c, name)}")
    if c.time_pieces is not None:
        require(1 <= c.time_pieces <= MAX_TIME_PIECES,
                f"time_pieces must be an integer in [1, {MAX_TIME_PIECES}] or none, got {c.time_pieces}")
        require(c.time_dependent, "time_pieces applies only with time_dependent = true")
    try:
        device_type = torch.device(c.device).type
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device {c.device!r} is not a torch device string; use e.g. 'cpu', 'cuda' or 'cuda:0'"
        ) from None
    require(device_type in ("cpu", "cuda", "mps"),
            f"device {c.device!r} is not supported for training; use 'cpu', 'cuda[:N]' or 'mps'")

    require(c.method not in SCIPY_METHODS, f"method {c.method!r} cannot be differentiated, so it cannot be trained")
    if is_fixed(c.method):
        require(
            c.step_size is not None,
            f"the fixed-grid method {c.method!r} needs a step_size (e.g. --step-size 0.5)",
        )
        require(c.step_size > 0, f"step_size must be positive, got {c.step_size}")
        steps = count_steps(c.time, c.step_size)
        require(steps <= DEFAULT_MAX_GRID_STEPS,
                f"time / step_size = {c.time:g} / {c.step_size:g} gives {steps:.3g} steps, more than the "
                f"{DEFAULT_MAX_GRID_STEPS:,} a solve allows; raise step_size or lower time")
        require(not c.time_dependent or c.time_pieces is not None or steps <= MAX_TIME_PIECES,
                f"time_dependent weights take one set of weights per step, and time / step_size gives {steps} "
                f"steps (at most {MAX_TIME_PIECES}); raise step_size or set time_pieces")
        require(
            c.rtol is None and c.atol is None,
            f"rtol/atol apply to adaptive methods, not to the fixed-grid method {c.method!r}; "
            "remove them (on the command line: --rtol none --atol none) or choose an adaptive method such as dopri5",
        )
    else:
        require(
            c.step_size is None,
            f"step_size={c.step_size} applies to fixed-grid methods, not to the adaptive method {c.method!r}; "
            "remove it (on the command line: --step-size none) and set rtol/atol instead",
        )
        require(c.rtol is None or c.rtol >= FLOAT32_EPS,
                f"rtol must be at least {FLOAT32_EPS:.2g}, got {c.rtol}: training runs in float32, whose rounding "
                "error an adaptive solver's error estimate cannot get below (it would shrink the step until "
                "max_steps runs out)")
        require(c.atol is None or c.atol >= 0, f"atol must be non-negative, got {c.atol}")
        require(
            not c.time_dependent or c.time_pieces is not None,
            f"time_dependent weights with the adaptive method {c.method!r} need time_pieces, the number of "
            "pieces of the piecewise-constant schedule (on the command line: --time-pieces K); there is no "
            "step grid to take it from",
        )
    if not c.adjoint:
        require(c.adjoint_method is None, "adjoint_method applies only with adjoint = true")
        require(not c.seminorm, "seminorm applies only with adjoint = true and an adaptive adjoint_method")
    else:
        backward = c.adjoint_method or c.method
        require(backward not in SCIPY_METHODS, f"adjoint_method {backward!r} cannot be differentiated")
        require(
            not (c.seminorm and is_fixed(backward)),
            f"seminorm only changes adaptive step-size control, but the adjoint method {backward!r} is fixed-grid",
        )
        require(
            not (is_fixed(backward) and not is_fixed(c.method)),
            f"the fixed-grid adjoint_method {backward!r} steps backward on the forward solve's grid, but the "
            f"adaptive method {c.method!r} has none; choose an adaptive adjoint_method (e.g. dopri5) or a "
            "fixed-grid method with a step_size",
        )
    solver, adjoint = c.solver_settings()  # the solver objects check themselves too
    if adjoint is not None:
        adjoint.for_solver(solver)
    _validate_batching(c, require)


def _validate_batching(c: RunConfig, require: Callable[[bool, str], None]) -> None:
    """The batching fields; node counts are checked against the dataset when a run starts
    (:func:`continuous_gnn.training.batches.check_batching`)."""
    if c.batching == "none":
        for name in ("num_parts", "parts_per_batch", "num_neighbors"):
            require(getattr(c, name) is None, f"{name} applies only with batching (e.g. --batching metis)")
        return
    require(c.num_parts is not None, f"batching = {c.batching} needs num_parts (on the command line: --num-parts K)")
    require(c.num_parts >= 1, f"num_parts must be a positive integer, got {c.num_parts}")
    require(c.self_loops, "batching needs self_loops = true: a batch's subgraph has nodes without neighbours, which "
                          "D^-1/2 A D^-1/2 cannot normalise")
    if c.parts_per_batch is not None:
        require(c.batching == "metis", "parts_per_batch applies only with batching = metis")
        require(1 <= c.parts_per_batch <= c.num_parts,
                f"parts_per_batch must be an integer in [1, num_parts = {c.num_parts}], got {c.parts_per_batch}")
    if c.batching == "neighbor":
        require(c.num_neighbors is not None,
                "batching = neighbor needs num_neighbors, the neighbours sampled per hop (e.g. --num-neighbors 10,10)")
        parse_fanout(c.num_neighbors)
    else:
        require(c.num_neighbors is None, "num_neighbors applies only with batching = neighbor")


def parse_fanout(text: str) -> tuple[int, ...]:
    """``num_neighbors`` as integers, one per hop: ``"10,5"`` → ``(10, 5)``; ``-1`` takes every neighbour.

    Raises:
        ValueError: unless ``text`` is a comma-separated list of positive integers or -1.
    """
    try:
        fanout = tuple(int(part) for part in text.split(","))
    except ValueError:
        fanout = ()
    if not fanout or any(value == 0 or value < -1 for value in fanout):
        raise ValueError(f"num_neighbors must be comma-separated positive integers (or -1 for all), one per hop, "
                         f"e.g. '10,10'; got {text!r}")
    return fanout
