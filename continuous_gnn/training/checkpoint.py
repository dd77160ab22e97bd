r"""Save and load a trained :class:`~continuous_gnn.ContinuousGNN` together with its resolved configuration.

A checkpoint is one ``torch.save`` file holding only plain data (so it loads with ``weights_only=True``,
which never runs code from the file):

=================  ==========================================================================================
key                content
=================  ==========================================================================================
``format``         :data:`CHECKPOINT_FORMAT`
``kind``           ``"continuous_gnn.ContinuousGNN"``
``config``         :meth:`RunConfig.to_dict() <continuous_gnn.training.RunConfig.to_dict>`, the resolved config
``num_features``   input width ``p``
``num_classes``    output width ``k``
``state_dict``     the model's parameters and buffers
``metadata``       caller's JSON-like dict (dataset, split, metrics, ...)
``versions``       package versions at save time
=================  ==========================================================================================

The model is rebuilt with :func:`~continuous_gnn.training.build.build_model` from the stored config and its
state is loaded strictly, so a checkpoint can only be read back into the architecture it was written from.
Writes are atomic: a temporary file in the target folder, then :func:`os.replace`, so a crash never leaves
a truncated checkpoint under the final name. :func:`write_plain` and :func:`read_plain` are the writing and the
safe reading of such files, shared with the training-state checkpoints of :mod:`~continuous_gnn.training.resume`.
"""

from __future__ import annotations

import numbers
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_open
from ..models import ContinuousGNN
from ..nn.sparse_linear import SparseInputLinear
from .build import build_model, load_run_dataset
from .config import RunConfig

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "CheckpointError", "UnsafeCheckpointError", "save_checkpoint",
           "load_checkpoint", "package_versions", "write_plain", "read_plain"]

#: Version of the checkpoint layout; bumped on incompatible changes.
CHECKPOINT_FORMAT = 1
_KIND = "continuous_gnn.ContinuousGNN"
_KEYS = ("format", "kind", "config", "num_features", "num_classes", "state_dict")


class CheckpointError(ValueError):
    """A file is not a readable checkpoint of this package (wrong format, missing keys, mismatched state)."""


class UnsafeCheckpointError(CheckpointError):
    """A complete ``torch.save`` archive that names types outside those ``weights_only`` loading allows: not a
    file this package wrote, and unpickling it could run code, so it is never loaded."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model (ContinuousGNN): the rebuilt model, in eval mode.
        config (RunConfig): its resolved configuration.
        num_features (int): input width ``p``.
        num_classes (int): number of classes ``k``.
        metadata (dict): what the caller stored with it.
        versions (dict): package versions recorded at save time.
    """

    model: ContinuousGNN
    config: RunConfig
    num_features: int
    num_classes: int
    metadata: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def load_dataset(self, root: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None) -> Any:
        """The dataset of :attr:`config` as the model was trained on it, for predictions: with the config's feature
        normalisation (:func:`~continuous_gnn.training.build.load_run_dataset`). A plain
        :func:`~continuous_gnn.data.load_dataset` uses the dataset's default, which the presets turn off, and the
        model would then read features on another scale without any error.

        Raises:
            ValueError: if the config names no dataset (a model trained in Python on data of one's own).
        """
        return load_run_dataset(self.config, root, cache_dir=cache_dir)


def package_versions() -> dict[str, str]:
    """The versions a checkpoint records: ``continuous_gnn`` and ``torch``."""
    from .. import __version__

    return {"continuous_gnn": str(__version__), "torch": str(torch.__version__)}


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` is JSON-like (what ``weights_only`` loading accepts), recursively."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(
        f"{where}: checkpoint metadata must be JSON-like (None, bool, int, float, str, lists, dicts), "
        f"got {type(value).__name__}"
    )


def _check_size(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int (the width the model was built with), got {type(value).__name__} "
                        f"{value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def _settings(model: ContinuousGNN) -> dict[str, Any]:
    """What a model computes that its state dict does not record, by :class:`RunConfig` field name where there is
    one (the adjoint's resolved backward settings as ``adjoint_*``)."""
    solver = model.solver
    first = model.encoder if isinstance(model.encoder, nn.Linear) else getattr(model.encoder, "input", None)
    # build_model applies the input dropout in its first linear map (SparseInputLinear), a model built by hand
    # in the model itself: either way one of the two is zero.
    input_dropout = model.input_dropout + (first.dropout if isinstance(first, SparseInputLinear) else 0.0)
    settings = {"input_dropout": input_dropout, "dropout": model.dropout,
                "time": model.t_end, "activation": model.flow.activation_name,
                "normalize_field": model.flow.normalize, "method": solver.method, "max_nfe": solver.max_nfe,
                "adjoint": model.adjoint is not None, "self_loops": model.self_loops,
                "detach_source": model.detach_source}
    if solver.fixed:
        settings.update(step_size=solver.step_size, num_steps=solver.num_steps)
    else:
        settings.update(rtol=solver.rtol, atol=solver.atol)
    if model.adjoint is not None:
        adjoint = model.adjoint.for_solver(solver)
        settings.update(adjoint_method=adjoint.method, adjoint_step_size=adjoint.step_size,
                        adjoint_rtol=adjoint.rtol, adjoint_atol=adjoint.atol, seminorm=adjoint.seminorm)
    return settings


def _check_settings(model: ContinuousGNN, reference: ContinuousGNN) -> None:
    """Raise :class:`CheckpointError` unless ``model`` integrates like ``reference``, the model its config builds."""
    actual, expected = _settings(model), _settings(reference)
    differ = [f"{key}: model {actual.get(key)!r}, config {expected.get(key)!r}"
              for key in sorted(set(actual) | set(expected)) if actual.get(key) != expected.get(key)]
    if differ:
        # load_checkpoint rebuilds the model from the config, so a mismatch would silently load a different model.
        raise CheckpointError(
            "the model's settings differ from the model its config builds (" + "; ".join(differ) + "); save the "
            "config the model was actually built from: config.replace(<field>=<the model's value>) for each field named"
        )


def save_checkpoint(path: str | os.PathLike[str], model: ContinuousGNN, config: RunConfig, *,
                    num_features: int, num_classes: int, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` and its config to ``path`` atomically (parent folders are created).

    Args:
        path: the target file (conventionally ``*.pt``).
        model (ContinuousGNN): a model built by :func:`~continuous_gnn.training.build.build_model` from ``config``.
        config (RunConfig): the resolved configuration the model was built and trained with.
        num_features (int): input width the model was built with.
        num_classes (int): number of classes it was built with.
        metadata (Mapping, optional): JSON-like facts to keep with it (dataset, split, metrics, seed).

    Returns:
        Path: ``path``.

    Raises:
        TypeError: if ``model``/``config`` have the wrong type, ``num_features``/``num_classes`` are not ints or
            ``metadata`` is not JSON-like.
        ValueError: if ``num_features`` or ``num_classes`` is less than 1.
        CheckpointError: if ``model``'s parameters do not match what ``config`` builds, or its integration
            settings differ: ``t_end`` (``config.time``), the solver options (method, step size, tolerances,
            adjoint, ...), the activation or ``normalize_field``.
    """
    if not isinstance(model, ContinuousGNN):
        raise TypeError(f"model must be a ContinuousGNN, got {type(model).__name__}")
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    _check_size("num_features", num_features)
    _check_size("num_classes", num_classes)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    reference = _check_state(config, num_features, num_classes, state)
    _check_settings(model, reference)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": _KIND,
        "config": config.to_dict(),
        "num_features": int(num_features),
        "num_classes": int(num_classes),
        "state_dict": state,
        "metadata": _plain(dict(metadata or {}), "metadata"),
        "versions": package_versions(),
    }
    return write_plain(path, payload)


def write_plain(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """``torch.save`` ``payload`` (plain data and tensors) to ``path`` atomically; parent folders are created."""
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def _refusal(err: pickle.UnpicklingError) -> str:
    """The line of torch's weights-only refusal that names the type (its advice to trust the file is not ours)."""
    text = " ".join(str(err).split())
    start = text.find("Unsupported")
    return text[start:].split(" Please use")[0] if start >= 0 else text[:200]


def read_plain(path: Path, *, map_location: str | torch.device, writer: str, fix: str | None = None) -> Any:
    """``torch.load(path, weights_only=True)``: plain data and tensors only, so nothing in the file runs.

    Args:
        path: an existing file.
        map_location: where the tensors go.
        writer: what writes such files, for the messages (e.g. ``"save_checkpoint"``).
        fix: what the message of an unreadable file advises (default: to pass a file ``writer`` wrote).

    Raises:
        UnsafeCheckpointError: if the file is a complete archive holding other types (a foreign or crafted file).
        CheckpointError: if it cannot be read at all (truncated, corrupt, not a ``torch.save`` file), or if some
            of its bytes changed since it was written: ``torch.load`` does not check the CRC-32 that the archive
            stores for each entry, and would load damaged weights without a word.
    """
    damaged = _damaged_entry(path)
    if damaged is not None:
        raise CheckpointError(f"{str(path)!r} is corrupt: the bytes of its entry {damaged!r} no longer match the "
                              "checksum written with them (a failing disk, or a copy or transfer that changed them); "
                              f"{fix or f'pass a file that {writer} wrote'}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types, and their text is torch's, not ours
        if isinstance(err, pickle.UnpicklingError) and zipfile.is_zipfile(path):
            # The archive is whole; only what its pickle names was refused.
            raise UnsafeCheckpointError(
                f"{str(path)!r} holds objects outside the plain data and tensors a checkpoint is made of "
                f"({_refusal(err)}); {writer} never writes those, and loading them could run code from the file, "
                f"so it is not loaded. Remove the file") from None
        raise CheckpointError(f"{str(path)!r} is not a checkpoint written by {writer}: it is cut short, corrupt or "
                              f"another kind of file (torch.load: {type(err).__name__}: {_load_failure(err)}); "
                              f"{fix or f'pass a file that {writer} wrote'}") from err


def _damaged_entry(path: Path) -> str | None:
    """The first entry of the ``torch.save`` archive at ``path`` whose bytes fail its stored CRC-32, or ``None``
    (also when the file is no complete zip archive: ``torch.load`` then says what is wrong with it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None


def _load_failure(err: Exception) -> str:
    """What torch found wrong with a file it could not load, without its advice to load the file unsafely."""
    text = " ".join(str(err).split())
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(" Check the documentation", 1)[0].strip()
    # A cut-short zip archive: torch's explanation after the finding repeats what the message around it says.
    text = text.split(" This is an internal miniz error.", 1)[0]
    if len(text) > 200:
        text = text[:200].rsplit(" ", 1)[0] + " ..."
    return text


def _build(config: RunConfig, num_features: int, num_classes: int) -> ContinuousGNN:
    """``build_model`` without advancing the caller's global random state (the weights are overwritten)."""
    with torch.random.fork_rng(devices=[]):
        return build_model(config, num_features, num_classes)


def _check_state(config: RunConfig, num_features: int, num_classes: int,
                 state: Mapping[str, torch.Tensor]) -> ContinuousGNN:
    """Raise :class:`CheckpointError` unless ``state`` fits the model that ``config`` builds; return that model."""
    model = _build(config, num_features, num_classes)
    reference = model.state_dict()
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    wrong = sorted(k for k in set(reference) & set(state) if tuple(reference[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if wrong:
            parts.append(f"shape mismatch in {wrong[:5]}")
        raise CheckpointError(
            "the model's parameters do not match the model its config builds (" + "; ".join(parts) + "); "
            "save the config the model was actually built from"
        )
    return model


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` and rebuild the model (in eval mode).

    Args:
        path: the checkpoint file.
        map_location: where to put the tensors (default: ``"cpu"``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        IsADirectoryError: if ``path`` is a directory.
        CheckpointError: if the file is not a checkpoint of this format (a foreign or corrupt file: wrong kind,
            missing keys, widths that are not positive ints, metadata that is not a dict) or its state does not
            fit its config.
        UnsafeCheckpointError: if it holds objects other than plain data and tensors (it is not unpickled).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {str(path)!r} is a directory; pass the checkpoint file (*.pt) inside it")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    payload = read_plain(path, map_location=map_location, writer="save_checkpoint")
    if isinstance(payload, dict) and payload.get("kind") == "continuous_gnn.training_state":
        raise CheckpointError(f"{str(path)!r} is a training-state checkpoint (train --checkpoint-dir), which resumes a "
                              "run, not a model checkpoint; save the trained model with train --save-model PATH "
                              "(or save_checkpoint in Python)")
    if not isinstance(payload, dict) or payload.get("kind") != _KIND:
        raise CheckpointError(f"{str(path)!r} is not a continuous_gnn model checkpoint (written by train --save-model "
                              "or save_checkpoint)")
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {missing}")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format {payload['format']}, this version reads format {CHECKPOINT_FORMAT}"
        )
    try:
        config = RunConfig.from_dict(payload["config"], source=f"checkpoint {path.name}")
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} holds an invalid config: {err}") from err
    # save_checkpoint writes plain ints and dicts; anything else means a corrupt or foreign file.
    for key in ("num_features", "num_classes"):
        try:
            _check_size(key, payload[key])
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {err}") from err
    for key in ("state_dict", "metadata", "versions"):
        value = payload.get(key)
        if not isinstance(value, Mapping) and not (value is None and key != "state_dict"):
            raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {key} must be a dict, got {type(value).__name__}")
    num_features, num_classes = int(payload["num_features"]), int(payload["num_classes"])
    model = _check_state(config, num_features, num_classes, payload["state_dict"])
    model.load_state_dict(payload["state_dict"], strict=True)
    model.to(map_location).eval()
    return Checkpoint(model=model, config=config, num_features=num_features, num_classes=num_classes,
                      metadata=dict(payload.get("metadata") or {}), versions=dict(payload.get("versions") or {}))
