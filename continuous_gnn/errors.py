"""Exception types for failed solves, diverged training runs and failed distributed runs."""

from __future__ import annotations


class IntegrationError(RuntimeError):
    """An ODE solve failed: non-finite state, step-size underflow, a step or evaluation budget ran out, or the
    solver stopped before the end of the interval.

    The message reads ``"<reason> in <method>, rtol=..., atol=... at t=... after N function evaluations
    (<detail>). Fix: <advice>."``; the tolerances are omitted for fixed-grid methods. It is raised by the
    forward solve and, with the adjoint method, by the backward solve inside ``loss.backward()`` (the detail
    says which).

    Attributes:
        reason (str): ``"non_finite"``, ``"dt_underflow"``, ``"max_nfe"``, ``"max_steps"`` or ``"incomplete"``
            (a SciPy solver gave up before the last requested time, without saying why through torchdiffeq).
        method (str): the solver.
        rtol, atol (float or None): its tolerances (``None`` for fixed-grid methods).
        t (float or None): the time reached when it failed.
        nfe (int): vector-field evaluations so far.
    """

    _ADVICE = {
        "non_finite": "the state blew up: use a smaller step size or T, a more stable method ({stable}), or "
                      "tighter tolerances; check the learning rate and weight scale",
        "dt_underflow": "the adaptive step size shrank to zero, which is typical of a stiff problem or of a "
                        "solution that blows up in finite time near t: loosen rtol/atol, use a fixed-grid method "
                        "with a small step (e.g. method='rk4', step_size=...), 'implicit_adams', or a smaller T; "
                        "options={'min_step': ...} forces progress at the cost of accuracy",
        "max_nfe": "the evaluation budget ran out: loosen rtol/atol, use a fixed-grid method, a smaller T, "
                   "or raise max_nfe",
        "max_steps": "the step budget ran out: loosen rtol/atol, use a fixed-grid method, a smaller T, "
                     "or raise max_steps",
        "incomplete": "the solution may blow up or be stiff there: try a smaller T, looser rtol/atol, or "
                      "options={'solver': 'LSODA'} (or 'Radau') for a stiff problem",
    }

    def __init__(self, reason: str, *, method: str, rtol: float | None, atol: float | None,
                 t: float | None, nfe: int, detail: str = "", advice: str | None = None) -> None:
        self.reason = reason
        self.method = method
        self.rtol = rtol
        self.atol = atol
        self.t = t
        self.nfe = nfe
        tolerances = "" if rtol is None else f", rtol={rtol:g}, atol={atol:g}"
        where = "" if t is None else f" at t={t:.6g}"
        message = f"{reason.replace('_', ' ')} in {method}{tolerances}{where} after {nfe} function evaluations"
        if detail:
            message += f" ({detail})"
        if advice is None:
            # A blown-up state is never advised the stable method that just failed: the other one is named.
            others = [name for name in ("rk4", "implicit_adams") if name != method]
            stable = f"e.g. {others[0]!r} with a smaller step" if len(others) == 1 else "e.g. 'rk4' or 'implicit_adams'"
            advice = self._ADVICE[reason].replace("{stable}", stable)
        super().__init__(f"{message}. Fix: {advice}.")


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss or parameter (usually a learning rate that is too large).

    Attributes:
        split (int): the split being trained.
        epoch (int): the epoch at which it was detected.
    """

    def __init__(self, message: str, *, split: int, epoch: int) -> None:
        self.split = split
        self.epoch = epoch
        super().__init__(message)


class DistributedError(RuntimeError):
    """A rank of a distributed run lost its process group: another rank stopped, or the connection between
    them failed. The message names the rank and the backend's own line; the run is resumed by rerunning the
    whole command (with ``--resume`` and the same ``--checkpoint-dir`` to keep the epochs already done)."""
