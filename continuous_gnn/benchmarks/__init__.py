"""What the benchmark commands compute: the GRAFF table's reproduction and the solver benchmark.

================  ==========================================================================================
module            concept
================  ==========================================================================================
``reference``     the paper's numbers, the official code's on this data, and the targets
``reproduction``  a preset's run config and outcome; the validation choice held against the target
``solvers``       one solver configuration trained and measured (time, NFE, memory) in a fresh subprocess
================  ==========================================================================================

``continuous-gnn reproduce`` and ``continuous-gnn solvers`` (:mod:`continuous_gnn.cli`) choose what runs,
print the progress and write the pages.
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
