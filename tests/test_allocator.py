"""Keeping freed memory: applied by mallopt on glibc, refused with a clear error for a bad setting, never over
the user's own allocator variables, and recorded in every run record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from continuous_gnn import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Resident memory after a 256 MB tensor is freed: glibc's default unmaps it, kept memory stays resident.
_PROBE = """
import json, os, sys
from continuous_gnn.allocator import arrange_from_environment
said = arrange_from_environment(sys.argv[1])
import torch

def resident():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

x = torch.ones(64_000_000)
before = resident()
del x
print(json.dumps({"said": said, "released": before - resident()}))
"""

_RELEASE = _PROBE.replace("sys.argv[1]", "'keep'").replace(
    'print(json.dumps({"said": said, "released": before - resident()}))',
    "kept = before - resident()\n"
    "from continuous_gnn.allocator import release_freed_memory\n"
    "assert release_freed_memory()\n"
    "print(json.dumps([kept, before - resident()]))")


def _probe(default: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in allocator.ALLOCATOR_VARIABLES + (allocator.ALLOCATOR_ENV,)}
    done = subprocess.run([sys.executable, "-c", _PROBE, default], capture_output=True, text=True, timeout=120,
                          env={**environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_kept_memory_stays_resident_after_a_large_tensor_is_freed():
    system = _probe("system")
    kept = _probe("keep")
    assert system["said"].startswith("system default") and system["released"] > 200e6
    assert kept["said"] == "glibc, freed memory kept (mallopt)" and kept["released"] < 20e6
    assert _probe("keep", CONTINUOUS_GNN_ALLOCATOR="system")["released"] > 200e6


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_trimming_is_switched_off_not_capped(monkeypatch):
    # mallopt(3): M_TRIM_THRESHOLD = -1 disables trimming. The largest positive int (2 GiB) was a cap that a
    # 10⁶-node solve exceeds, so glibc handed the heap top back and every pass page-faulted on it again.
    calls = []

    class FakeLibc:
        @staticmethod
        def mallopt(param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: FakeLibc)
    monkeypatch.setattr(allocator, "_kept", False)
    assert allocator.keep_freed_memory()
    assert calls == [(-4, 0), (-1, -1)]  # M_MMAP_MAX = 0, M_TRIM_THRESHOLD = -1


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_kept_memory_is_released_on_request():
    environ = {k: v for k, v in os.environ.items() if k not in allocator.ALLOCATOR_VARIABLES + (allocator.ALLOCATOR_ENV,)}
    released = subprocess.run([sys.executable, "-c", _RELEASE], capture_output=True, text=True, timeout=120,
                              env=environ)
    assert released.returncode == 0, released.stderr
    kept, after = json.loads(released.stdout)
    assert kept < 20e6 and after > 200e6  # kept after the free, handed back by release_freed_memory


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_users_allocator_variables_win():
    tuned = _probe("keep", MALLOC_ARENA_MAX="2")
    assert tuned["said"] == "MALLOC_ARENA_MAX=2" and tuned["released"] > 200e6


def test_a_bad_setting_names_the_valid_ones():
    with pytest.raises(ValueError, match="CONTINUOUS_GNN_ALLOCATOR='fast': set it to 'keep'.*or 'system'"):
        allocator.arrange_from_environment("keep", {"CONTINUOUS_GNN_ALLOCATOR": "fast"})
    with pytest.raises(ValueError, match="default must be one of"):
        allocator.arrange_from_environment("always", {})


def test_the_command_line_rejects_a_bad_setting_before_training(monkeypatch, capsys):
    from continuous_gnn.cli import main

    monkeypatch.setenv("CONTINUOUS_GNN_ALLOCATOR", "fast")
    assert main(["train", "--dataset", "texas"]) == 2
    assert "CONTINUOUS_GNN_ALLOCATOR='fast'" in capsys.readouterr().err


def test_records_say_which_allocator_ran():
    from continuous_gnn.training.records import environment

    assert environment()["machine"]["allocator"] == allocator.current_allocator()
