r"""Depth studies: how energy, Rayleigh quotient and accuracy evolve along the flow of a continuous GNN.

At each saved time :math:`t` of a trajectory a record holds

* the Dirichlet energy :math:`E^{Dir}(F(t)) = \tfrac12\operatorname{tr}(F^\top\Delta F)` and the Rayleigh
  quotient :math:`\mathrm{RQ}(F(t)) = \operatorname{tr}(F^\top\Delta F)/\|F\|_F^2 \in [0, \rho_\Delta]`
  (with :math:`\Delta = I - \bar A`, self-loops included): RQ :math:`\to 0` is low-frequency dominance
  (LFD, over-smoothing), RQ :math:`\to \rho_\Delta` high-frequency dominance (HFD, over-sharpening);
* the accuracy of the decoder applied to :math:`F(t)` (accuracy against depth; for a model trained at
  :math:`T`, times :math:`t > T` extrapolate the flow beyond the training depth);
* the number of vector-field evaluations (NFE) needed to reach :math:`t`.

Functions return *tidy records*: a list of flat dicts, one per (configuration, time), ready for
:func:`write_csv` or the figures. Nothing here prints, reads the environment, seeds the global random
generator or chooses hyperparameters: the models' configs are arguments (the console's ``study`` command
reads the packaged ones, :func:`~continuous_gnn.training.presets.study_config`).

================  ==========================================================================================
module            concept
================  ==========================================================================================
``synthetic``     synthetic graphs as one-split datasets (:func:`synthetic_dataset`)
``trajectory``    one model's trajectory: diagnostics, accuracy and NFE along :math:`t`
``sweep``         depth sweeps of fresh or trained models over W families, solvers and step sizes
``trained``       train a model with the one training loop, then record its trajectory
``homophily``     accuracy against the homophily of contextual SBMs
``units``         a sweep's units of work (one trajectory or one trained model), saved and resumed one by one
``spectra``       eigenvalues of :math:`W`, the spectral radius of :math:`\Delta`
``tables``        records as CSV
``plots``         the figures (matplotlib, imported only when drawing)
================  ==========================================================================================
"""

from .homophily import HOMOPHILY_COLUMNS, homophily_min_nodes, homophily_sweep, homophily_units
from .plots import plot_accuracy_vs_depth, plot_accuracy_vs_homophily, plot_rq_vs_time, plot_w_spectrum
from .spectra import EulerFrequencies, euler_frequencies, laplacian_radius, w_eigenvalues, w_spectrum_records
from .sweep import W_FAMILIES, depth_sweep, depth_units, fresh_model, model_family
from .synthetic import SYNTHETIC_KINDS, synthetic_dataset
from .tables import read_csv, write_csv
from .trained import TrainedTrace, trained_trajectory
from .trajectory import TRAJECTORY_COLUMNS, trajectory_records
from .units import StudyUnit, run_units, unit_key

__all__ = [
    "W_FAMILIES",
    "SYNTHETIC_KINDS",
    "TRAJECTORY_COLUMNS",
    "HOMOPHILY_COLUMNS",
    "synthetic_dataset",
    "fresh_model",
    "model_family",
    "trajectory_records",
    "depth_units",
    "depth_sweep",
    "TrainedTrace",
    "trained_trajectory",
    "homophily_min_nodes",
    "homophily_units",
    "homophily_sweep",
    "StudyUnit",
    "unit_key",
    "run_units",
    "w_eigenvalues",
    "w_spectrum_records",
    "laplacian_radius",
    "EulerFrequencies",
    "euler_frequencies",
    "write_csv",
    "read_csv",
    "plot_rq_vs_time",
    "plot_accuracy_vs_depth",
    "plot_w_spectrum",
    "plot_accuracy_vs_homophily",
]
