r"""The run configuration: one frozen, validated record of everything a training run depends on.

A :class:`RunConfig` is built from layers of plain dictionaries, later layers winning
(:func:`~continuous_gnn.training.config_io.resolve_config`). Every layer goes through the same key and type
checks (:func:`check_overrides`), so an unknown key or a wrong type fails with a message that names it,
wherever it came from; the rules between fields are in :mod:`~continuous_gnn.training.config_rules`. Nothing
here reads ``sys.argv`` or the environment: the command line (:mod:`continuous_gnn.cli`) decides what the
layers are. :meth:`RunConfig.solver_settings` is the one place a
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..energies.parametrizations import OMEGA_STYLES, W_STYLES
from ..fields.registry import FLOWS
from ..models.continuous_gnn import DECODERS, ENCODERS
from ..ode.methods import METHODS, SCIPY_METHODS, is_fixed
from ..ode.settings import DEFAULT_ATOL, DEFAULT_RTOL, Adaptive, Adjoint, FixedGrid, Solver
from .config_rules import check_rules
from .splits import parse_splits

__all__ = [
    "ENERGIES",
    "ACTIVATIONS",
    "ENCODERS",
    "DECODERS",
    "OPTIMIZERS",
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
#: Optimisers a run can train with (``torch.optim.Adam`` and ``torch.optim.Adamax``).
OPTIMIZERS = ("adam", "adamax")

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
    node_order: str = _f("none", "relabel the nodes once before training so that neighbours sit together in memory: "
                                 "none, metis (METIS clusters; pip install pymetis) or rcm (reverse Cuthill-McKee); "
                                 "worth it on graphs of 10^5 nodes and more (docs/performance.md, section h)",
                         ("none", "metis", "rcm"))
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
    detach_source: bool = _f(False, "feed the source term a detached F(0), attention from F(0) still attached "
                                    "(the official GRAFF and GRAND code's behaviour)")
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
    decoder: str = _f("linear", "decoder: linear, or mlp (a hidden linear layer with ReLU first, the official GRAFF "
                                "code's fc_out)", DECODERS)
    dropout: float = _f(0.5, "dropout before the decoder (and inside the mlp encoder)")
    input_dropout: float = _f(0.5, "dropout on the input features")
    # regularisation of the flow (Finlay et al. 2020), added to the training loss only
    kinetic_weight: float = _f(0.0, "weight λ_K of the kinetic energy ∫‖f‖² dt in the training loss")
    jacobian_weight: float = _f(0.0, "weight λ_J of the Jacobian Frobenius norm ∫‖∂f/∂x‖²_F dt (Hutchinson "
                                     "estimate) in the training loss")
    # optimisation
    optimizer: str = _f("adam", "optimiser: adam, or adamax (Adam with the infinity norm; GRAND's published Cora "
                                "configuration)", OPTIMIZERS)
    lr: float = _f(0.005, "learning rate of the optimiser")
    weight_decay: float = _f(5e-4, "L2 weight decay of the optimiser")
    epochs: int = _f(150, "training epochs per split")
    patience: int | None = _f(None, "stop after this many epochs without a better validation metric")
    eval_time_multiple: float | None = _f(None, "choose each evaluation's integration time on validation: integrate to "
                                                "this multiple of time (T), score the prediction after every solver "
                                                "step and keep the step of best validation metric (GRAND's "
                                                "early-stopping evaluation, 3 in its code; full evaluation)",
                                          shown="none, i.e. evaluate at T")
    seed: int = _f(0, "base seed; split i is trained with seed + i")
    device: str = _f("cpu", "torch device, e.g. cpu or cuda:0")
    # mini-batches on subgraphs (continuous_gnn.training.batches)
    batching: str = _f("none", "training batches: none (full batch), random (random node partitions, RandomNodeLoader), "
                               "metis (METIS clusters as in ClusterGCN; pip install pymetis) or neighbor (NeighborLoader; "
                               "needs pyg-lib or torch-sparse)", ("none", "random", "metis", "neighbor"))
    num_parts: int | None = _f(None, "batching: number of node partitions (random, metis) or of seed batches per epoch "
                                     "(neighbor)")
    parts_per_batch: int | None = _f(None, "batching = metis: clusters joined into one batch", shown="none, i.e. 1")
    num_neighbors: str | None = _f(None, "batching = neighbor: neighbours sampled per hop, comma-separated, e.g. '10,10' "
                                         "(-1 takes all)")
    evaluation: str = _f("full", "evaluation after each epoch: full (one pass over the whole graph) or batches (the "
                                 "nodes cut once into the training batches' kind of subgraphs, each scored on its own, "
                                 "so memory stays that of a batch; batching random or metis)", ("full", "batches"))

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ conversions

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of every setting, in declaration order (the keys of :meth:`to_dict`)."""
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
        """Whether ``method`` is a fixed-grid method."""
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

    check_rules(c)
