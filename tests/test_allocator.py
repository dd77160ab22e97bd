"""Keeping freed memory: applied by mallopt on glibc, refused with a clear error for a bad setting, never over
the user's own allocator variables, and recorded in every run record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from continuous_gnn import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
# Variables that choose the allocator, left out of the probes' environments so that the caller's do not leak in.
_OURS = (*allocator.ALLOCATOR_VARIABLES, allocator.ALLOCATOR_ENV, allocator.HUGE_PAGES_ENV)
_KERNEL_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
KERNEL_OFFERS_HUGE_PAGES = _KERNEL_THP.is_file() and "[never]" not in _KERNEL_THP.read_text()

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

# The same, then what release_freed_memory hands back of what was kept.
_RELEASE = _PROBE.replace(
    'print(json.dumps({"said": said, "released": before - resident()}))',
    "kept = before - resident()\n"
    "from continuous_gnn.allocator import release_freed_memory\n"
    "assert release_freed_memory()\n"
    'print(json.dumps({"said": said, "released": kept, "after_release": before - resident()}))')


def _start(script: str, argument: str, **env: str) -> subprocess.Popen:
    """``script`` run with ``argument`` in a fresh interpreter whose allocator variables are ``env``'s alone."""
    environ = {k: v for k, v in os.environ.items() if k not in _OURS}
    return subprocess.Popen([sys.executable, "-c", script, argument], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**environ, **env})


def _printed(*processes: subprocess.Popen) -> list:
    """The JSON that each started script printed. The scripts run side by side: each spends most of its time
    importing torch and torch_geometric."""
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr
        results.append(json.loads(stdout))
    return results


@pytest.fixture(scope="module")
def probed() -> dict:
    """What each probe of this module printed, by name: all start at once, since each spends seconds importing
    torch and torch_geometric in its fresh interpreter."""
    probes = {"keep": (_RELEASE, "keep", {}),
              "keep, overridden": (_PROBE, "keep", {"CONTINUOUS_GNN_ALLOCATOR": "system"}),
              "keep, user's variable": (_PROBE, "keep", {"MALLOC_ARENA_MAX": "2"})}
    return _run_probes(probes)


def _run_probes(probes: dict) -> dict:
    started = [_start(script, argument, **env) for script, argument, env in probes.values()]
    return dict(zip(probes, _printed(*started)))


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_kept_memory_stays_resident_after_a_large_tensor_is_freed(probed):
    kept, overridden = probed["keep"], probed["keep, overridden"]
    assert kept["said"] == "glibc, freed memory kept (mallopt)" and kept["released"] < 20e6
    # CONTINUOUS_GNN_ALLOCATOR=system over a command's "keep": glibc's default, which unmaps the freed tensor.
    assert overridden["said"].startswith("system default") and overridden["released"] > 200e6


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
def test_kept_memory_is_released_on_request(probed):
    kept = probed["keep"]
    assert kept["released"] < 20e6 and kept["after_release"] > 200e6  # kept after the free, handed back on request


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_users_allocator_variables_win(probed):
    tuned = probed["keep, user's variable"]
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


_HUGE = """
import json, os, sys
if sys.argv[1] == "late":  # importing the package allocates tensors, so PyTorch has read its variable already
    import continuous_gnn
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
from continuous_gnn.allocator import arrange_from_environment, huge_pages_in_effect
print(json.dumps({"said": arrange_from_environment("keep"), "huge": huge_pages_in_effect()}))
"""


@pytest.mark.slow  # four more interpreters importing torch and torch_geometric: 15 s or more on two cores
@pytest.mark.skipif(not (GLIBC and KERNEL_OFFERS_HUGE_PAGES), reason="needs Linux with transparent huge pages")
def test_huge_pages_apply_when_set_before_pytorch_starts_and_records_say_so():
    probed = _run_probes({"huge": (_HUGE, "start", {}), "huge off": (_HUGE, "start", {"THP_MEM_ALLOC_ENABLE": "0"}),
                          "huge on": (_HUGE, "start", {"THP_MEM_ALLOC_ENABLE": "1"}),
                          "huge late": (_HUGE, "late", {})})
    plain, off, started, late = probed["huge"], probed["huge off"], probed["huge on"], probed["huge late"]
    assert plain == {"said": "glibc, freed memory kept (mallopt)", "huge": False}
    assert off["huge"] is False
    assert started == {"said": "glibc, freed memory kept (mallopt), huge pages for tensors of 2 MiB and more",
                       "huge": True}
    assert late["huge"] is False and "THP_MEM_ALLOC_ENABLE=1 without effect" in late["said"]


def test_the_huge_page_advice_is_read_from_the_mapping_that_holds_the_address():
    smaps = ("00400000-00500000 r-xp 00000000 08:01 1 /bin/python\n"
             "Size:               1024 kB\n"
             "VmFlags: rd ex mr mw me\n"
             "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \n"
             "Size:               4096 kB\n"
             "AnonHugePages:      4096 kB\n"
             "VmFlags: rd wr mr mw me ac hg\n"
             "7f0000400000-7f0000600000 rw-p 00000000 00:00 0 \n"
             "VmFlags: rd wr mr mw me ac\n")
    assert allocator._advised_huge(0x7F0000200000, smaps)
    assert not allocator._advised_huge(0x7F0000400000, smaps)  # the next mapping, not advised
    assert not allocator._advised_huge(0x450000, smaps)
    assert not allocator._advised_huge(0x10, smaps)  # in no mapping
