r"""Stopping a checkpointed run early, at the end of an epoch, with a checkpoint to resume from.

A :class:`StopRequest` passed to :func:`~continuous_gnn.training.loop.run` (which needs a
:class:`~continuous_gnn.training.resume.Checkpointing` beside it) is read after every epoch. Once it is set:

* during an epoch that is not its split's last, the run writes a checkpoint of that epoch (unless one was due
  then anyway) and raises :class:`RunStopped`, which names the checkpoint;
* during a split's last epoch, the split finishes (its end is checkpointed as always) and the run stops before
  the next split;
* during the run's last epoch, the run finishes and returns its result.

``Checkpointing(folder, resume=True)`` then continues to the result of an uninterrupted run, as from any
checkpoint. Across processes every rank reads its own request and they stop together, after the same epoch, as
soon as one of them is set (every rank must be given a request, or none).

:func:`stop_on_signals` sets a request from SIGINT and SIGTERM: what Ctrl-C sends, and what a cluster's
scheduler (SLURM, Kubernetes) sends some seconds before it kills a preempted or timed-out job. A second signal
raises :class:`KeyboardInterrupt` at once, for a user who cannot wait for the epoch to end, unless it comes within
:data:`REPEAT_GRACE_S` of the first: a launcher such as ``torchrun`` forwards the signal it gets to its workers, and
a scheduler or a terminal that signals every process of the job makes each worker hear it twice, once directly and
once forwarded. The command line's ``train --checkpoint-dir`` installs it for the run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from .distributed import World

__all__ = ["StopRequest", "RunStopped", "stop_on_signals", "SIGNALS", "REPEAT_GRACE_S"]

#: The signals :func:`stop_on_signals` turns into a stop request by default: Ctrl-C's, and a scheduler's.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds after the first signal during which another one is the same request delivered twice (a launcher
#: forwarding it), not a second request to stop at once.
REPEAT_GRACE_S = 3.0


class StopRequest:
    """A request to stop a checkpointed run at the end of the epoch in progress (see the module docstring).

    Setting it is safe from a signal handler or another thread: the training loop only reads it between
    epochs. The first :meth:`set` wins; later ones keep its reason.

    Attributes:
        reason (str or None): why the run is asked to stop (e.g. ``"SIGTERM"``); ``None`` until :meth:`set`.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str = "requested") -> None:
        """Ask the run to stop, for ``reason``."""
        if not isinstance(reason, str) or not reason:
            raise TypeError(f"a stop request's reason must be a non-empty str, got {reason!r}")
        if self.reason is None:
            self.reason = reason

    @property
    def is_set(self) -> bool:
        return self.reason is not None

    def agreed(self, world: World | None, device: torch.device) -> str | None:
        """Why the run stops now, or ``None`` when it goes on: it stops when this request is set or (across
        processes) any rank's is. Every rank must call it at the same point, since it is a collective there.

        A rank whose own request is not set takes the reason of the first rank stopped by a signal (so that every
        rank exits as that signal asks), else ``"another rank's stop request"``."""
        reason = self.reason  # read once: a signal may set it during the collective, after this rank voted
        if world is None:
            return reason
        # Per rank: 0 = go on, -1 = stop for a reason that is no signal, n > 0 = stop for signal n.
        code = 0 if reason is None else signal.Signals[reason].value if reason in signal.Signals.__members__ else -1
        codes = [int(value.item()) for value in world.gather(torch.tensor([code], device=device))]
        if not any(codes):
            return None
        if reason is not None:
            return reason
        signalled = next((value for value in codes if value > 0), None)
        return signal.Signals(signalled).name if signalled is not None else "another rank's stop request"

    def __repr__(self) -> str:
        return f"StopRequest(reason={self.reason!r})"


class RunStopped(Exception):
    """A run stopped on a :class:`StopRequest`, after writing a checkpoint to resume from.

    Attributes:
        reason (str): the request's reason.
        split (int): the split the run was training (or, stopped at a split's end, the last one it finished).
        epochs_done (int): the epochs of that split done (all of them when it stopped at the split's end).
        checkpoint (Path): the checkpoint written when it stopped; resume with
            ``Checkpointing(checkpoint.parent, resume=True)``.
    """

    def __init__(self, reason: str, *, split: int, epochs_done: int, checkpoint: Path) -> None:
        self.reason, self.split, self.epochs_done, self.checkpoint = reason, split, epochs_done, checkpoint
        super().__init__(f"stopped ({reason}) after epoch {epochs_done} of split {split}; checkpoint "
                         f"{str(checkpoint)!r}: resume with Checkpointing({str(checkpoint.parent)!r}, resume=True)")


@contextlib.contextmanager
def stop_on_signals(request: StopRequest, signals: Sequence[signal.Signals] = SIGNALS,
                    on_signal: Callable[[str], None] | None = None) -> Iterator[StopRequest]:
    """Within the block, the first of ``signals`` sets ``request`` (with the signal's name as its reason) instead of
    stopping the process; a second one raises :class:`KeyboardInterrupt`, unless it comes within
    :data:`REPEAT_GRACE_S` of the first (the same signal forwarded by a launcher). The previous handlers come back
    when the block ends.

    Args:
        request: the request the signals set (pass it to :func:`~continuous_gnn.training.loop.run`).
        signals: which signals (default: :data:`SIGNALS`, SIGINT and SIGTERM).
        on_signal: called with the signal's name when the first one sets the request (e.g. to say so on the
            terminal); nothing is printed otherwise.

    Raises:
        TypeError: if ``request`` is not a :class:`StopRequest`.
        ValueError: if called outside the main thread (Python runs signal handlers only there), or with no
            signals.
    """
    if not isinstance(request, StopRequest):
        raise TypeError(f"stop_on_signals needs a StopRequest, got {type(request).__name__}")
    if not signals:
        raise ValueError("stop_on_signals needs at least one signal")
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("stop_on_signals works in the main thread only, where Python runs signal handlers; set the "
                         "StopRequest from your own handler instead")
    previous = {number: signal.getsignal(number) for number in signals}
    received: list[float] = []  # when the first signal came

    def handle(number: int, frame: object) -> None:
        if received:
            if time.monotonic() - received[0] < REPEAT_GRACE_S:
                return  # the first signal, forwarded
            raise KeyboardInterrupt
        name = signal.Signals(number).name
        received.append(time.monotonic())
        request.set(name)
        if on_signal is not None:
            on_signal(name)

    try:
        for number in signals:
            signal.signal(number, handle)
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
