"""The run pipeline: a validated config, the objects it builds, the one training loop, records and checkpoints.

===================  ==========================================================================================
module               concept
===================  ==========================================================================================
``config``           :class:`RunConfig`: every setting of a run, validated once; builds the solver settings
``config_io``        config layers (defaults < preset < file < flags) and TOML files
``presets``          the packaged presets (``--preset graff``), search spaces and study models
``search``           search spaces (:class:`SearchSpace`) and the seeds a tuned config's header names
``build``            config → graph operator, features, energy, model
``preflight``        what a config can be checked for before its dataset loads: splits, energy options, memory
``loop``             :func:`train_split` and :func:`run`: the training loop
``step``             one optimiser step of the loop: training forward, loss, epoch totals, divergence check
``history``          what the loop keeps of a split's epochs: curves, best epoch, kept model
``resume``           checkpoints of a run's whole training state, and resuming from them
``stopping``         stopping a checkpointed run at an epoch's end, on request or on SIGINT/SIGTERM
``batches``          mini-batches on subgraphs: random partitions, METIS clusters, sampled neighbourhoods
``distributed``      data-parallel training across processes and machines (torchrun, DDP)
``trial_queue``      a search's trials queued in one Optuna study that several workers share (needs Optuna)
``metrics``          accuracy, ROC-AUC, mean and population std
``time_selection``   the integration time chosen on validation at evaluation (GRAND's early-stopping evaluation)
``records``          per-split results and the JSON record of a run
``checkpoint``       save and load a trained model with its config
===================  ==========================================================================================
"""

from .build import build_graph, build_model, load_run_dataset, prepare_features
from .checkpoint import Checkpoint, CheckpointError, UnsafeCheckpointError, load_checkpoint, save_checkpoint
from .config import RunConfig, check_overrides, parse_splits
from .config_io import config_to_toml, load_config, read_config_file, resolve_config
from .history import still_improving
from .loop import check_run, run, split_seed, train_split
from .metrics import accuracy, population_mean_std, roc_auc
from .preflight import check_before_loading
from .presets import available_presets, preset_path
from .records import (
    EpochInfo,
    KeptModel,
    RunResult,
    SplitResult,
    dataset_summary,
    environment,
    finished_records,
    load_record,
    read_json_object,
    record_key,
    run_record_key,
    save_record,
    settings_key,
)
from .resume import Checkpointing, ResumeWarning
from .search import SearchSpace, load_search_space, search_seeds
from .stopping import RunStopped, StopRequest, stop_on_signals
from .time_selection import best_step, scores_along_flow

__all__ = [
    "RunConfig",
    "parse_splits",
    "check_overrides",
    "resolve_config",
    "read_config_file",
    "load_config",
    "config_to_toml",
    "available_presets",
    "preset_path",
    "SearchSpace",
    "load_search_space",
    "search_seeds",
    "build_graph",
    "build_model",
    "prepare_features",
    "load_run_dataset",
    "train_split",
    "run",
    "check_run",
    "check_before_loading",
    "split_seed",
    "accuracy",
    "roc_auc",
    "population_mean_std",
    "still_improving",
    "scores_along_flow",
    "best_step",
    "EpochInfo",
    "KeptModel",
    "SplitResult",
    "RunResult",
    "dataset_summary",
    "environment",
    "save_record",
    "load_record",
    "read_json_object",
    "settings_key",
    "record_key",
    "run_record_key",
    "finished_records",
    "Checkpoint",
    "CheckpointError",
    "UnsafeCheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "Checkpointing",
    "ResumeWarning",
    "StopRequest",
    "RunStopped",
    "stop_on_signals",
]
