"""Tests for continuous_gnn.data.download and the command line's download flags.

Every download here goes to an HTTP server on loopback (``http.server`` in a thread, port 0) that serves WebKB
texas from the shared data root, laid out as upstream (``new_data/texas/``, ``splits/``); ``WebKB.url`` is pointed
at it, as torch_geometric lets a mirror be set. The network guard in ``conftest.py`` refuses any other address.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch_geometric.datasets import WebKB

from continuous_gnn.data import (
    DatasetUnavailableError,
    Download,
    DownloadError,
    DownloadProgress,
    download_dataset,
    load_dataset,
)
from continuous_gnn.data import download as download_module
from continuous_gnn.data import registry as registry_module

TEXAS_RAW = "WebKB/texas/raw"
TEXAS_TEXTS = ("out1_node_feature_label.txt", "out1_graph_edges.txt")
TEXAS_SPLITS = tuple(f"texas_split_0.6_0.2_{i}.npz" for i in range(10))


@dataclass
class Server:
    """A loopback HTTP server over ``folder``; ``requests`` logs the paths asked for.

    ``short`` maps a served path to the number of bytes actually sent; with ``honest_length`` the
    Content-Length says so, otherwise it announces the whole file and the connection closes early.
    """

    folder: Path
    url: str = ""
    requests: list[str] = field(default_factory=list)
    short: dict[str, int] = field(default_factory=dict)
    honest_length: bool = True


def _handler(server: Server) -> type:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(server.folder), **kwargs)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server.requests.append(self.path)
            if self.path not in server.short:
                return super().do_GET()
            body = (server.folder / self.path.lstrip("/")).read_bytes()
            sent = body[: server.short[self.path]]
            self.send_response(200)
            self.send_header("Content-Length", str(len(sent) if server.honest_length else len(body)))
            self.end_headers()
            self.wfile.write(sent)
            self.close_connection = True

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    return Handler


@pytest.fixture(scope="module")
def texas_upstream(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Texas's raw files laid out as in the Geom-GCN repository."""
    folder = tmp_path_factory.mktemp("upstream")
    raw = data_root / TEXAS_RAW
    if not all((raw / name).is_file() for name in TEXAS_TEXTS + TEXAS_SPLITS):
        pytest.skip(f"texas raw files not found in {raw}")
    (folder / "new_data" / "texas").mkdir(parents=True)
    (folder / "splits").mkdir()
    for name in TEXAS_TEXTS:
        shutil.copyfile(raw / name, folder / "new_data" / "texas" / name)
    for name in TEXAS_SPLITS:
        shutil.copyfile(raw / name, folder / "splits" / name)
    return folder


@pytest.fixture
def server(texas_upstream: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A server over the texas files, with ``WebKB.url`` pointing at it."""
    state = Server(texas_upstream)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(WebKB, "url", state.url)
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ---------------------------------------------------------------------------------------------- successful downloads


@pytest.mark.data
def test_download_into_empty_root_then_load_equals_shared_data(
    server: Server, tmp_path: Path, data_root: Path, data_cache: Path
) -> None:
    root = tmp_path / "data"  # does not exist yet
    steps: list[DownloadProgress] = []
    written = download_dataset("texas", root, Download(timeout=10, progress=steps.append))

    names = TEXAS_TEXTS + TEXAS_SPLITS
    assert sorted(written) == sorted(root / TEXAS_RAW / name for name in names)
    assert _tree(root) == sorted(["WebKB", "WebKB/texas", TEXAS_RAW, *(f"{TEXAS_RAW}/{n}" for n in names)])
    for name in names:  # byte for byte the shared files
        assert (root / TEXAS_RAW / name).read_bytes() == (data_root / TEXAS_RAW / name).read_bytes()
    assert sorted(server.requests) == sorted(
        [f"/new_data/texas/{n}" for n in TEXAS_TEXTS] + [f"/splits/{n}" for n in TEXAS_SPLITS]
    )

    # Progress: each file starts at 0 bytes and ends at its announced size, in order.
    assert {s.count for s in steps} == {len(names)}
    assert [s.index for s in steps] == sorted(s.index for s in steps)
    for index in range(len(names)):
        mine = [s for s in steps if s.index == index]
        size = (root / mine[0].path).stat().st_size
        # the first step comes before the server answers (no length yet), the others carry the announced one
        assert mine[0].received == 0 and mine[0].total is None and mine[-1].received == size
        assert {s.total for s in mine[1:]} == {size}
        assert [s.received for s in mine] == sorted(s.received for s in mine)
        assert mine[0].url == f"{server.url}/{'splits' if mine[0].path.endswith('.npz') else 'new_data/texas'}/" \
            + mine[0].path.rpartition("/")[2]

    ours = load_dataset("texas", root, cache_dir=tmp_path / "cache")
    shared = load_dataset("texas", data_root, cache_dir=data_cache)
    for key in ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(ours.data, key), getattr(shared.data, key)), key
    assert (ours.num_classes, ours.num_splits) == (shared.num_classes, shared.num_splits)

    # Complete now: a second call neither writes nor asks the server anything.
    before = len(server.requests)
    assert download_dataset("texas", root, Download(timeout=10)) == ()
    assert len(server.requests) == before


@pytest.mark.data
def test_load_dataset_downloads_only_when_given_a_download(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DatasetUnavailableError, match="Nothing is downloaded automatically") as info:
        load_dataset("texas", root, cache_dir=tmp_path / "cache")
    assert not isinstance(info.value, DownloadError)
    assert server.requests == [] and _tree(root) == []

    ds = load_dataset("texas", root, cache_dir=tmp_path / "cache", download=Download(timeout=10))
    assert (ds.num_nodes, ds.num_splits) == (183, 10)
    assert len(server.requests) == 12


@pytest.mark.data
def test_only_missing_files_are_fetched_into_an_existing_folder(
    server: Server, tmp_path: Path, data_root: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(data_root / TEXAS_RAW, root / TEXAS_RAW)
    (root / TEXAS_RAW / "texas_split_0.6_0.2_3.npz").unlink()
    written = download_dataset("texas", root, Download(timeout=10))
    assert written == (root / TEXAS_RAW / "texas_split_0.6_0.2_3.npz",)
    assert server.requests == ["/splits/texas_split_0.6_0.2_3.npz"]
    assert sorted(p.name for p in (root / TEXAS_RAW).iterdir()) == sorted(TEXAS_TEXTS + TEXAS_SPLITS)
    assert _tree(root) == sorted(["WebKB", "WebKB/texas", TEXAS_RAW, *(f"{TEXAS_RAW}/{n}" for n in TEXAS_TEXTS + TEXAS_SPLITS)])


@pytest.mark.data
def test_stale_temporary_folders_are_removed_after_a_day(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "data"
    stale, fresh = root / ".download-texas-stale", root / ".download-texas-fresh"
    stale.mkdir(parents=True)
    fresh.mkdir()
    old = time.time() - 25 * 3600
    os.utime(stale, (old, old))
    download_dataset("texas", root, Download(timeout=10))
    assert not stale.exists() and fresh.is_dir()


# ------------------------------------------------------------------------------------------------- failed downloads


def _assert_clear_failure(err: DownloadError, root: Path, url: str) -> None:
    message = str(err)
    assert "\n" not in message  # the command line prints it on one line
    assert message.startswith("could not download dataset 'texas': ")
    assert url in message
    assert f"Nothing was written to {root}." in message
    # The files, where they come from and the folder they go into, for a copy by hand.
    assert f"into {root / TEXAS_RAW}{os.sep}" in message
    assert "out1_graph_edges.txt" in message and "texas_split_0.6_0.2_9.npz" in message
    assert "/splits/ into" in message and "/new_data/texas/ into" in message


@pytest.mark.parametrize("root_exists", [False, True])
def test_a_server_that_never_answers_fails_within_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_exists: bool
) -> None:
    # The kernel completes the connection on the listening socket; nobody ever reads or answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setattr(WebKB, "url", url)
    root = tmp_path / "deep" / "data"  # the failed download must remove both folders it created
    if root_exists:
        root.mkdir(parents=True)
    steps: list[DownloadProgress] = []
    try:
        start = time.perf_counter()
        with pytest.raises(DownloadError) as info:
            download_dataset("texas", root, Download(timeout=2, progress=steps.append))
        elapsed = time.perf_counter() - start
    finally:
        silent.close()
    assert 1.9 < elapsed < 10
    assert "no answer within 2 s" in str(info.value)
    # the file being waited on was reported before the wait, not only once an answer came
    assert [(step.received, step.total) for step in steps] == [(0, None)]
    assert steps[0].url == f"{url}/new_data/texas/out1_node_feature_label.txt"
    _assert_clear_failure(info.value, root, f"{url}/new_data/texas/out1_node_feature_label.txt")
    assert isinstance(info.value, FileNotFoundError)  # the command line's exit status 2
    assert _tree(root) == [] and root.exists() == root_exists
    assert (tmp_path / "deep").exists() == root_exists


def test_a_refused_connection_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    monkeypatch.setattr(WebKB, "url", url)
    start = time.perf_counter()
    with pytest.raises(DownloadError, match=r"could not connect \(.*[Rr]efused") as info:
        download_dataset("texas", tmp_path, Download(timeout=30))
    assert time.perf_counter() - start < 5
    _assert_clear_failure(info.value, tmp_path, url)
    assert _tree(tmp_path) == []


@pytest.mark.data
@pytest.mark.parametrize("honest_length", [True, False])
def test_a_truncated_file_is_refused_and_nothing_is_written(
    server: Server, tmp_path: Path, honest_length: bool
) -> None:
    # The eighth file of twelve: seven complete files were fetched before it, none may stay.
    path = "/splits/texas_split_0.6_0.2_5.npz"
    size = (server.folder / path.lstrip("/")).stat().st_size
    server.short[path] = size // 2
    server.honest_length = honest_length
    with pytest.raises(DownloadError) as info:
        download_dataset("texas", tmp_path, Download(timeout=10))
    message = str(info.value)
    if honest_length:  # the length is as announced: the checksum catches it
        assert f"the file received ({size // 2} bytes) does not match its SHA-256" in message
    else:
        assert f"the connection closed after {size // 2} of the {size} bytes announced" in message
    _assert_clear_failure(info.value, tmp_path, server.url + path)
    assert _tree(tmp_path) == []
    assert len(server.requests) == 8  # it stopped at the bad file


@pytest.mark.data
def test_a_missing_file_upstream_names_the_http_status(server: Server, tmp_path: Path, texas_upstream: Path) -> None:
    moved = texas_upstream / "splits" / "texas_split_0.6_0.2_9.npz"
    aside = texas_upstream / "aside.npz"
    moved.rename(aside)
    try:
        with pytest.raises(DownloadError, match="the server answered HTTP 404") as info:
            download_dataset("texas", tmp_path / "data", Download(timeout=10))
    finally:
        aside.rename(moved)
    _assert_clear_failure(info.value, tmp_path / "data", f"{server.url}/splits/texas_split_0.6_0.2_9.npz")
    assert not (tmp_path / "data").exists()


@pytest.mark.data
def test_an_unwritable_root_fails_before_any_request(server: Server, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "data"
    with pytest.raises(DownloadError, match="the data root cannot be written") as info:
        download_dataset("texas", root, Download(timeout=10))
    assert f"into {root / TEXAS_RAW}{os.sep}" in str(info.value)
    assert server.requests == []
    # the root itself a file: said so, without advice to copy files into it
    with pytest.raises(DatasetUnavailableError, match=f"data root '{blocker}' does not exist or is not a directory") \
            as info:
        download_dataset("texas", blocker, Download(timeout=10))
    assert "Copy" not in str(info.value) and server.requests == []


def test_a_complete_root_is_never_touched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in files: nothing is read or fetched when every raw file is there.
    spec = registry_module._SPECS["texas"]
    for rel in spec.files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()

    def refuse(*args, **kwargs):
        raise AssertionError("no request may be made")

    monkeypatch.setattr(download_module.urllib.request, "urlopen", refuse)
    assert download_dataset("texas", tmp_path) == ()
    assert download_dataset("texas", tmp_path, Download(timeout=1)) == ()


# ----------------------------------------------------------------------------------------------- settings and tables


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": 0}, ValueError, "positive, finite"),
        ({"timeout": -1.0}, ValueError, "positive, finite"),
        ({"timeout": float("inf")}, ValueError, "positive, finite"),
        ({"timeout": float("nan")}, ValueError, "positive, finite"),
        ({"timeout": "30"}, TypeError, "number of seconds"),
        ({"timeout": True}, TypeError, "number of seconds"),
        ({"progress": 3}, TypeError, "callable"),
    ],
)
def test_bad_download_settings(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Download(**kwargs)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="download must be a Download"):
        download_dataset("texas", tmp_path, 30)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="download must be a Download or None"):
        load_dataset("texas", tmp_path, download=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="root must be"):
        download_dataset("texas", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown dataset"):
        download_dataset("no-such-set", tmp_path)
    assert _tree(tmp_path) == []


def test_every_raw_file_but_pubmed_allx_has_a_shipped_checksum() -> None:
    known = download_module._known_checksums()
    files = {rel for spec in registry_module._SPECS.values() for rel in spec.files}
    assert files - known.keys() == {
        "Planetoid/PubMed/raw/ind.pubmed.allx", "Planetoid/PubMed/geom-gcn/raw/ind.pubmed.allx"
    }
    assert known.keys() <= files
    assert all(len(d) == 64 and set(d) <= set("0123456789abcdef") for d in known.values())


@pytest.mark.data
def test_shipped_checksums_are_those_of_the_shared_data(data_root: Path) -> None:
    listed = data_root / "SHA256SUMS"
    if not listed.is_file():
        pytest.skip(f"{listed} not found")
    shared = {}
    for line in listed.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        shared[rel] = digest
    for rel, digest in download_module._known_checksums().items():
        assert shared[rel] == digest, rel
    # And the files there match (the small ones: reading all takes seconds).
    for rel in registry_module._SPECS["texas"].files:
        assert hashlib.sha256((data_root / rel).read_bytes()).hexdigest() == shared[rel]


def _pyg_requests(spec_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, Path]]:
    """(URL, destination) of every file the torch_geometric class's own download() asks for."""
    import torch_geometric.datasets as pyg
    from torch_geometric.io import fs

    asked: set[tuple[str, Path]] = set()

    def record(url: str, folder: str, *args, **kwargs) -> None:
        asked.add((url, Path(folder) / url.rpartition("/")[2]))

    for module in ("webkb", "actor", "wikipedia_network", "heterophilous_graph_dataset"):
        monkeypatch.setattr(f"torch_geometric.datasets.{module}.download_url", record)
    monkeypatch.setattr(fs, "cp", record)
    table = {
        "cora": (pyg.Planetoid, "Planetoid", {"name": "Cora", "split": "geom-gcn"}),
        "cora-public": (pyg.Planetoid, "Planetoid", {"name": "Cora", "split": "public"}),
        "pubmed": (pyg.Planetoid, "Planetoid", {"name": "PubMed", "split": "geom-gcn"}),
        "texas": (pyg.WebKB, "WebKB", {"name": "texas"}),
        "cornell": (pyg.WebKB, "WebKB", {"name": "cornell"}),
        "film": (pyg.Actor, "Actor", {}),
        "chameleon": (pyg.WikipediaNetwork, "WikipediaNetwork", {"name": "chameleon", "geom_gcn_preprocess": True}),
        "tolokers": (pyg.HeterophilousGraphDataset, "HeterophilousGraphDataset", {"name": "tolokers"}),
    }
    cls, folder, attributes = table[spec_name]
    instance = cls.__new__(cls)  # no __init__: it would download and process
    instance.root = str(tmp_path / folder)
    for key, value in attributes.items():
        setattr(instance, key, value)
    instance.download()
    return asked


@pytest.mark.parametrize("name", ["cora", "cora-public", "pubmed", "texas", "cornell", "film", "chameleon", "tolokers"])
def test_urls_are_those_of_the_torch_geometric_classes(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registry_module._SPECS[name]
    ours = {(spec.remote(rel), tmp_path / rel) for rel in spec.files}
    assert ours == _pyg_requests(name, tmp_path, monkeypatch)


def test_urls_follow_the_class_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_geometric.datasets as pyg

    for cls, attribute in ((pyg.Planetoid, "url"), (pyg.Planetoid, "geom_gcn_url"), (pyg.WebKB, "url"),
                           (pyg.Actor, "url"), (pyg.WikipediaNetwork, "processed_url"),
                           (pyg.HeterophilousGraphDataset, "url")):
        monkeypatch.setattr(cls, attribute, f"https://mirror.example/{cls.__name__}/{attribute}")
    specs = registry_module._SPECS
    assert specs["cora"].remote("Planetoid/Cora/geom-gcn/raw/ind.cora.x") == "https://mirror.example/Planetoid/url/ind.cora.x"
    assert specs["cora"].remote("Planetoid/Cora/geom-gcn/raw/cora_split_0.6_0.2_0.npz") == \
        "https://mirror.example/Planetoid/geom_gcn_url/splits/cora_split_0.6_0.2_0.npz"
    assert specs["film"].remote("Actor/raw/out1_graph_edges.txt") == \
        "https://mirror.example/Actor/url/new_data/film/out1_graph_edges.txt"
    assert specs["squirrel"].remote("WikipediaNetwork/squirrel/geom_gcn/raw/squirrel_split_0.6_0.2_1.npz") == \
        "https://mirror.example/WikipediaNetwork/processed_url/splits/squirrel_split_0.6_0.2_1.npz"
    # The filtered Wikipedia graphs lie in the same folder as the heterophilous benchmarks.
    assert specs["chameleon-filtered"].remote("HeterophilousFiltered/chameleon_filtered.npz") == \
        "https://mirror.example/HeterophilousGraphDataset/url/chameleon_filtered.npz"


# --------------------------------------------------------------------------------------------------- the command line


def _train(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "texas", "--data-root", str(root), "--cache-dir", str(tmp_path / "cache"),
            "--epochs", "1", "--splits", "0", "--out", str(tmp_path / "run.json"), *extra]


def _offline_message(root: Path) -> str:
    return f"dataset 'texas' is incomplete under data root {str(root)!r}: 12 raw file(s) missing."


@pytest.mark.data
@pytest.mark.parametrize("how", ["flag", "environment"])
def test_no_download_keeps_the_offline_error_without_a_request(
    how: str, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    root = tmp_path / "data"
    root.mkdir()
    if how == "flag":
        monkeypatch.delenv("CONTINUOUS_GNN_NO_DOWNLOAD", raising=False)
        argv = _train(root, tmp_path, "--no-download")
    else:
        monkeypatch.setenv("CONTINUOUS_GNN_NO_DOWNLOAD", "1")
        argv = _train(root, tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and _offline_message(root) in err and "Nothing is downloaded automatically" in err
    assert server.requests == [] and _tree(root) == []


@pytest.mark.data
def test_the_command_line_downloads_by_default(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    monkeypatch.delenv("CONTINUOUS_GNN_NO_DOWNLOAD", raising=False)
    root = tmp_path / "data"
    assert main(_train(root, tmp_path)) == 0
    out, err = capsys.readouterr()
    assert f"downloading dataset 'texas': 12 raw file(s) into {root}" in err
    assert f"downloading {server.url}/splits/texas_split_0.6_0.2_0.npz" in err  # not a terminal: one line a file
    assert "dataset texas: 183 nodes" in out and (tmp_path / "run.json").is_file()
    assert len(server.requests) == 12

    # --quiet: nothing about the download (there is nothing left to fetch either).
    (root / TEXAS_RAW / "out1_graph_edges.txt").unlink()
    (tmp_path / "run.json").unlink()
    assert main(_train(root, tmp_path, "--quiet")) == 0
    assert "downloading" not in capsys.readouterr().err
    assert len(server.requests) == 13


@pytest.mark.data
def test_the_command_line_reports_a_failed_download_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    monkeypatch.delenv("CONTINUOUS_GNN_NO_DOWNLOAD", raising=False)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    monkeypatch.setattr(WebKB, "url", f"http://127.0.0.1:{silent.getsockname()[1]}")
    root = tmp_path / "data"
    try:
        start = time.perf_counter()
        status = main(_train(root, tmp_path, "--download-timeout", "1", "--quiet"))
        elapsed = time.perf_counter() - start
    finally:
        silent.close()
    assert status == 2 and elapsed < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no answer within 1 s" in err and str(root / TEXAS_RAW) in err
    assert not root.exists() and not (tmp_path / "run.json").exists()


@pytest.mark.data
@pytest.mark.parametrize("command", ["tune", "study", "reproduce"])
def test_every_data_command_downloads(
    command: str, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    monkeypatch.delenv("CONTINUOUS_GNN_NO_DOWNLOAD", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # study has no --cache-dir
    root, cache, out = tmp_path / "data", tmp_path / "cache", tmp_path / "out"
    where = ["--data-root", str(root), "--cache-dir", str(cache)]
    argv = {
        "tune": ["tune", "--dataset", "texas", "--splits", "0", "--epochs", "1", "--hidden", "4", "--trials", "1",
                 *where, "--out", str(tmp_path / "best.toml")],
        "study": ["study", "--dataset", "texas", "--data-root", str(root), "--times", "1", "--step-sizes", "0.5",
                  "--points", "3", "--w-families", "diag", "--out", str(out), "--quiet"],
        "reproduce": ["reproduce", "--datasets", "texas", "--models", "graff", "--splits", "0", "--epochs", "1",
                      *where, "--out-dir", str(out), "--results", "none"],
    }[command]
    if command == "tune":
        pytest.importorskip("optuna")
    assert main(argv) == 0, capsys.readouterr().err
    if command == "study":  # --quiet: nothing about the download
        assert "downloading" not in capsys.readouterr().err
    else:
        assert f"downloading dataset 'texas': 12 raw file(s) into {root}" in capsys.readouterr().err
    assert len(server.requests) == 12
    assert sorted(p.name for p in (root / TEXAS_RAW).iterdir()) == sorted(TEXAS_TEXTS + TEXAS_SPLITS)


@pytest.mark.parametrize(
    ("env", "extra", "match"),
    [
        ("0", ["--download-timeout", "0"], "--download-timeout must be a positive, finite number"),
        ("0", ["--download-timeout", "soon"], "--download-timeout must be a number"),
        ("maybe", [], "CONTINUOUS_GNN_NO_DOWNLOAD='maybe': set it to 1"),
    ],
)
def test_bad_download_settings_are_usage_errors(
    env: str, extra: list[str], match: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    monkeypatch.setenv("CONTINUOUS_GNN_NO_DOWNLOAD", env)
    assert main(_train(tmp_path / "data", tmp_path, *extra)) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["train", "tune", "study", "reproduce"])
def test_every_data_command_has_the_download_flags(command: str) -> None:
    from continuous_gnn.cli import build_parser
    from continuous_gnn.cli.common import Parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    subparser: Parser = sub.choices[command]
    flags = {flag for action in subparser._actions for flag in action.option_strings}
    assert {"--no-download", "--download-timeout", "--data-root"} <= flags


def test_tests_cannot_reach_the_network() -> None:
    # conftest.py refuses connections to any address but loopback, so no default test downloads by mistake.
    start = time.perf_counter()
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("192.0.2.1", 80), timeout=5)  # TEST-NET-1: never routed
    with pytest.raises(AssertionError, match="network"):
        socket.getaddrinfo("example.org", 443)
    assert time.perf_counter() - start < 1
    assert socket.getaddrinfo("127.0.0.1", 80)  # loopback stays open: the test servers live there
    assert os.environ.get("CONTINUOUS_GNN_NO_DOWNLOAD") == "1"


@pytest.mark.parametrize("bars", [True, False])
def test_the_download_report(bars: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from continuous_gnn.cli.downloads import DownloadReport

    files = [("WebKB/texas/raw/out1_graph_edges.txt", 3000), ("WebKB/texas/raw/texas_split_0.6_0.2_0.npz", 500)]
    with DownloadReport("texas", tmp_path, bars=bars) as report:
        for index, (path, size) in enumerate(files):
            report(DownloadProgress(f"https://host/{path}", path, 0, None, index, len(files)))  # before an answer
            for received in (0, size // 2, size):
                report(DownloadProgress(f"https://host/{path}", path, received, size, index, len(files)))
            if bars:
                assert report.bar.n == size and report.bar.total == size
    assert report.bar is None
    err = capsys.readouterr().err
    assert err.startswith(f"downloading dataset 'texas': 2 raw file(s) into {tmp_path}\n")
    if bars:  # a bar per file, named by the file and its place
        assert "out1_graph_edges.txt (1/2)" in err and "texas_split_0.6_0.2_0.npz (2/2)" in err
        assert "https://host" not in err
    else:  # a line per file, with its URL
        assert err.splitlines()[1:] == [f"downloading https://host/{path}" for path, _ in files]


def test_the_command_lines_default_timeout_is_the_librarys() -> None:
    from continuous_gnn.cli.downloads import DEFAULT_TIMEOUT
    from continuous_gnn.data import Download

    assert DEFAULT_TIMEOUT == Download().timeout


@pytest.mark.data
def test_a_suite_goes_on_past_a_dataset_whose_download_fails(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuous_gnn.cli import main

    monkeypatch.delenv("CONTINUOUS_GNN_NO_DOWNLOAD", raising=False)
    suite = tmp_path / "two.toml"  # the server holds texas only: cornell's files are a 404
    suite.write_text('[[models]]\nlabel = "GRAFF"\npreset = "graff"\ndatasets = ["cornell", "texas"]\n')
    root, page = tmp_path / "data", tmp_path / "two.md"
    argv = ["suite", str(suite), "--splits", "0", "--epochs", "1", "--data-root", str(root), "--cache-dir",
            str(tmp_path / "cache"), "--out-dir", str(tmp_path / "runs"), "--page", str(page), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "dataset cornell: " in capsys.readouterr().err and "HTTP" in page.read_text()
    assert "| texas | GRAFF |" in page.read_text()
    assert len(list((tmp_path / "runs").glob("*.json"))) == 1  # texas trained; cornell is an unavailable row
