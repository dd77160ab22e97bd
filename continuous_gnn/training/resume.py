r"""Checkpoints of a training run, and resuming from the newest one with the result of an uninterrupted run.

:func:`~continuous_gnn.training.loop.run` with a :class:`Checkpointing` writes the whole training state into
its folder every ``every`` epochs of a split and at the end of each split, as ``checkpoint-PPPP-EEEEEEE.pt``:
``PPPP`` is the position of the split in the run's list of splits and ``EEEEEEE`` the epochs of that split done
(the checkpoint at the end of a split is the start of the next one, epoch 0). Only the newest ``keep`` files
stay, and temporaries a killed process left behind are removed. Each is written atomically
(:func:`~continuous_gnn.training.checkpoint.write_plain`) and holds plain data and tensors only, read back with
``torch.load(weights_only=True)``:

================  ==========================================================================================
key               content
================  ==========================================================================================
``format``        :data:`RESUME_FORMAT`
``kind``          ``"continuous_gnn.training_state"``
``config``        :meth:`RunConfig.to_dict() <continuous_gnn.training.RunConfig.to_dict>`
``versions``      ``continuous_gnn`` and ``torch`` versions
``environment``   torch threads (the device is in the config)
``world_size``    processes of the run (1 without ``torch.distributed``)
``splits``        the run's splits; ``position`` the index of the one in progress
``finished``      the :class:`~continuous_gnn.training.records.SplitResult` of each finished split (as dicts)
``run_time``      seconds the run has taken so far
``current``       the split in progress, or ``None`` at a split's end: ``split``, ``model`` and ``optimizer``
                  state, ``history`` (:class:`~continuous_gnn.training.history.SplitHistory`: curves, best
                  epoch, kept model, times) and ``random``: torch's CPU state (and CUDA's on a GPU) of every
                  rank, and the states of the Jacobian probe's and the mini-batch sampler's generators
``keep``          which model of each split the run keeps (``"best"``, ``"last"`` or ``None``; see ``run``)
================  ==========================================================================================

With ``resume=True`` the run continues from the newest readable checkpoint: a newest file that cannot be read
(cut short, corrupt: bytes that fail the archive's checksums) is passed over for the one before it with a
:class:`ResumeWarning` naming both, and renamed ``<name>.unreadable``, so that the run's next checkpoints are the
newest and the pruning of old ones keeps them. Every
random stream continues where it stopped, so the finished run equals an uninterrupted one bit for bit (wall
times aside) on the same torch build, device and thread count, which float reductions depend on; a
checkpoint from another torch version or thread count resumes with a :class:`ResumeWarning`. A checkpoint of
another config, split list, process count, format or ``continuous_gnn`` version is refused
(:class:`~continuous_gnn.training.checkpoint.CheckpointError` naming what differs), and so is a file holding
other types than plain data and tensors (:class:`~continuous_gnn.training.checkpoint.UnsafeCheckpointError`).
Across processes every rank reads the checkpoint and rank 0 alone writes.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointError, package_versions, write_plain
from .config import RunConfig
from .distributed import World
from .folder_claim import FolderClaim, FolderInUseError
from .history import SplitHistory
from .records import SplitResult
from .resume_files import RESUME_FORMAT, STATE_KIND, ResumeWarning, checkpoint_files, newest_checkpoint

__all__ = ["RESUME_FORMAT", "ResumeWarning", "Checkpointing", "RunCheckpoints", "checkpoint_files"]

@dataclass(frozen=True)
class Checkpointing:
    """Where and how often a run writes checkpoints, and whether it resumes from them.

    Attributes:
        directory (Path): the folder of the checkpoints (created when a run that writes there starts).
        every (int or None): write one every ``every`` epochs of a split; ``None`` only at the end of each split
            (default: ``None``).
        keep (int): how many of the newest checkpoints stay (default: 2).
        resume (bool): continue from the newest checkpoint in ``directory`` (default: ``False``).

    Raises:
        TypeError: if ``directory`` is not a path, ``every`` or ``keep`` not an int, ``resume`` not a bool.
        ValueError: if ``every`` or ``keep`` is less than 1, or ``directory`` is a file.
    """

    directory: Path
    every: int | None = None
    keep: int = 2
    resume: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.directory, (str, Path)):
            raise TypeError(f"Checkpointing.directory must be a path, got {type(self.directory).__name__}")
        object.__setattr__(self, "directory", Path(self.directory))
        for name, value in (("every", self.every), ("keep", self.keep)):
            if value is None and name == "every":
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Checkpointing.{name} must be an int, got {type(value).__name__} {value!r}")
            if value < 1:
                raise ValueError(f"Checkpointing.{name} must be at least 1, got {value}")
        if not isinstance(self.resume, bool):
            raise TypeError(f"Checkpointing.resume must be a bool, got {type(self.resume).__name__}")
        if self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"checkpoint folder {str(self.directory)!r} is a file; pass a folder")

    def check_folder(self) -> None:
        """Raise ``ValueError`` unless the folder fits the request: checkpoints to resume from, or none to mix
        with a fresh run's (a fresh run in a folder with checkpoints would take turns with them)."""
        files = checkpoint_files(self.directory)
        strays = [path.name for path in files if not path.is_file()]
        if strays:  # a checkpoint is written by replacing its name, which a folder there would make fail
            raise ValueError(f"checkpoint folder {str(self.directory)!r} holds {strays[0]!r}, which is not a file but "
                             "has a checkpoint's name; move it out of the folder")
        if self.resume and not files:
            state = "holds no checkpoints" if self.directory.is_dir() else "does not exist"
            raise ValueError(f"nothing to resume: checkpoint folder {str(self.directory)!r} {state} (files "
                             f"checkpoint-PPPP-EEEEEEE.pt); run without resuming to write checkpoints there")
        if not self.resume and files:
            raise ValueError(f"checkpoint folder {str(self.directory)!r} already holds checkpoints (newest "
                             f"{files[-1].name}); resume that run (--resume) or pass an empty folder")

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether a checkpoint is written after ``epoch`` of ``epochs`` (the last one has the split's end)."""
        return self.every is not None and epoch % self.every == 0 and epoch < epochs


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [f"{key}: checkpoint {stored.get(key)!r}, this run {current.get(key)!r}"
            for key in sorted(set(stored) | set(current)) if stored.get(key) != current.get(key)]


def _environment() -> dict[str, Any]:
    """What changes a run's last bits without being part of its config (each rank's device index neither)."""
    return {"torch_threads": torch.get_num_threads()}


class RunCheckpoints:
    """The checkpoints of one run: restores its state (when resuming) and writes new checkpoints.

    :func:`~continuous_gnn.training.loop.run` makes one; the loop calls :meth:`restore_split` at the start of
    each split, :meth:`save_epoch` when :meth:`due` says so, and :meth:`finish_split` at its end.

    ``keep`` is the run's (:func:`~continuous_gnn.training.loop.run`'s ``keep``): its checkpoints record it, and a
    run that keeps models cannot continue one that kept none.

    The process that writes the checkpoints (rank 0 of a distributed run) holds the folder for the run
    (:class:`~continuous_gnn.training.folder_claim.FolderClaim`) until :meth:`close`, so that a second run cannot
    write into it at the same time and delete this one's checkpoints.

    Raises:
        ValueError: if the folder does not fit the request (:meth:`Checkpointing.check_folder`), or another
            process is writing checkpoints there
            (:class:`~continuous_gnn.training.folder_claim.FolderInUseError`).
        CheckpointError: if no checkpoint can be read, or the newest readable one belongs to another run (config,
            splits, process count, format or ``continuous_gnn`` version), or it kept no models and this run
            asks to keep them (``keep``: the best models of its earlier epochs are gone); the message names what
            differs.
        UnsafeCheckpointError: if a checkpoint file holds other types than plain data and tensors.
    """

    def __init__(self, settings: Checkpointing, config: RunConfig, splits: list[int], device: torch.device,
                 world: World | None = None, keep: str | None = None) -> None:
        settings.check_folder()  # before the claim creates the folder: a mistyped folder to resume from is named
        self.claim = self._claim(settings, device, world)
        try:
            settings.check_folder()  # again, now that no other run can write there
            self.settings, self.config, self.splits, self.device, self.world = settings, config, splits, device, world
            self.keep = keep
            self.started = time.perf_counter()
            self.finished: list[SplitResult] = []
            self.earlier_time = 0.0
            self._current: dict[str, Any] | None = None
            self.last_written: Path | None = None
            self.resumed_from: dict[str, Any] | None = None
            if settings.resume:
                self._restore_run()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _claim(settings: Checkpointing, device: torch.device, world: World | None) -> FolderClaim | None:
        """The writing process's claim on the folder; every rank of a distributed run stops when it is refused
        (instead of waiting for rank 0 in the first collective until the process group times out)."""
        claim, refusal = None, None
        if world is None or world.is_main:
            try:
                claim = FolderClaim(settings.directory, "checkpoint folder")
            except FolderInUseError as err:
                refusal = err
        if world is not None:
            refused = world.sum(torch.tensor([float(refusal is not None)], device=device))
            if refused.item() > 0 and refusal is None:
                refusal = FolderInUseError(f"checkpoint folder {str(settings.directory)!r} is in use by another run "
                                           "(rank 0 says which)")
        if refusal is not None:
            raise refusal
        return claim

    @property
    def position(self) -> int:
        """The place in the run of the split in progress: the number of finished splits."""
        return len(self.finished)

    @property
    def world_size(self) -> int:
        return 1 if self.world is None else self.world.size

    def _restore_run(self) -> None:
        path, payload = newest_checkpoint(self.settings.directory, set_aside=self.world is None or self.world.is_main)
        if payload["format"] != RESUME_FORMAT:
            raise CheckpointError(f"checkpoint {str(path)!r} has format {payload['format']}; this version reads "
                                  f"format {RESUME_FORMAT}: finish that run with the version that wrote it, or start "
                                  f"afresh in another folder")
        versions = package_versions()
        if payload["versions"].get("continuous_gnn") != versions["continuous_gnn"]:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written by continuous_gnn {payload['versions'].get('continuous_gnn')}, "
                f"this is {versions['continuous_gnn']}; a run resumes only with the version that started it. "
                f"Finish it with that version, or start afresh in another folder")
        differ = _differences(payload["config"], self.config.to_dict())
        for name, stored, current in (("splits", payload["splits"], self.splits),
                                      ("processes", payload["world_size"], self.world_size)):
            # The config names the splits too, unless it left them to the dataset: say it once.
            if stored != current and not any(line.startswith(f"{name}: ") for line in differ):
                differ.append(f"{name}: checkpoint {stored!r}, this run {current!r}")
        if differ:
            raise CheckpointError(f"checkpoint {str(path)!r} belongs to another run (" + "; ".join(differ) + "); "
                                  "resume with the settings that started it, or start afresh in another folder")
        stored_keep = payload.get("keep")  # absent from the files of earlier versions, which kept none
        if self.keep is not None and stored_keep != self.keep:
            kept = "no" if stored_keep is None else f"the {stored_keep!r}"
            raise CheckpointError(
                f"checkpoint {str(path)!r} is of a run that kept {kept} "
                f"models, and this one asks to keep the {self.keep!r} one of each split (on the command line: "
                "--save-model), which the epochs trained before it may hold: resume without it, as the run started, "
                "or start afresh in another folder")
        changed = _differences({**payload["environment"], "torch": payload["versions"].get("torch")},
                               {**_environment(), "torch": versions["torch"]})
        if changed:
            warnings.warn(f"resuming from {str(path)!r} in another environment (" + "; ".join(changed) + "): the "
                          "result may differ in the last bits from an uninterrupted run", ResumeWarning, stacklevel=2)
        self.finished = [SplitResult(**result) for result in payload["finished"]]
        self.resumed_from = {"checkpoint": str(path), "versions": payload["versions"],
                             "machine": payload["environment"], "run_time": payload["run_time"]}
        self.earlier_time = payload["run_time"]
        self._current = payload["current"]

    def run_time(self) -> float:
        """Seconds the run has taken, in earlier processes too."""
        return self.earlier_time + time.perf_counter() - self.started

    def due(self, epoch: int) -> bool:
        """Whether to checkpoint after ``epoch`` of the split in progress."""
        return self.settings.due(epoch, self.config.epochs)

    def restore_split(self, split: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                      generators: dict[str, torch.Generator | None]) -> SplitHistory | None:
        """Load the checkpoint's state of ``split`` into ``model``, ``optimizer``, the generators and torch's random
        state, and return its history; ``None`` (nothing loaded) when the checkpoint holds no epochs of it."""
        current, self._current = self._current, None
        if current is None or current["split"] != split:
            return None
        rank = 0 if self.world is None else self.world.rank
        try:  # the structure was checked on reading; what it holds must fit this run's model too
            model.load_state_dict(current["model"])
            optimizer.load_state_dict(current["optimizer"])
            randomness = current["random"]
            torch.set_rng_state(randomness["torch"][rank])
            if randomness["cuda"] is not None:
                torch.cuda.set_rng_state(randomness["cuda"][rank], self.device)
            for name, generator in generators.items():
                if generator is not None:
                    generator.set_state(randomness[name])
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as err:
            first = " ".join(str(err).split())
            raise CheckpointError(
                f"checkpoint {str(self.resumed_from['checkpoint'])!r} does not fit this run: its state of split "
                f"{split} cannot be loaded ({type(err).__name__}: {first[:300]}); it was not written by this run, "
                "or it was changed since: delete it to resume from an older one, or start afresh in another folder"
            ) from None
        history = SplitHistory.from_state_dict(current["history"])
        if self.keep is None:  # a run that kept models, resumed without keeping them
            history.kept = history.kept_state = None
        if history.kept_state is not None:
            history.kept_state = {k: v.to(self.device) for k, v in history.kept_state.items()}
        return history

    def _ranks(self, state: torch.Tensor) -> list[torch.Tensor]:
        return [state.clone()] if self.world is None else self.world.gather(state)

    def save_epoch(self, split: int, history: SplitHistory, model: nn.Module, optimizer: torch.optim.Optimizer,
                   generators: dict[str, torch.Generator | None]) -> None:
        """Write a checkpoint of the split in progress (on every rank: the ranks' random states are gathered)."""
        randomness = {"torch": self._ranks(torch.get_rng_state()),
                      "cuda": self._ranks(torch.cuda.get_rng_state(self.device)) if self.device.type == "cuda" else None,
                      **{name: None if g is None else g.get_state() for name, g in generators.items()}}
        current = {"split": split, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                   "history": history.state_dict(), "random": randomness}
        self._write(history.epochs_run, current)

    def close(self) -> None:
        """The run is over, or failed: give the folder up to later runs."""
        if self.claim is not None:
            self.claim.release()

    def finish_split(self, result: SplitResult) -> None:
        """Record a finished split and write the checkpoint of the run up to it."""
        self.finished.append(result)
        self._write(0, None)

    def _write(self, epoch: int, current: dict[str, Any] | None) -> None:
        # Every rank knows the name, so that each can say where a stopped run's checkpoint is.
        self.last_written = self.settings.directory / f"checkpoint-{self.position:04d}-{epoch:07d}.pt"
        if self.world is not None and not self.world.is_main:
            return
        payload = {"format": RESUME_FORMAT, "kind": STATE_KIND, "config": self.config.to_dict(),
                   "versions": package_versions(), "environment": _environment(),
                   "world_size": self.world_size, "splits": list(self.splits), "position": self.position,
                   "finished": [result.to_dict() for result in self.finished], "run_time": self.run_time(),
                   "current": current, "keep": self.keep}
        directory = self.settings.directory
        write_plain(self.last_written, payload)
        # What a killed process left half-written (atomic_open's temporaries) goes with the old checkpoints.
        stale = [path for path in checkpoint_files(directory)[:-self.settings.keep] if path != self.last_written]
        for old in [*stale, *directory.glob(".checkpoint-*.tmp")]:
            old.unlink(missing_ok=True)
