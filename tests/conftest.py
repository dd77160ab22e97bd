"""Shared pytest fixtures."""

from __future__ import annotations

import os
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
