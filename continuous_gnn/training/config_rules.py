"""The cross-field rules of a :class:`~continuous_gnn.training.config.RunConfig`, checked once when it is built.

Each field's type and choices are checked in :mod:`~continuous_gnn.training.config`; here are the rules that
tie fields together (a fixed-grid method needs a step size, adjoint options need the adjoint, batching options
need batching, ...) and the bounds that keep a config from asking for more than any run can allocate or count.
Every broken rule is a :class:`ValueError` that names the field and, where there is one, the fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from ..energies.base import Energy
from ..fields.registry import DEFAULT_INNER, check_options, flow_class
from ..ode.grid import count_steps
from ..ode.methods import SCIPY_METHODS, is_fixed
from ..ode.settings import FixedGrid
from .splits import MAX_SPLITS

if TYPE_CHECKING:
    from .config import RunConfig

#: Bounds that keep a config from asking for more than any run can allocate or count (a typo such as
#: ``--hidden 100000000`` or ``--step-size 1e-300`` is an error up front, not an allocation failure or a hang).
MAX_HIDDEN = 65_536
MAX_TIME_PIECES = 10_000
#: Largest ``eval_time_multiple``: evaluation integrates to it times T and holds every step's state.
MAX_EVAL_TIME_MULTIPLE = 100
MAX_SEED = 2**63 - 1 - MAX_SPLITS  # torch seeds are 64-bit; split i trains with seed + i
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
#: The top-level fields that configure the GRAFF energy; other energies take their options in ``energy_options``.
GRAFF_FIELDS = ("w", "omega", "source", "w_learnable")


def uses_graff_fields(c: RunConfig) -> bool:
    """Whether ``c`` builds a GRAFF energy, which reads :data:`GRAFF_FIELDS`: ``energy = "graff"``, or a
    ``second_order`` flow over its default inner energy, GRAFF."""
    inner = c.energy_options.get("inner", DEFAULT_INNER)
    return c.energy == "graff" or (c.energy == "second_order" and inner == "graff")


#: Registered energies whose flow never reads the initial state F(0).
_WITHOUT_INITIAL_STATE = ("dirichlet", "channel_dirichlet", "allen_cahn", "p_laplacian")
#: Registered flows whose source term is the energy option ``source`` (off by default).
SOURCE_OPTION_FLOWS = ("attention_dirichlet", "grand_l_row", "grand_nl")


def has_source_term(c: RunConfig) -> bool | None:
    """Whether the flow of ``c`` has a source term that reads F(0), which ``detach_source`` detaches; ``None``
    for an energy given by import path, which the rules cannot see into. The command line refuses
    ``detach_source`` where this is ``False``; a stored config that has it still loads (it changed nothing)."""
    if uses_graff_fields(c):
        return c.source
    if c.energy == "second_order":  # its inner energy takes no options of its own: no source term
        return False if c.energy_options.get("inner", DEFAULT_INNER) in (*_WITHOUT_INITIAL_STATE,
                                                                         *SOURCE_OPTION_FLOWS) else None
    if c.energy in _WITHOUT_INITIAL_STATE:
        return False
    if c.energy in SOURCE_OPTION_FLOWS:
        return bool(c.energy_options.get("source", False))
    return None


def check_rules(c: RunConfig) -> None:
    """Check the rules between the fields of ``c`` (whose fields have their types already).

    Raises:
        ValueError: naming the first rule ``c`` breaks.
    """

    def require(condition: bool, message: str) -> None:
        if not condition:
            raise ValueError(message)

    if c.dataset is not None:
        require(c.dataset.strip() != "", "dataset must not be empty")
    flow = flow_class(c.energy)  # an unknown name or a bad import path says which
    if c.energy == "graff":
        # The constructor's own list would name the config fields as options too, which the next rule refuses.
        accepted = set(inspect.signature(flow).parameters) - {"channels"}
        table = sorted(accepted - {*GRAFF_FIELDS, "allow_asymmetric"})
        unknown = sorted(set(c.energy_options) - accepted)
        require(not unknown, f"energy 'graff' has no option(s) {unknown}; its [energy_options] take only "
                             f"{', '.join(table)}, and its other settings are config fields at the top level: "
                             f"{', '.join(GRAFF_FIELDS)}")
    check_options(c.energy, c.energy_options)
    if c.energy == "graff":
        shadowed = sorted(set(c.energy_options) & {*GRAFF_FIELDS, "allow_asymmetric"})
        require(not shadowed, f"energy_options {shadowed} are config fields of the GRAFF energy; set them at the "
                              "top level (on the command line: --w, --omega, --source, --w-learnable)")
    if not issubclass(flow, Energy):
        given = [name for name, on in (("activation", c.activation is not None),
                                       ("normalize_field", c.normalize_field),
                                       ("time_dependent", c.time_dependent)) if on]
        require(not given, f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to an energy's gradient "
                           f"flow; {c.energy!r} is a field and is integrated as it is")
    require(c.time > 0, f"time (T) must be positive, got {c.time}")
    # The solvers step in the state's float32: a larger time is inf there, and the solve fails as if it blew up.
    require(c.time <= FLOAT32_MAX, f"time (T) must be at most {FLOAT32_MAX:.3g} (float32's largest number), "
                                   f"got {c.time:g}")
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
        require(c.step_size <= FLOAT32_MAX, f"step_size must be at most {FLOAT32_MAX:.3g} (float32's largest "
                                            f"number), got {c.step_size:g}")
        steps = count_steps(c.time, c.step_size)
        overrun = FixedGrid(c.method, step_size=c.step_size, max_nfe=c.max_nfe).overrun(c.time)
        if overrun is not None:
            budget, why = overrun
            raise ValueError(f"{why}; raise step_size or lower time" + (", or raise max_nfe" if budget == "max_nfe"
                                                                        else ""))
        require(not c.time_dependent or c.time_pieces is not None or steps <= MAX_TIME_PIECES,
                f"time_dependent weights take one set of weights per step, and time / step_size gives {steps} "
                f"steps (at most {MAX_TIME_PIECES}); raise step_size or set time_pieces")
        # The K pieces are equal, T/K long: they are the steps only when τ divides T. Euler reads the field at the
        # start of each step, which lies in its piece even when the last step is shorter; other methods read it
        # inside the step too, and the shorter last step would make one step read two pieces.
        require(not c.time_dependent or c.time_pieces is not None or c.method == "euler"
                or abs(steps * c.step_size - c.time) <= 1e-9 * max(1.0, c.time),
                f"time_dependent weights take one set per step, which with {c.method!r} needs step_size to divide "
                f"time (time / step_size = {c.time:g} / {c.step_size:g} leaves a shorter last step, and a step would "
                "read two sets of weights); choose step_size = time / k, or set time_pieces")
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
    _check_eval_time(c, require)
    solver, adjoint = c.solver_settings()  # the solver objects check themselves too
    if adjoint is not None:
        adjoint.for_solver(solver)
    _check_batching(c, require)


def _check_eval_time(c: RunConfig, require: Callable[[bool, str], None]) -> None:
    """``eval_time_multiple``: which solves can choose their time at evaluation, and how far they may go."""
    if c.eval_time_multiple is None:
        return
    multiple = c.eval_time_multiple
    require(1 <= multiple <= MAX_EVAL_TIME_MULTIPLE, f"eval_time_multiple must lie in [1, {MAX_EVAL_TIME_MULTIPLE}] "
                                                     f"(evaluation integrates to it times T), got {multiple:g}")
    require(not c.time_dependent, "eval_time_multiple integrates past T, where time_dependent weights have no piece; "
                                  "drop one of them")
    require(c.evaluation == "full", "eval_time_multiple applies to the full-graph evaluation (evaluation = full)")
    if not is_fixed(c.method):  # an adaptive solve's budget applies as it steps
        return
    overrun = FixedGrid(c.method, step_size=c.step_size, max_nfe=c.max_nfe).overrun(multiple * c.time)
    if overrun is not None:
        raise ValueError(f"{overrun[1]} at evaluation, which integrates to eval_time_multiple × time = "
                         f"{multiple * c.time:g}; lower eval_time_multiple, or raise step_size")


def _check_batching(c: RunConfig, require: Callable[[bool, str], None]) -> None:
    """The batching fields; node counts are checked against the dataset when a run starts
    (:func:`continuous_gnn.training.batches.check_batching`)."""
    if c.batching == "none":
        for name in ("num_parts", "parts_per_batch", "num_neighbors"):
            require(getattr(c, name) is None, f"{name} applies only with batching (e.g. --batching metis)")
        require(c.evaluation == "full", "evaluation = batches scores the nodes on the training batches' subgraphs, so "
                                        "it needs batching random or metis (e.g. --batching random --num-parts 10)")
        return
    require(c.evaluation == "full" or c.batching in ("random", "metis"),
            f"evaluation = batches cuts the nodes into subgraphs as batching random or metis does; batching = "
            f"{c.batching} samples neighbourhoods of training nodes only, so use evaluation = full with it")
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
