"""Energies and fields by name, or by import path (``mypkg.energies:MyEnergy``), with checked keyword options.

Registered names (:data:`FLOWS`):

* ``graff``: :class:`~continuous_gnn.energies.GRAFFEnergy`;
* ``dirichlet``: :class:`~continuous_gnn.energies.DirichletEnergy`;
* ``channel_dirichlet``: :class:`~continuous_gnn.energies.ChannelDirichletEnergy`;
* ``attention_dirichlet``: :class:`~continuous_gnn.energies.AttentionDirichletEnergy` (GRAND-l);
* ``allen_cahn``: :class:`~continuous_gnn.energies.AllenCahnEnergy` (ACMP);
* ``p_laplacian``: :class:`~continuous_gnn.energies.PLaplacianEnergy`;
* ``grand_nl``: :class:`~continuous_gnn.fields.AttentionDiffusion` (no gradient flow);
* ``grand_l_row``: :class:`~continuous_gnn.fields.FixedAttentionDiffusion`, GRAND-l with the unsymmetrised
  attention of GRAND's code, row-stochastic unless ``normalization = "column"`` (no gradient flow);
* ``second_order``: :class:`~continuous_gnn.fields.SecondOrderFlow` over the energy named by its ``inner``
  option (default ``graff``; no gradient flow).

A user's class is named ``module.path:ClassName``; it must subclass
:class:`~continuous_gnn.energies.Energy` or :class:`~continuous_gnn.fields.Field`. Options are keyword arguments
of the class's constructor; ``channels`` is passed when the constructor takes it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ..energies import (
    AllenCahnEnergy,
    AttentionDirichletEnergy,
    ChannelDirichletEnergy,
    DirichletEnergy,
    Energy,
    GRAFFEnergy,
    PLaplacianEnergy,
)
from .attention_diffusion import AttentionDiffusion, FixedAttentionDiffusion
from .base import Field
from .second_order import SecondOrderFlow

__all__ = ["FLOWS", "DEFAULT_INNER", "flow_class", "check_options", "build_named"]

#: The energies and fields reachable by name.
FLOWS: dict[str, type[Energy] | type[Field]] = {
    "graff": GRAFFEnergy,
    "dirichlet": DirichletEnergy,
    "channel_dirichlet": ChannelDirichletEnergy,
    "attention_dirichlet": AttentionDirichletEnergy,
    "allen_cahn": AllenCahnEnergy,
    "p_laplacian": PLaplacianEnergy,
    "grand_nl": AttentionDiffusion,
    "grand_l_row": FixedAttentionDiffusion,
    "second_order": SecondOrderFlow,
}
#: The inner energy of ``second_order`` when its options name none.
DEFAULT_INNER = "graff"


def flow_class(name: str) -> type[Energy] | type[Field]:
    """The class of a registered name or of an import path ``module:Class``.

    Raises:
        ValueError: on an unknown name (listing the valid ones), a module that cannot be imported, a missing
            class, or a class that is neither an Energy nor a Field.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"an energy is a registered name or an import path module:Class, got {name!r}")
    if ":" not in name:
        if name in FLOWS:
            return FLOWS[name]
        close = difflib.get_close_matches(name, list(FLOWS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown energy {name!r}{hint}; choose one of: {', '.join(FLOWS)}, or give your own class "
                         "as an import path module:Class (e.g. mypkg.energies:MyEnergy)")
    module_name, _, class_name = name.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"energy import path {name!r} must read module.path:ClassName")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"energy {name!r}: cannot import module {module_name!r} ({err}); is it installed, on "
                         "PYTHONPATH, or in the folder the command runs from?") from None
    except Exception as err:  # the user's module itself fails: a syntax error, an exception at import
        raise ValueError(f"energy {name!r}: importing module {module_name!r} failed with {type(err).__name__}: "
                         f"{err}; fix the module") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"energy {name!r}: module {module_name!r} has no class {class_name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, (Energy, Field))):
        raise ValueError(f"energy {name!r}: {class_name} is not a continuous_gnn Energy or Field subclass")
    if issubclass(cls, Energy) and cls.energy is Energy.energy:
        raise ValueError(f"energy {name!r}: {class_name} does not define energy(x, graph, x0=None), which every "
                         "Energy needs (its gradient is taken from it)")
    if issubclass(cls, Field) and cls.forward is Field.forward:
        raise ValueError(f"energy {name!r}: {class_name} does not define forward(t, x, context, x0), which every "
                         "Field needs")
    return cls


def _parameters(cls: type) -> Mapping[str, inspect.Parameter]:
    if cls.__init__ is nn.Module.__init__:  # no constructor of its own: nn.Module's (*args, **kwargs) takes nothing
        return {}
    return inspect.signature(cls).parameters


#: The builtin types an annotation may name (``int | None``), by name.
_SIMPLE_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


def _declared_types(parameter: inspect.Parameter) -> list[type]:
    """The types an option may take: those its annotation names when it is a union of builtins (``int | None``),
    else its default's type; none when neither says (the option is then not checked)."""
    annotation = parameter.annotation
    names = ([part.strip() for part in annotation.split("|")] if isinstance(annotation, str)
             else [getattr(annotation, "__name__", "")] if isinstance(annotation, type) else [])
    if names and all(n in _SIMPLE_TYPES for n in names):
        return [_SIMPLE_TYPES[n] for n in names]
    default = parameter.default
    if default is inspect.Parameter.empty or default is None:
        return []
    return [next(t for t in (bool, int, float, str, type(default)) if isinstance(default, t))]


def _matches(value: Any, declared: type) -> bool:
    if declared is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if declared is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, declared)


_DESCRIPTIONS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "none"}


def _check_type(name: str, key: str, value: Any, parameter: inspect.Parameter) -> None:
    declared = _declared_types(parameter)
    if not declared or any(_matches(value, t) for t in declared):
        return
    wanted = " or ".join(_DESCRIPTIONS.get(t, t.__name__) for t in declared if t is not type(None))
    hint = " (TOML booleans are lowercase: true, false)" if bool in declared and isinstance(value, str) else ""
    raise ValueError(f"energy {name!r}: option {key!r} must be {wanted}; got {value!r}{hint}")


def _as_declared(options: dict[str, Any], cls: type) -> dict[str, Any]:
    """``options`` with a whole number given for an option declared ``float`` made a float (TOML and
    ``--energy-option scale=2`` give an int, which ``torch.tensor`` would turn into an integer tensor)."""
    params = _parameters(cls)
    coerced = dict(options)
    for key, value in options.items():
        if key in params and isinstance(value, int) and not isinstance(value, bool):
            declared = _declared_types(params[key])
            if float in declared and int not in declared:
                coerced[key] = float(value)
    return coerced


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``options`` are keyword arguments that ``name``'s constructor accepts.

    ``second_order`` takes ``inner`` (an energy name or import path, default ``"graff"``) besides its own
    ``damping`` and ``learnable``.
    """
    cls = flow_class(name)
    own = dict(options)
    if cls is SecondOrderFlow:
        flow_class(own.pop("inner", DEFAULT_INNER))
    params = _parameters(cls)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and k not in ("self", "channels", "energy")]
    unknown = sorted(set(own) - set(accepted))
    if unknown:
        listed = ["inner", *accepted] if cls is SecondOrderFlow else accepted
        raise ValueError(f"energy {name!r} has no option(s) {unknown}; its options are: "
                         f"{', '.join(listed) or 'none'}")
    missing = [k for k in accepted if params[k].default is inspect.Parameter.empty and k not in own]
    if missing:
        raise ValueError(f"energy {name!r} needs the option(s) {missing}, which its constructor requires; set them "
                         "in the config's [energy_options] table or with --energy-option KEY=VALUE")
    for key, value in own.items():
        _check_type(name, key, value, params[key])


def build_named(name: str, channels: int, options: Mapping[str, Any] | None = None,
                inner: Callable[[str], Energy] | None = None) -> Energy | Field:
    """Construct ``name`` on ``channels`` with keyword ``options``.

    Args:
        name (str): a registered name or an import path.
        channels (int): the feature width, passed when the constructor takes ``channels``.
        options (Mapping, optional): keyword arguments of the constructor.
        inner (callable, optional): builds ``second_order``'s inner energy from its name (default: this
            function with no options).
    """
    options = dict(options or {})
    check_options(name, options)
    cls = flow_class(name)
    if cls is SecondOrderFlow:
        inner_name = options.pop("inner", DEFAULT_INNER)
        energy = inner(inner_name) if inner is not None else build_named(inner_name, channels)
        if not isinstance(energy, Energy):
            raise ValueError(f"second_order needs an Energy as its inner force, got {type(energy).__name__}")
        return SecondOrderFlow(energy, **_as_declared(options, cls))
    options = _as_declared(options, cls)
    if "channels" in _parameters(cls):
        options["channels"] = channels
    try:
        built = cls(**options)
    except (TypeError, ValueError) as err:
        if ":" not in name:  # the package's own classes name their options in their messages
            raise
        # A user's class: say which class refused its options, which its own message may not.
        raise type(err)(f"energy {name!r}: its constructor refused the options {options}: {err}") from err
    if built.channels is not None and built.channels != channels:
        raise ValueError(f"energy {name!r} was built with {built.channels} channels but the model has {channels}")
    return built
