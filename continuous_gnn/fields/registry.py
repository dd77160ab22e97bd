"""Energies and fields by name, or by import path (``mypkg.energies:MyEnergy``), with checked keyword options.

Registered names (:data:`FLOWS`):

* ``graff``: :class:`~continuous_gnn.energies.GRAFFEnergy`;
* ``dirichlet``: :class:`~continuous_gnn.energies.DirichletEnergy`;
* ``channel_dirichlet``: :class:`~continuous_gnn.energies.ChannelDirichletEnergy`;
* ``attention_dirichlet``: :class:`~continuous_gnn.energies.AttentionDirichletEnergy` (GRAND-l);
* ``allen_cahn``: :class:`~continuous_gnn.energies.AllenCahnEnergy` (ACMP);
* ``p_laplacian``: :class:`~continuous_gnn.energies.PLaplacianEnergy`;
* ``grand_nl``: :class:`~continuous_gnn.fields.AttentionDiffusion` (no gradient flow);
* ``grand_l_row``: :class:`~continuous_gnn.fields.FixedAttentionDiffusion`, GRAND-l with the row-stochastic
  attention of GRAND's code (no gradient flow);
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

__all__ = ["FLOWS", "flow_class", "check_options", "build_named"]

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
        raise ValueError(f"energy {name!r}: cannot import module {module_name!r} ({err}); is it installed or on "
                         "PYTHONPATH?") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"energy {name!r}: module {module_name!r} has no class {class_name!r}")
    if not (inspect.isclass(cls) and issubclass(cls, (Energy, Field))):
        raise ValueError(f"energy {name!r}: {class_name} is not a continuous_gnn Energy or Field subclass")
    return cls


def _parameters(cls: type) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(cls).parameters


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``options`` are keyword arguments that ``name``'s constructor accepts.

    ``second_order`` takes ``inner`` (an energy name or import path, default ``"graff"``) besides its own
    ``damping`` and ``learnable``.
    """
    cls = flow_class(name)
    own = dict(options)
    if cls is SecondOrderFlow:
        flow_class(own.pop("inner", "graff"))
    params = _parameters(cls)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and k not in ("self", "channels", "energy")]
    unknown = sorted(set(own) - set(accepted))
    if unknown:
        raise ValueError(f"energy {name!r} has no option(s) {unknown}; its options are: "
                         f"{', '.join(accepted) or 'none'}")


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
        inner_name = options.pop("inner", "graff")
        energy = inner(inner_name) if inner is not None else build_named(inner_name, channels)
        if not isinstance(energy, Energy):
            raise ValueError(f"second_order needs an Energy as its inner force, got {type(energy).__name__}")
        return SecondOrderFlow(energy, **options)
    if "channels" in _parameters(cls):
        options["channels"] = channels
    built = cls(**options)
    if built.channels is not None and built.channels != channels:
        raise ValueError(f"energy {name!r} was built with {built.channels} channels but the model has {channels}")
    return built
