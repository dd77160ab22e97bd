"""The processing cache: each dataset is processed once, then read back in milliseconds.

* **The data root is never written to.** Each dataset is processed in a
  private temporary folder inside ``cache_dir`` (``.build-<name>-*``): the raw
  files are copied there and the ``torch_geometric`` class runs there, so its
  ``processed/`` folder never appears in the root.
* **Never half-written.** Only the final tensors are published, as
  ``<cache_dir>/<name>-<key>.pt``, with an atomic :func:`os.replace`;
  concurrent or interrupted runs therefore never leave a half-written entry.
  Build folders of killed processes are removed after a day. An unreadable
  cache file is rebuilt, and nothing is cached for a failed build.
* **The key** covers the cache format, the ``torch_geometric`` version and
  each raw file's name, size and modification time (a ``stat``, no reading),
  so replacing raw files triggers reprocessing.
* **Stored form.** The graph is canonicalised before it is stored (undirected,
  no self-loops, fixed dtypes, 2-D boolean masks) and the features are kept as
  coordinates and values, since the bag-of-words matrices are mostly zeros.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import torch_geometric
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops, to_undirected

from continuous_gnn.data.raw_files import DatasetUnavailableError, _check_checksums, _corrupt_error
from continuous_gnn.data.registry import _Spec

#: Bumped whenever the layout or content of cache files changes.
_CACHE_FORMAT = 2
#: Temporary build directories older than this are leftovers of killed runs.
_STALE_BUILD_SECONDS = 24 * 3600
_BUILD_PREFIX = ".build-"


def _fingerprint(spec: _Spec, root: Path) -> str:
    """Cache key from the raw files' names, sizes and mtimes (cheap: stat only)."""
    h = hashlib.sha256(f"{_CACHE_FORMAT}|{torch_geometric.__version__}|{spec.name}".encode())
    for rel in spec.files:
        st = (root / rel).stat()
        h.update(f"|{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _canonicalize(data: Data, spec: _Spec) -> dict[str, Tensor]:
    """Undirected graph without self-loops, fixed dtypes and 2-D boolean masks.

    Raises:
        ValueError: If the tensors read from the raw files do not fit together
            (a sign of a truncated or corrupt file).
    """
    x = getattr(data, "x", None)
    if not isinstance(x, Tensor) or x.dim() != 2 or x.size(0) == 0:
        shape = list(x.shape) if isinstance(x, Tensor) else None
        raise ValueError(f"the features must be a non-empty [num_nodes, num_features] matrix, got shape {shape}")
    num_nodes = int(x.size(0))
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the features contain nan or inf values")
    y = data.y.long().view(-1)
    if y.numel() != num_nodes:
        raise ValueError(f"there are {y.numel()} labels for {num_nodes} feature rows; each node needs one")
    if int(y.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices, got {int(y.min())}")
    edge_index = data.edge_index
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, num_edges], got {list(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(
            f"edges refer to nodes {int(edge_index.min())}..{int(edge_index.max())}, but there are "
            f"{num_nodes} nodes (0..{num_nodes - 1})"
        )
    edge_index, _ = remove_self_loops(edge_index.long())
    edge_index = to_undirected(edge_index, num_nodes=num_nodes)
    out = {
        **_pack_features(x.float()),
        "y": y,
        "edge_index": edge_index.contiguous(),
        "num_classes": torch.tensor(int(y.max()) + 1),
    }
    for key in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(data, key).bool()  # Geom-GCN Planetoid masks load as uint8
        mask = mask.unsqueeze(1) if mask.dim() == 1 else mask
        if tuple(mask.shape) != (num_nodes, spec.num_splits):
            raise ValueError(
                f"{key} must have shape [num_nodes, num_splits] = [{num_nodes}, {spec.num_splits}], "
                f"got {list(mask.shape)}"
            )
        out[key] = mask.contiguous()
    return out


def _pack_features(x: Tensor) -> dict[str, Tensor]:
    """Store features as coordinates and values.

    The bag-of-words matrices are over 98% zeros; dense files would take about
    280 MB of cache for all datasets, this takes a few MB.
    """
    index = x.nonzero().t().contiguous()
    return {"x_index": index, "x_values": x[index[0], index[1]], "x_shape": torch.tensor(x.shape)}


def _unpack_features(tensors: dict[str, Tensor]) -> Tensor:
    num_rows, num_cols = (int(v) for v in tensors["x_shape"])
    x = torch.zeros(num_rows, num_cols, dtype=torch.float32)
    x[tensors["x_index"][0], tensors["x_index"][1]] = tensors["x_values"]
    return x


def _remove_stale_builds(directory: Path, prefix: str = _BUILD_PREFIX) -> None:
    """Delete temporary folders named ``<prefix>*`` that killed processes left behind (older than a day)."""
    cutoff = time.time() - _STALE_BUILD_SECONDS
    for path in directory.glob(f"{prefix}*"):
        try:
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:  # another process removed it first
            pass


#: What reading a truncated or corrupt raw file raises inside numpy, pickle,
#: torch and the torch_geometric classes (UnicodeDecodeError is a ValueError).
#: OSError counts only without an errno (numpy's "Failed to interpret file"):
#: one with an errno is a real system error (disk full, permissions).
_CORRUPT_FILE_ERRORS = (
    zipfile.BadZipFile,
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    IndexError,
    KeyError,
    RuntimeError,
    OSError,
)


def _process(spec: _Spec, root: Path, stage: Path) -> dict[str, Tensor]:
    """Run the dataset's builder on the staged raw files and canonicalise the result.

    Raises:
        DatasetUnavailableError: If a raw file is missing, truncated or corrupt.
    """
    try:
        return _canonicalize(spec.build(stage), spec)
    except DatasetUnavailableError:
        raise
    except OSError as err:
        if err.errno is not None:  # a system error (disk full, permissions), not the files' content
            raise
        raise _corrupt_error(spec, root, stage, err) from err
    except _CORRUPT_FILE_ERRORS as err:
        raise _corrupt_error(spec, root, stage, err) from err


def _build_cache_file(spec: _Spec, root: Path, cache_dir: Path, target: Path) -> None:
    """Process ``spec`` in a private temporary directory and publish ``target`` atomically."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{spec.name}-", dir=cache_dir))
    except OSError as err:
        raise PermissionError(
            f"cannot create a processing directory in cache_dir {str(cache_dir)!r} ({err}); "
            "pass a writable cache_dir"
        ) from err
    try:
        # Copy the raw files so that torch_geometric writes its processed/
        # folders here, never into the (possibly shared, read-only) data root.
        for rel in spec.files:
            dest = stage / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dest)
        _check_checksums(spec, root, stage)  # the copies, which are what is processed
        tensors = _process(spec, root, stage)
        partial = stage / "graph.pt"
        torch.save(tensors, partial)
        os.replace(partial, target)  # atomic: readers see all or nothing
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _remove_stale_builds(cache_dir)


def _read_cache_file(path: Path, num_splits: int) -> dict[str, Tensor] | None:
    """Load a cache file, or return ``None`` if it is absent, unreadable or not what :func:`_build_cache_file`
    writes (its tensors of other shapes or types than one another's, or ``num_splits`` columns of masks)."""
    if not path.is_file():
        return None
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable cache entry is rebuilt
        return None
    expected = {"x_index", "x_values", "x_shape", "y", "edge_index", "num_classes", "train_mask", "val_mask", "test_mask"}
    if not (isinstance(tensors, dict) and expected <= tensors.keys()
            and all(isinstance(tensors[key], Tensor) for key in expected)):
        return None
    return tensors if _consistent(tensors, num_splits) else None


def _consistent(tensors: dict[str, Tensor], num_splits: int) -> bool:
    """Whether the cached tensors fit together as one graph's."""
    x_shape, y, edge_index, x_index = tensors["x_shape"], tensors["y"], tensors["edge_index"], tensors["x_index"]
    if x_shape.shape != (2,) or y.dim() != 1 or edge_index.dim() != 2 or edge_index.size(0) != 2:
        return False
    num_nodes, num_features = (int(v) for v in x_shape)
    if y.numel() != num_nodes or x_index.dim() != 2 or x_index.size(0) != 2 or tensors["x_values"].shape != (
            x_index.size(1),):
        return False
    if any(tensors[key].dtype != torch.bool or tuple(tensors[key].shape) != (num_nodes, num_splits)
           for key in ("train_mask", "val_mask", "test_mask")):
        return False
    inside = [(index, bound) for index, bound in ((edge_index, num_nodes), (x_index[0], num_nodes),
                                                  (x_index[1], num_features)) if index.numel()]
    return all(int(index.min()) >= 0 and int(index.max()) < bound for index, bound in inside)


def _load_tensors(spec: _Spec, root: Path, cache_dir: Path) -> dict[str, Tensor]:
    target = cache_dir / f"{spec.name}-{_fingerprint(spec, root)}.pt"
    tensors = _read_cache_file(target, spec.num_splits)
    if tensors is None:
        _build_cache_file(spec, root, cache_dir, target)
        tensors = _read_cache_file(target, spec.num_splits)
        if tensors is None:  # pragma: no cover - only on a broken file system
            raise OSError(f"processed cache file {str(target)!r} could not be read back")
    return tensors
