"""Shared pytest fixtures."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

# --- benchmark data (continuous_gnn.data) -----------------------------------


def find_data_root() -> Path:
    """Raw benchmark data: $CONTINUOUS_GNN_DATA, else ../shared/data next to the repository."""
    from_env = os.environ.get("CONTINUOUS_GNN_DATA")
    return Path(from_env) if from_env else Path(__file__).resolve().parents[2] / "shared" / "data"


def skip_or_fail(reason: str) -> None:
    """Missing data is an error on CI (CI=true) and a skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Read-only raw data root; skips (fails on CI) when it is absent."""
    root = find_data_root()
    if not root.is_dir():
        skip_or_fail(f"benchmark data not found at {root}; set CONTINUOUS_GNN_DATA")
    return root


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Processing cache shared by all tests of the session."""
    return tmp_path_factory.mktemp("continuous_gnn_cache")


# --- no network ---------------------------------------------------------------

# The command line downloads missing benchmark data unless told not to; tests never do (test_download.py
# serves its files from loopback and unsets this where it tests downloading). Subprocesses inherit it.
os.environ["CONTINUOUS_GNN_NO_DOWNLOAD"] = "1"

# The training commands keep freed memory (mallopt) for the rest of their process; tests call them in the test
# process, so without this its allocator would change with the order of the tests. test_allocator.py tests the
# setting in subprocesses of its own.
os.environ["CONTINUOUS_GNN_ALLOCATOR"] = "system"


class NetworkAccessError(AssertionError):
    """A test tried to reach the network (an AssertionError, so that no ``except OSError`` hides it)."""


def _local(host: object) -> bool:
    if host in (None, "", "localhost", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False  # a name other than this machine's would need a DNS query
    return address.is_loopback or address.is_unspecified


@pytest.fixture(scope="session", autouse=True)
def _no_network():
    """Refuse connections and name lookups beyond this machine for the whole test session."""
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guard(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            raise NetworkAccessError(f"tests must not use the network: connection to {address!r} refused")

    def guarded_connect(sock, address):
        guard(sock, address)
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        guard(sock, address)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _local(host.decode() if isinstance(host, bytes) else host):
            raise NetworkAccessError(f"tests must not use the network: name lookup of {host!r} refused")
        return getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", guarded_connect)
        patch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
        patch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
        yield
