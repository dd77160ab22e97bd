"""Measurements in processes of their own, so that each one's peak memory and allocator are its own.

:func:`run_isolated` starts one fresh interpreter (``python -c "...; serve()"``) with the environment it is
given, since glibc and jemalloc read their settings once, when a process starts. That server imports the
package once and then forks one process per measurement, one after the other, so a measurement starts from the
imported modules and nothing else, without paying for the imports again. A CUDA context does not survive a
fork (and importing the libraries may create one), so measurements on a CUDA device are started with ``spawn``
instead: each is a fresh interpreter of the server's environment, which pays for its own imports. The request
(which function of a :mod:`continuous_gnn.benchmarks` module, its keyword arguments per measurement, a folder
for the results) goes to the server's standard input as JSON; each measurement writes its JSON result file atomically, and the parent
hands each result on as soon as it appears. An exception in a measurement, a crash (e.g. killed for memory) or a
timeout becomes a result with a ``failed`` entry. Nothing is read from the command line.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["run_isolated", "serve", "start_method", "ALLOWED_PREFIX"]

#: Only functions of this package's benchmark modules may be requested.
ALLOWED_PREFIX = "continuous_gnn.benchmarks."

_BOOT = "from continuous_gnn.benchmarks.isolated import serve; serve()"
#: Seconds the server may take to start (imports) on top of the first measurement's timeout.
_STARTUP = 120.0


def _resolve(target: str) -> Callable[..., dict]:
    module_name, _, function = target.partition(":")
    if not module_name.startswith(ALLOWED_PREFIX) or not function:
        raise ValueError(f"target must be 'continuous_gnn.benchmarks.<module>:<function>', got {target!r}")
    return getattr(importlib.import_module(module_name), function)


def run_isolated(target: str, specs: Sequence[Mapping[str, Any]], *, env: Mapping[str, str], timeout: float,
                 on_result: Callable[[int, dict], None] = lambda index, result: None) -> list[dict]:
    """Run ``target(**spec)`` for each spec, each in its own process, under environment ``env``.

    Args:
        target (str): ``"continuous_gnn.benchmarks.<module>:<function>"``; the function returns a JSON-able dict.
        specs (sequence of mappings): keyword arguments (JSON-able), one mapping per measurement.
        env (mapping): the whole environment of the processes.
        timeout (float): seconds per measurement before its process is killed.
        on_result (callable): called with the index and the result of each measurement as it finishes.

    Returns:
        list of dict: the results in the order of ``specs``; a failed one is ``{"failed": reason}``. Each gets
        ``elapsed_s``, the seconds the parent waited for it.
    """
    _resolve(target)  # a bad target is the caller's mistake: raise here, not as a measurement's failure
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="continuous_gnn_bench_") as folder:
        request = json.dumps({"target": target, "specs": [dict(s) for s in specs], "folder": folder,
                              "timeout": timeout, "start": start_method(specs)})
        log = Path(folder) / "server.log"
        with open(log, "w") as errors:
            server = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=errors, env=dict(env), text=True, start_new_session=True,
                                      cwd=folder)  # `-c` puts the cwd first on sys.path: no other checkout there
            try:
                server.stdin.write(request)
                server.stdin.close()
                for index in range(len(specs)):
                    started = time.perf_counter()
                    result = _wait(server, Path(folder) / f"{index}.json", started + timeout + 30 +
                                   (_STARTUP if index == 0 else 0.0), log)
                    result["elapsed_s"] = time.perf_counter() - started
                    results.append(result)
                    on_result(index, result)
            finally:
                if server.poll() is None:
                    try:
                        server.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        _stop(server)
    return results


def start_method(specs: Sequence[Mapping[str, Any]]) -> str:
    """``"spawn"`` when a measurement runs on a CUDA device (a forked child cannot use CUDA), else ``"fork"``."""
    return "spawn" if any(str(spec.get("device", "")).startswith("cuda") for spec in specs) else "fork"


def _wait(server: subprocess.Popen, path: Path, deadline: float, log: Path) -> dict:
    while not path.is_file():
        if server.poll() is not None and not path.is_file():
            last = (log.read_text().strip().splitlines() or ["no output"])[-1]
            return {"failed": f"measurement server exited with code {server.returncode}: {last}"}
        if time.perf_counter() > deadline:
            _stop(server)
            return {"failed": "the measurement server stopped answering (timed out)"}
        time.sleep(0.05)
    return json.loads(path.read_text())


def _stop(server: subprocess.Popen) -> None:
    """Kill the server and the measurement it forked: the process group this module started it in."""
    try:
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait()


def _measure(function: Callable[..., dict], spec: dict, path: str) -> None:
    from ..atomic import atomic_write_text

    try:
        result = function(**spec)
    except Exception as err:  # reported to the parent, which records the measurement as failed
        result = {"failed": f"{type(err).__name__}: {err}"}
    atomic_write_text(path, json.dumps(result))


def serve() -> None:
    """The server's side: read the request from standard input, fork one process per measurement, in turn."""
    import multiprocessing

    from ..allocator import arrange_from_environment
    from ..atomic import atomic_write_text

    arrange_from_environment("system")  # CONTINUOUS_GNN_ALLOCATOR=keep here reaches every forked measurement
    request = json.loads(sys.stdin.read())
    function = _resolve(request["target"])
    # fork on the CPU: the imports are done once here, and the server has run no torch work, so no thread pool
    # exists; spawn on CUDA (start_method)
    context = multiprocessing.get_context(request.get("start", "fork"))
    for index, spec in enumerate(request["specs"]):
        path = Path(request["folder"]) / f"{index}.json"
        process = context.Process(target=_measure, args=(function, spec, str(path)))
        process.start()
        process.join(request["timeout"])
        if process.is_alive():
            process.kill()  # only this measurement's own process
            process.join()
            atomic_write_text(path, json.dumps({"failed": f"timed out after {request['timeout']:.0f} s"}))
        elif not path.is_file():
            atomic_write_text(path, json.dumps({"failed": f"the measurement process exited with code "
                                                          f"{process.exitcode}"}))
