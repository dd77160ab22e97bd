r"""Vector fields on node features: gradient flows of energies, and the non-gradient fields of the family.

* :class:`GradientFlow`: :math:`\dot X = -\nabla E(X)` (a gradient flow), or :math:`\sigma(-\nabla E(X))`.
* :class:`AttentionDiffusion`: :math:`\dot X = (A(X) - I)X` with attention recomputed from :math:`X(t)`
  (GRAND-nl); no gradient flow.
* :class:`FixedAttentionDiffusion`: :math:`\dot X = (A(X(0)) - I)X`, GRAND-l as GRAND's code runs it (row- or
  column-stochastic attention held fixed); no gradient flow.
* :class:`SecondOrderFlow`: :math:`\ddot X = -\nabla E(X) - \gamma\dot X` (GraphCON style); no gradient flow.
"""

from .attention_diffusion import AttentionDiffusion, FixedAttention, FixedAttentionDiffusion
from .base import BoundField, Field
from .gradient_flow import ACTIVATIONS, GradientFlow
from .second_order import SecondOrderFlow

__all__ = ["ACTIVATIONS", "AttentionDiffusion", "BoundField", "Field", "FixedAttention", "FixedAttentionDiffusion",
           "GradientFlow", "SecondOrderFlow"]
