"""What the benchmark commands compute: the GRAFF table's reproduction, the solver and the performance benchmarks.

================  ==========================================================================================
module            concept
================  ==========================================================================================
``reference``     the paper's numbers, the official code's on this data, and the targets
``reproduction``  a preset's run config and outcome; the validation choice held against the target
``solvers``       one solver configuration trained and measured (time, NFE, memory) in a fresh subprocess
``timing``        wall-time comparisons: interleaved contestants, medians of repeats, ratios to a baseline
``peak``          the extra memory one piece of work needs (resident on CPU, allocated on CUDA)
``isolated``      measurements in processes of their own, under a given environment
``allocators``    the C allocator in use, and the settings the performance benchmark compares
``graphs``        the synthetic graphs of the performance benchmark (community graph, uniform graph)
``epoch``         a training epoch of the package's GRAFF model against a PyG GCNConv stack
``overhead``      ``integrate`` against a hand-written Euler loop; a field evaluation against its products
``memory``        peak memory and time of direct backprop against the adjoint as T grows
``scaling``       one field evaluation on growing graphs, the fitted exponent, and per allocator setting
================  ==========================================================================================

``continuous-gnn reproduce``, ``continuous-gnn solvers`` and ``continuous-gnn bench`` (:mod:`continuous_gnn.cli`)
choose what runs, print the progress and write the pages.
"""

from .reference import (
    DATASETS,
    LINEAR,
    MODELS,
    NAMES,
    OFFICIAL_HERE,
    OPTIONAL,
    PAPER_D,
    PAPER_DD,
    TARGET_NOTES,
    TARGETS,
    formula_target,
    paper_best,
    stretch_bar,
)
from .reproduction import Outcome, check_splits, preset_config, select_by_validation

__all__ = ["DATASETS", "LINEAR", "MODELS", "NAMES", "OFFICIAL_HERE", "OPTIONAL", "PAPER_D", "PAPER_DD", "TARGETS",
           "TARGET_NOTES", "formula_target", "paper_best", "stretch_bar", "Outcome", "check_splits", "preset_config",
           "select_by_validation"]
