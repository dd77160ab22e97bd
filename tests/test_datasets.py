"""Tests for continuous_gnn.data (dataset loading, preprocessing, caching, root resolution).

Tests on real data use the ``data_root`` and ``data_cache`` fixtures from
``conftest.py``: the root is ``$CONTINUOUS_GNN_DATA`` or ``../shared/data``
next to the repository; when it is missing they are skipped, or fail when
``CI=true``.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.transforms import NormalizeFeatures

from continuous_gnn.data import (
    DATASETS,
    NUM_SPLITS,
    DatasetUnavailableError,
    NodeDataset,
    default_cache_dir,
    development_split,
    load_dataset,
    raw_files,
    resolve_data_root,
)
from continuous_gnn.data import registry as registry_module
from continuous_gnn.data.registry import _lookup

# name: (nodes, undirected edges after preprocessing, features, classes, splits,
#        split-0 sizes (train, val, test), README edge count, README count is
#        "directed" as loaded (with loops) or already "undirected").
EXPECTED = {
    "cora": (2708, 10556, 1433, 7, 10, (1192, 796, 497), 10556, "undirected"),
    "citeseer": (3327, 9104, 3703, 6, 10, (1596, 1065, 666), 9104, "undirected"),
    "cora-public": (2708, 10556, 1433, 7, 1, (140, 500, 1000), 10556, "undirected"),
    "citeseer-public": (3327, 9104, 3703, 6, 1, (120, 500, 1000), 9104, "undirected"),
    # GRAND's appendix lists these graphs: Cora 2485 nodes and 5069 edges, CiteSeer 2120 and 3679.
    "cora-lcc": (2485, 10138, 1433, 7, 1, (140, 1360, 985), 10138, "undirected"),
    "citeseer-lcc": (2120, 7358, 3703, 6, 1, (120, 1380, 620), 7358, "undirected"),
    "cora-lcc-random": (2485, 10138, 1433, 7, 20, (140, 1360, 985), 10138, "undirected"),
    "citeseer-lcc-random": (2120, 7358, 3703, 6, 20, (120, 1380, 620), 7358, "undirected"),
    "texas": (183, 558, 1703, 5, 10, (87, 59, 37), 325, "directed"),
    "wisconsin": (251, 900, 1703, 5, 10, (120, 80, 51), 515, "directed"),
    "cornell": (183, 554, 1703, 5, 10, (87, 59, 37), 298, "directed"),
    "film": (7600, 53318, 932, 5, 10, (3648, 2432, 1520), 30019, "directed"),
    "chameleon": (2277, 62742, 2325, 5, 10, (1092, 729, 456), 36101, "directed"),
    "squirrel": (5201, 396706, 2089, 5, 10, (2496, 1664, 1041), 217073, "directed"),
    "chameleon-filtered": (890, 17708, 2325, 5, 10, (409, 287, 194), 17708, "undirected"),
    "squirrel-filtered": (2223, 93996, 2089, 5, 10, (1053, 718, 452), 93996, "undirected"),
    "minesweeper": (10000, 78804, 7, 2, 10, (5000, 2500, 2500), 78804, "undirected"),
    "tolokers": (11758, 1038000, 10, 2, 10, (5879, 2939, 2940), 1038000, "undirected"),
}
ROC_AUC = {"minesweeper", "tolokers"}
HOMOPHILOUS = {"cora", "citeseer", "cora-public", "citeseer-public", "cora-lcc", "citeseer-lcc", "cora-lcc-random",
               "citeseer-lcc-random"}


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _load(name: str, root: Path, cache: Path, **kwargs: object) -> NodeDataset:
    """Load a dataset that the shared data is expected to hold."""
    try:
        return load_dataset(name, root, cache_dir=cache, **kwargs)
    except DatasetUnavailableError as err:
        _skip_or_fail(f"{name} not available: {err}")
        raise  # unreachable; keeps type checkers happy


def _snapshot(root: Path) -> list[tuple[str, int, int]]:
    """Every path under root with its size and mtime."""
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    )


# ----------------------------------------------------------------------------
# Root resolution (pure functions, no data needed)
# ----------------------------------------------------------------------------


def test_resolve_data_root_precedence() -> None:
    env = {"CONTINUOUS_GNN_DATA": "/from/env", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}
    assert resolve_data_root("/explicit", env) == Path("/explicit")
    assert resolve_data_root(Path("/explicit"), env) == Path("/explicit")
    assert resolve_data_root(None, env) == Path("/from/env")
    assert resolve_data_root("", env) == Path("/from/env")  # empty flag counts as unset
    del env["CONTINUOUS_GNN_DATA"]
    assert resolve_data_root(None, env) == Path("/xdg/continuous_gnn/data")
    del env["XDG_CACHE_HOME"]
    assert resolve_data_root(None, env) == Path("/home/u/.cache/continuous_gnn/data")


def test_resolve_data_root_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    home = {"HOME": "/home/u"}
    assert resolve_data_root("~/data", home) == Path("/home/u/data")
    assert resolve_data_root(None, {**home, "CONTINUOUS_GNN_DATA": ""}) == Path(
        "/home/u/.cache/continuous_gnn/data"
    )
    # XDG says relative XDG_CACHE_HOME values are ignored.
    assert resolve_data_root(None, {**home, "XDG_CACHE_HOME": "rel"}) == Path(
        "/home/u/.cache/continuous_gnn/data"
    )
    # The library must read only the mapping it is given, never os.environ.
    monkeypatch.setenv("CONTINUOUS_GNN_DATA", "/must/not/be/used")
    assert resolve_data_root(None, home) == Path("/home/u/.cache/continuous_gnn/data")


def test_resolve_data_root_type_errors() -> None:
    with pytest.raises(TypeError, match="explicit"):
        resolve_data_root(3, {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="environ"):
        resolve_data_root(None, None)  # type: ignore[arg-type]


def test_default_cache_dir() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/continuous_gnn/processed")
    assert default_cache_dir({"HOME": "/home/u"}) == Path("/home/u/.cache/continuous_gnn/processed")
    with pytest.raises(TypeError):
        default_cache_dir([])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------
# Argument checking and error messages (no data needed)
# ----------------------------------------------------------------------------


def test_registry_names() -> None:
    assert set(DATASETS) == set(EXPECTED) | {"pubmed", "pubmed-public"}
    assert all(isinstance(v, str) and v for v in DATASETS.values())


def test_num_splits_are_known_without_loading() -> None:
    assert NUM_SPLITS == {**{name: e[4] for name, e in EXPECTED.items()}, "pubmed": 10, "pubmed-public": 1}


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as info:
        load_dataset("nope", tmp_path, cache_dir=tmp_path)
    for name in ("cora", "texas", "chameleon-filtered", "tolokers", "actor"):
        assert name in str(info.value)
    assert "did you mean" not in str(info.value)
    with pytest.raises(ValueError, match=r"unknown dataset 'Texsa' \(did you mean 'texas'\?\); valid names"):
        load_dataset("Texsa", tmp_path, cache_dir=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": 3, "root": "/r"}, "name"),
        ({"name": "texas", "root": None}, "root"),
        ({"name": "texas", "root": 3}, "root"),
        ({"name": "texas", "root": "/r", "cache_dir": 3}, "cache_dir"),
        ({"name": "texas", "root": "/r", "normalize_features": 1}, "normalize_features"),
        ({"name": "texas", "root": "/r", "normalize_features": "yes"}, "normalize_features"),
    ],
)
def test_bad_argument_types(kwargs: dict, match: str) -> None:
    name, root = kwargs.pop("name"), kwargs.pop("root")
    with pytest.raises(TypeError, match=match):
        load_dataset(name, root, **kwargs)


def test_missing_root_names_root_and_settings(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-root"
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("texas", missing, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert str(missing) in message
    assert "--data-root" in message and "CONTINUOUS_GNN_DATA" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not (tmp_path / "cache").exists()  # nothing processed, nothing created


def test_pubmed_without_allx_fails_fast_with_advice(tmp_path: Path) -> None:
    # A root holding every PubMed file except ind.pubmed.allx (empty stand-ins:
    # they must never be read because the check comes first).
    for sub in ("raw", "geom-gcn/raw"):
        directory = tmp_path / "Planetoid" / "PubMed" / sub
        directory.mkdir(parents=True)
        for suffix in ("x", "tx", "y", "ty", "ally", "graph", "test.index"):
            (directory / f"ind.pubmed.{suffix}").touch()
    for i in range(10):
        (tmp_path / "Planetoid/PubMed/geom-gcn/raw" / f"pubmed_split_0.6_0.2_{i}.npz").touch()

    for name in ("pubmed", "PubMed-public"):
        start = time.perf_counter()
        with pytest.raises(DatasetUnavailableError) as info:
            load_dataset(name, tmp_path, cache_dir=tmp_path / "cache")
        assert time.perf_counter() - start < 5.0
        message = str(info.value)
        assert "ind.pubmed.allx" in message
        assert "ind.pubmed.x," not in message  # only the missing file is named
        assert str(tmp_path / "Planetoid" / "PubMed" / "raw") in message
        assert str(tmp_path / "Planetoid" / "PubMed" / "geom-gcn" / "raw") in message
        assert "kimiyoung/planetoid" in message
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", ["texas", "cora", "chameleon", "film", "minesweeper"])
def test_pyg_classes_cannot_download(tmp_path: Path, name: str) -> None:
    # Second guard: even if our file list missed a file, torch_geometric's
    # download() raises instead of going to the network.
    spec = registry_module._SPECS[name]
    with pytest.raises(DatasetUnavailableError, match="never downloads"):
        spec.build(tmp_path)


# ----------------------------------------------------------------------------
# Real data
# ----------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dataset_contents(name: str, data_root: Path, data_cache: Path) -> None:
    nodes, edges, features, classes, splits, sizes0, readme_edges, kind = EXPECTED[name]
    ds = _load(name, data_root, data_cache)
    d = ds.data

    assert ds.name == name
    assert (ds.num_nodes, ds.num_features, ds.num_classes, ds.num_splits) == (
        nodes, features, classes, splits,
    )
    assert ds.metric == ("roc_auc" if name in ROC_AUC else "accuracy")
    assert ds.homophilous == (name in HOMOPHILOUS)
    assert d.x.dtype == torch.float32 and tuple(d.x.shape) == (nodes, features)
    if ds.features_normalized:  # NormalizeFeatures divides by max(row sum, 1): docs/datasets.md says rows sum to 1
        sums = d.x.sum(dim=1)
        assert bool((torch.isclose(sums, torch.ones_like(sums)) | (sums == 0)).all())
    assert d.y.dtype == torch.long and tuple(d.y.shape) == (nodes,)
    assert int(d.y.min()) == 0 and int(d.y.max()) == classes - 1

    # Undirected, without self-loops or duplicates.
    ei = d.edge_index
    assert ei.dtype == torch.long and tuple(ei.shape) == (2, edges)
    assert not bool((ei[0] == ei[1]).any())
    keys = set((ei[0] * nodes + ei[1]).tolist())
    assert len(keys) == edges
    assert keys == set((ei[1] * nodes + ei[0]).tolist())
    if kind == "undirected":
        assert edges == readme_edges
    else:  # each README edge appears once or twice (both directions), minus a few loops
        assert readme_edges < edges < 2 * readme_edges

    # Masks: [N, splits] bool, pairwise disjoint in every split.
    for key in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(d, key)
        assert mask.dtype == torch.bool and tuple(mask.shape) == (nodes, splits)
    overlap = (
        (d.train_mask & d.val_mask) | (d.train_mask & d.test_mask) | (d.val_mask & d.test_mask)
    )
    assert not bool(overlap.any())
    assert tuple(int(m.sum()) for m in ds.split(0)) == sizes0

    # Row-normalised features by default, except for the Platonov binary datasets.
    row_sums = d.x.sum(dim=1)
    normalized = name not in ROC_AUC
    assert ds.features_normalized == normalized
    if normalized:
        is_one = torch.isclose(row_sums, torch.ones_like(row_sums), atol=1e-5)
        assert bool((is_one | (row_sums == 0)).all())


@pytest.mark.data
def test_cora_geom_gcn_masks_leave_some_nodes_out(data_root: Path, data_cache: Path) -> None:
    # Known quirk of the Geom-GCN Cora splits: 223 of the 2708 nodes are in no
    # split (train/val/test cover 2485 nodes).
    ds = _load("cora", data_root, data_cache)
    covered = ds.data.train_mask | ds.data.val_mask | ds.data.test_mask
    assert int(covered[:, 0].sum()) == 2485


@pytest.mark.data
def test_citeseer_geom_gcn_splits_4_and_5_are_smaller(data_root: Path, data_cache: Path) -> None:
    # Quirk of the Geom-GCN CiteSeer files: splits 4 and 5 cover 2120 nodes only.
    ds = _load("citeseer", data_root, data_cache)
    sizes = [tuple(int(m.sum()) for m in ds.split(i)) for i in range(10)]
    small, full = (1017, 679, 424), (1596, 1065, 666)
    assert sizes == [small if i in (4, 5) else full for i in range(10)]


@pytest.mark.data
def test_cornell_is_not_a_copy_of_texas(data_root: Path, data_cache: Path) -> None:
    # Old Geom-GCN commits shipped Texas's features under Cornell's name.
    cornell = _load("cornell", data_root, data_cache)
    texas = _load("texas", data_root, data_cache)
    assert not torch.equal(cornell.data.x, texas.data.x)


@pytest.mark.data
def test_names_are_case_insensitive_with_aliases(data_root: Path, data_cache: Path) -> None:
    assert _load("TeXaS", data_root, data_cache).name == "texas"
    assert _load("Actor", data_root, data_cache).name == "film"
    assert _load("Chameleon_Filtered", data_root, data_cache).name == "chameleon-filtered"


@pytest.mark.data
def test_normalization_default_and_override(data_root: Path, data_cache: Path) -> None:
    raw = _load("texas", data_root, data_cache, normalize_features=False)
    norm = _load("texas", data_root, data_cache)
    assert not raw.features_normalized and norm.features_normalized
    assert bool((raw.data.x.sum(dim=1) > 1).any())  # raw bag-of-words counts
    # Same result as torch_geometric's transform on this (non-negative) data.
    expected = NormalizeFeatures()(Data(x=raw.data.x.clone())).x
    torch.testing.assert_close(norm.data.x, expected)

    mines = _load("minesweeper", data_root, data_cache, normalize_features=True)
    sums = mines.data.x.sum(dim=1)
    assert bool((torch.isclose(sums, torch.ones_like(sums)) | (sums == 0)).all())


@pytest.mark.data
def test_split_accessor(data_root: Path, data_cache: Path) -> None:
    ds = _load("texas", data_root, data_cache)
    train, val, test = ds.split(np.int64(9))
    assert train.shape == val.shape == test.shape == (ds.num_nodes,)
    train[:] = False  # copies: must not change the dataset
    assert bool(ds.data.train_mask[:, 9].any())
    for bad in (10, -1):
        with pytest.raises(ValueError, match=r"0\.\.9"):
            ds.split(bad)
    for bad in ("0", 1.0, True):
        with pytest.raises(TypeError):
            ds.split(bad)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]


@pytest.mark.data
def test_pubmed_on_shared_root(data_root: Path, data_cache: Path) -> None:
    if (data_root / "Planetoid/PubMed/geom-gcn/raw/ind.pubmed.allx").is_file():
        ds = load_dataset("pubmed", data_root, cache_dir=data_cache)
        assert (ds.num_nodes, ds.num_classes, ds.num_splits) == (19717, 3, 10)
        return
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match=r"ind\.pubmed\.allx"):
        load_dataset("pubmed", data_root, cache_dir=data_cache)
    assert time.perf_counter() - start < 5.0


@pytest.mark.data
def test_repeated_loads_come_from_cache(data_root: Path, data_cache: Path, monkeypatch) -> None:
    from continuous_gnn.data import cache

    _load("squirrel", data_root, data_cache)  # processes on first use in the session
    entries = sorted(p.name for p in data_cache.iterdir())

    def never(*args, **kwargs):
        raise AssertionError("a cached dataset was processed again")

    monkeypatch.setattr(cache, "_process", never)  # counted, not timed: a busy machine cannot fail it
    _load("squirrel", data_root, data_cache)
    assert sorted(p.name for p in data_cache.iterdir()) == entries
    assert not any(name.startswith(".build-") for name in entries)


def test_names_that_are_no_str_are_a_type_error_and_files_are_checked_by_name(tmp_path: Path) -> None:
    from continuous_gnn.data import canonical_name, check_dataset_files

    for bad in (5, None):
        with pytest.raises(TypeError, match="a dataset name must be a str"):
            canonical_name(bad)
    with pytest.raises(DatasetUnavailableError, match="dataset 'texas' is incomplete under data root"):
        check_dataset_files("Texas", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        check_dataset_files("nope", tmp_path)


# ----------------------------------------------------------------------------
# Cache safety (tiny dataset copies)
# ----------------------------------------------------------------------------


@pytest.fixture
def texas_root(data_root: Path, tmp_path: Path) -> Path:
    """A private copy of the Texas raw files (mtimes preserved)."""
    source = data_root / "WebKB" / "texas"
    if not source.is_dir():
        _skip_or_fail(f"Texas raw files not found under {data_root}")
    root = tmp_path / "root"
    shutil.copytree(source, root / "WebKB" / "texas")
    return root


@pytest.mark.data
def test_a_cache_dir_under_home_is_expanded_as_torch_geometric_expands_it(texas_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert load_dataset("texas", texas_root, cache_dir="~/cache").num_nodes == 183
    assert len(list((tmp_path / "home" / "cache").glob("texas-*.pt"))) == 1
    assert not (tmp_path / "~").exists()  # not a folder named ~ in the working directory


def _set_read_only(root: Path, read_only: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555 if read_only else 0o755)
        else:
            path.chmod(0o444 if read_only else 0o644)


@pytest.mark.data
def test_read_only_root_is_never_written(texas_root: Path, tmp_path: Path) -> None:
    _set_read_only(texas_root, True)
    try:
        before = _snapshot(texas_root)
        ds = load_dataset("texas", texas_root, cache_dir=tmp_path / "cache")
        assert ds.num_nodes == 183
        assert _snapshot(texas_root) == before  # also holds when running as root
        assert not any(p.name == "processed" for p in texas_root.rglob("*"))
        assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".pt"]
        assert stat.S_IMODE(texas_root.stat().st_mode) == 0o555
    finally:
        _set_read_only(texas_root, False)


@pytest.mark.data
def test_changed_raw_files_and_corrupt_cache_are_rebuilt(texas_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_dataset("texas", texas_root, cache_dir=cache)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"not a torch file")  # e.g. a damaged disk
    assert load_dataset("texas", texas_root, cache_dir=cache).num_nodes == 183

    # Well-formed but inconsistent tensors (masks of 3 splits, an edge past the last node) are rebuilt too.
    reference = load_dataset("texas", texas_root, cache_dir=cache)
    for damage in (lambda t: t.update(train_mask=t["train_mask"][:, :3]),
                   lambda t: t["edge_index"].__setitem__((0, 0), 10_000),
                   lambda t: t.update(y=t["y"][:-1])):
        tensors = torch.load(entry, weights_only=True)
        damage(tensors)
        torch.save(tensors, entry)
        again = load_dataset("texas", texas_root, cache_dir=cache)
        assert torch.equal(again.data.train_mask, reference.data.train_mask)
        assert torch.equal(again.data.edge_index, reference.data.edge_index)

    edges = texas_root / "WebKB/texas/raw/out1_graph_edges.txt"
    os.utime(edges, ns=(edges.stat().st_atime_ns, edges.stat().st_mtime_ns + 10**9))
    load_dataset("texas", texas_root, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2  # new key for the changed raw file


@pytest.mark.data
def test_failed_processing_leaves_no_cache_entry(
    texas_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_build(stage: Path) -> Data:
        raise RuntimeError("simulated crash while processing")

    spec = registry_module._SPECS["texas"]
    monkeypatch.setitem(registry_module._SPECS, "texas", dataclasses.replace(spec, build=broken_build))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetUnavailableError, match="simulated crash") as info:
        load_dataset("texas", texas_root, cache_dir=cache)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert list(cache.iterdir()) == []  # no partial file, no leftover build folder


@pytest.mark.data
@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt(), MemoryError()],
    ids=["disk-full", "interrupt", "memory"],
)
def test_system_errors_while_processing_are_not_blamed_on_the_files(
    texas_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def broken_build(stage: Path) -> Data:
        raise error

    spec = registry_module._SPECS["texas"]
    monkeypatch.setitem(registry_module._SPECS, "texas", dataclasses.replace(spec, build=broken_build))
    cache = tmp_path / "cache"
    with pytest.raises(type(error)) as info:
        load_dataset("texas", texas_root, cache_dir=cache)
    assert not isinstance(info.value, DatasetUnavailableError)
    assert list(cache.iterdir()) == []


# ----------------------------------------------------------------------------
# Corrupt raw files (tiny dataset copies)
# ----------------------------------------------------------------------------

_TEXAS_RAW = "WebKB/texas/raw"


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _replace_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


# file to damage, how; every one of these went through as a bare numpy, zipfile, PyG or torch error
# (or, for the out-of-range edge, was silently cached).
CORRUPTIONS = {
    "truncated-split": ("texas_split_0.6_0.2_3.npz", lambda p: _truncate(p, 100)),
    "empty-split": ("texas_split_0.6_0.2_3.npz", lambda p: _truncate(p, 0)),
    "truncated-features": ("out1_node_feature_label.txt", lambda p: _truncate(p, p.stat().st_size // 2)),
    "bad-edge-text": ("out1_graph_edges.txt", lambda p: _replace_text(p, "56\t84", "1 x")),
    "edge-out-of-range": ("out1_graph_edges.txt", lambda p: _replace_text(p, "56\t84", "56\t9999")),
    "binary-features": ("out1_node_feature_label.txt", lambda p: p.write_bytes(b"\xff\xfe garbage\n" * 4)),
    # cut at a line break: it parses, into a graph with fewer edges, so only the checksum can tell
    "edges-cut-at-a-line": ("out1_graph_edges.txt",
                            lambda p: p.write_text("".join(p.read_text().splitlines(keepends=True)[:150]))),
}
#: The corruptions that the parse itself catches when no checksum lists the file.
PARSE_FAILURES = sorted(set(CORRUPTIONS) - {"edges-cut-at-a-line"})


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _load_damaged(corruption: str, root: Path, tmp_path: Path):
    """Damage one Texas raw file as ``CORRUPTIONS`` says and load: its path, the cache folder and the error."""
    filename, damage = CORRUPTIONS[corruption]
    _make_writable(root)
    path = root / _TEXAS_RAW / filename
    damage(path)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("texas", root, cache_dir=cache)
    return path, cache, info


@pytest.mark.data
@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_raw_file_off_its_checksum_is_refused_before_it_is_parsed(
    corruption: str, texas_root: Path, data_root: Path, tmp_path: Path
) -> None:
    path, cache, info = _load_damaged(corruption, texas_root, tmp_path)
    assert str(info.value) == (
        f"dataset 'texas': {path} differ(s) from the checksum in the package's continuous_gnn/data/SHA256SUMS: "
        f"truncated, corrupt or another version of the file. Copy it again from {raw_files._source(_lookup('texas'))}"
        ", or delete it and let a command that may download fetch it again.")
    assert list(cache.iterdir()) == []  # nothing half-processed to be reused
    shutil.copy2(data_root / "WebKB" / "texas" / "raw" / path.name, path)
    assert load_dataset("texas", texas_root, cache_dir=cache).num_nodes == 183


@pytest.mark.data
@pytest.mark.parametrize("corruption", PARSE_FAILURES)
def test_corrupt_raw_file_gives_one_clear_error_and_no_cache(
    corruption: str, texas_root: Path, data_root: Path, tmp_path: Path, monkeypatch
) -> None:
    # Files no checksum lists (a dataset added to a root by hand): the parse is what fails.
    monkeypatch.setattr(raw_files, "_known_checksums", dict)
    path, cache, info = _load_damaged(corruption, texas_root, tmp_path)
    message = str(info.value)
    assert "\n" not in message  # the CLI prints it as one line
    assert message.startswith("dataset 'texas': the raw files in ")
    assert str(texas_root / _TEXAS_RAW) in message
    assert f"cd {texas_root} && sha256sum --ignore-missing -c " in message and "continuous_gnn/data/SHA256SUMS" in message
    assert ".build-" not in message  # names the data root, not the private processing copy
    assert info.value.__cause__ is not None
    assert list(cache.iterdir()) == []  # nothing half-processed to be reused

    # Repairing the file is enough: the next load processes it afresh.
    shutil.copy2(data_root / "WebKB" / "texas" / "raw" / path.name, path)
    ds = load_dataset("texas", texas_root, cache_dir=cache)
    assert (ds.num_nodes, ds.num_splits) == (183, 10)
    assert int(ds.data.edge_index.max()) < 183


@pytest.mark.data
def test_corrupt_raw_file_is_named_by_the_checksums(texas_root: Path, tmp_path: Path) -> None:
    _make_writable(texas_root)
    raw = texas_root / _TEXAS_RAW
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {_TEXAS_RAW}/{p.name}" for p in sorted(raw.iterdir())
    ]
    (texas_root / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    _truncate(raw / "texas_split_0.6_0.2_7.npz", 200)
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("texas", texas_root, cache_dir=tmp_path / "cache")
    message = str(info.value)
    # the data root's own list is the one that names it
    assert (f"{raw / 'texas_split_0.6_0.2_7.npz'} differ(s) from the checksum in {texas_root / 'SHA256SUMS'}: "
            "truncated") in message
    assert "texas_split_0.6_0.2_6.npz" not in message and "out1_graph_edges.txt" not in message
    assert "graphdml-uiuc-jlu/geom-gcn" in message and "new_data/texas/" in message


@pytest.mark.data
def test_corrupt_raw_file_is_a_one_line_exit_2_in_the_cli(
    texas_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    _make_writable(texas_root)
    _truncate(texas_root / _TEXAS_RAW / "texas_split_0.6_0.2_0.npz", 100)
    status = main(["train", "--dataset", "texas", "--data-root", str(texas_root),
                   "--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--out", str(tmp_path / "run.json")])
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "dataset 'texas'" in err and "SHA256SUMS" in err and "texas_split_0.6_0.2_0.npz differ(s)" in err
    assert not (tmp_path / "run.json").exists()


# ----------------------------------------------------------------------------
# GRAND's split of the largest connected component
# ----------------------------------------------------------------------------


def _grand_reference_split(y: np.ndarray, seed: int, num_development: int, num_per_class: int):
    """GRAND's ``set_train_val_test_split``, step by step as its code reads, with index lists."""
    rnd_state = np.random.RandomState(seed)
    num_nodes = y.shape[0]
    development_idx = rnd_state.choice(num_nodes, num_development, replace=False)
    test_idx = [i for i in np.arange(num_nodes) if i not in development_idx]
    train_idx = []
    rnd_state = np.random.RandomState(seed)
    for c in range(y.max() + 1):
        class_idx = development_idx[np.where(y[development_idx] == c)[0]]
        train_idx.extend(rnd_state.choice(class_idx, num_per_class, replace=False))
    val_idx = [i for i in development_idx if i not in train_idx]
    return sorted(train_idx), sorted(val_idx), sorted(test_idx)


@pytest.mark.parametrize(("seed", "num_development", "num_per_class"), [(12345, 150, 5), (7, 200, 3)])
def test_development_split_draws_the_nodes_of_grands_code(seed: int, num_development: int,
                                                           num_per_class: int) -> None:
    y = np.random.default_rng(seed).integers(0, 4, size=300)
    masks = development_split(torch.from_numpy(y), seed=seed, num_development=num_development,
                              num_per_class=num_per_class)
    for mask, reference in zip(masks, _grand_reference_split(y, seed, num_development, num_per_class)):
        assert mask.nonzero().view(-1).tolist() == reference
    train, val, test = masks
    assert int(train.sum()) == 4 * num_per_class and int(val.sum()) == num_development - 4 * num_per_class
    assert bool((train.int() + val.int() + test.int() == 1).all())


@pytest.mark.parametrize(("y", "kwargs", "error", "match"), [
    (torch.zeros(5), {}, TypeError, "integer tensor"),
    (torch.zeros(2, 5, dtype=torch.long), {}, ValueError, "1-D"),
    (torch.zeros(5, dtype=torch.long), {"num_development": 6}, ValueError, "num_development must be in 1..5"),
    (torch.zeros(5, dtype=torch.long), {"num_development": 5, "num_per_class": 0}, ValueError, "num_per_class"),
    (torch.tensor([0, 0, 0, 1]), {"num_development": 4, "num_per_class": 2}, ValueError, "class 1 has 1 nodes"),
])
def test_development_split_rejects_bad_input(y: torch.Tensor, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        development_split(y, **kwargs)


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_lcc_datasets_are_the_largest_component_in_id_order(name: str, data_root: Path, data_cache: Path) -> None:
    import scipy.sparse.csgraph
    from torch_geometric.utils import to_scipy_sparse_matrix

    public = _load(f"{name}-public", data_root, data_cache).data
    lcc = _load(f"{name}-lcc", data_root, data_cache)
    _, component = scipy.sparse.csgraph.connected_components(to_scipy_sparse_matrix(public.edge_index))
    largest = torch.from_numpy(np.flatnonzero(component == np.bincount(component).argmax()))
    assert torch.equal(lcc.data.x, public.x[largest]) and torch.equal(lcc.data.y, public.y[largest])
    relabel = torch.full((public.num_nodes,), -1, dtype=torch.long)
    relabel[largest] = torch.arange(largest.numel())
    inside = public.edge_index[:, (relabel[public.edge_index] >= 0).all(dim=0)]
    assert set(map(tuple, relabel[inside].t().tolist())) == set(map(tuple, lcc.data.edge_index.t().tolist()))
    assert all(torch.equal(mask[:, 0], expected)
               for mask, expected in zip((lcc.data.train_mask, lcc.data.val_mask, lcc.data.test_mask),
                                         development_split(lcc.data.y)))


@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_random_lcc_datasets_hold_one_split_of_grands_kind_per_seed(name: str, data_root: Path,
                                                                     data_cache: Path) -> None:
    lcc = _load(f"{name}-lcc", data_root, data_cache).data
    random = _load(f"{name}-lcc-random", data_root, data_cache)
    assert torch.equal(random.data.x, lcc.x) and torch.equal(random.data.edge_index, lcc.edge_index)
    assert random.num_splits == len(registry_module.RANDOM_LCC_SEEDS) == 20
    for split, seed in enumerate(registry_module.RANDOM_LCC_SEEDS):
        assert all(torch.equal(mask, expected)
                   for mask, expected in zip(random.split(split), development_split(lcc.y, seed=seed)))
    assert len({tuple(random.split(split)[0].nonzero().view(-1).tolist()) for split in range(20)}) == 20
