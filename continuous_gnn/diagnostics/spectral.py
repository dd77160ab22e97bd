r"""Spectral diagnostics: eigenpairs of :math:`\Delta`, alignment with its extreme eigenvectors, spectrum of W.

Everything here is dense linear algebra meant for small and medium graphs or for a channel-mixing matrix
:math:`W` of size ``d x d``. Functions run without building an autograd graph and return **detached
tensors** (0-dim for scalars); call ``float(...)`` for a Python number.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch
from torch import Tensor

from continuous_gnn.diagnostics._checks import as_node_features
from continuous_gnn.graph import Graph

__all__ = ["Spectrum", "eigvec_cosines", "laplacian_spectrum", "negative_mass", "w_spectrum"]


class Spectrum(NamedTuple):
    """Eigen-decomposition of :math:`\\Delta`; unpacks as ``(eigenvalues, eigenvectors)``.

    Attributes:
        eigenvalues (Tensor): shape ``(n,)``, ascending.
        eigenvectors (Tensor): shape ``(n, n)``, orthonormal columns; column ``k`` goes with
            ``eigenvalues[k]``.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor


@torch.no_grad()
def laplacian_spectrum(graph: Graph, max_nodes: int = 20000) -> Spectrum:
    r"""All eigenpairs of :math:`\Delta = I - \bar A` by a dense symmetric eigensolver.

    Builds the dense :math:`n \times n` matrix (:math:`O(n^2)` memory) and calls
    :func:`torch.linalg.eigh` (:math:`O(n^3)` time), so it is meant for graphs up to a few thousand
    nodes. Eigenvalues lie in :math:`[0, 2]` (:math:`[0, 2)` when every node has a self-loop of positive
    weight); for a connected graph the kernel is one-dimensional and spanned by :math:`\sqrt{\tilde d}`. The first eigenvector is oriented
    to have a non-negative sum, so for a connected graph it equals
    :math:`\sqrt{\tilde d}/\|\sqrt{\tilde d}\|`; the signs of the others are arbitrary, and so is the basis
    of a repeated eigenvalue.

    Args:
        graph (Graph): a graph with ``normalization="sym"``.
        max_nodes (int): refuse graphs with more nodes than this (default: 20000, which already needs
            about 3 GB in float64 and a long wait).

    Returns:
        Spectrum: ``(eigenvalues ascending, eigenvectors as columns)`` in the graph's dtype.

    Raises:
        ValueError: if ``graph.num_nodes > max_nodes`` or the graph is not symmetric.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a continuous_gnn.graph.Graph, got {type(graph).__name__}")
    if not graph.symmetric:
        raise ValueError(
            f"the spectrum needs a symmetric operator, but this graph uses normalization={graph.normalization!r}; "
            "build it with normalization='sym' (its eigenvalues equal those of the 'rw' Laplacian)"
        )
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise TypeError(f"max_nodes must be a positive integer, got {max_nodes!r}")
    if graph.num_nodes > max_nodes:
        raise ValueError(
            f"laplacian_spectrum builds a dense {graph.num_nodes} x {graph.num_nodes} matrix and costs O(n^3); "
            f"the graph has more than max_nodes={max_nodes} nodes. Raise max_nodes if you have the memory, or use "
            "an iterative solver (scipy.sparse.linalg.eigsh on the sparse operator) for a few extreme eigenpairs."
        )
    adjacency = graph.to_dense()
    laplacian = torch.eye(graph.num_nodes, dtype=adjacency.dtype, device=adjacency.device) - adjacency
    # eigh reads one triangle only; averaging keeps rounding asymmetry from biasing it.
    laplacian = 0.5 * (laplacian + laplacian.T)
    eigenvalues, eigenvectors = torch.linalg.eigh(laplacian)
    if eigenvectors[:, 0].sum() < 0:
        eigenvectors[:, 0] = -eigenvectors[:, 0]
    return Spectrum(eigenvalues, eigenvectors)


def _extreme_eigenspaces(spectrum: Spectrum, tol: float | None) -> tuple[Tensor, Tensor]:
    """Orthonormal bases of the lowest and highest eigenspaces, grouping eigenvalues within ``tol``."""
    eigenvalues, eigenvectors = spectrum
    if tol is None:
        tol = torch.finfo(eigenvalues.dtype).eps ** 0.5
    scale = max(1.0, float(eigenvalues.abs().max()))
    low = eigenvalues <= eigenvalues[0] + tol * scale
    high = eigenvalues >= eigenvalues[-1] - tol * scale
    return eigenvectors[:, low], eigenvectors[:, high]


def _projection_cosines(x: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """Frobenius and channel-mean cosines of ``x`` to the span of ``basis``'s columns."""
    nan = torch.full((), float("nan"), dtype=x.dtype, device=x.device)
    if not bool(x.isfinite().all()):  # a nan channel would drop out of the mean as a zero channel does
        return nan, nan
    # Cosines do not depend on scale; each channel over its largest magnitude keeps the squares in range, and
    # a common factor across channels keeps their relative sizes for the Frobenius cosine.
    peaks = x.abs().amax(dim=0) if x.size(0) else torch.zeros(x.size(1), dtype=x.dtype, device=x.device)
    x = x / torch.where(peaks > 0, peaks, torch.ones_like(peaks))  # a zero channel stays zero
    coefficients = basis.T @ x  # (k, d)
    top = peaks.max() if peaks.numel() else peaks.new_zeros(())
    weights = (peaks / top).square() if top > 0 else torch.zeros_like(peaks)
    total = (x.pow(2).sum(dim=0) * weights).sum()
    frobenius = ((coefficients.pow(2).sum(dim=0) * weights).sum() / total).sqrt() if total > 0 else nan
    channel_norm_sq = x.pow(2).sum(dim=0)
    nonzero = channel_norm_sq > 0
    if bool(nonzero.any()):
        per_channel = (coefficients[:, nonzero].pow(2).sum(dim=0) / channel_norm_sq[nonzero]).sqrt()
        channel_mean = per_channel.mean()
    else:
        channel_mean = nan
    # Rounding can push a cosine of an exact eigenvector a hair above 1.
    return frobenius.clamp(max=1.0), channel_mean.clamp(max=1.0)


@torch.no_grad()
def eigvec_cosines(
    x: Tensor, graph: Graph, spectrum: Spectrum | tuple[Tensor, Tensor] | None = None, tol: float | None = None
) -> dict[str, Tensor]:
    r"""How much of ``x`` lies along the lowest and along the highest eigenvectors of :math:`\Delta`.

    Let :math:`U` be an orthonormal basis of the eigenspace of the lowest (resp. highest) eigenvalue,
    eigenvalues within ``tol`` of the extreme grouped together so that the result does not depend on
    the arbitrary basis :func:`torch.linalg.eigh` returns for a repeated eigenvalue. When that eigenspace
    is one-dimensional, :math:`U = u` and the quantities below are plain :math:`|\cos|` with :math:`u`.

    .. math::
        c = \frac{\|U^\top X\|_F}{\|X\|_F}, \qquad
        c_{\text{channel}} = \frac1{d'} \sum_{r:\,x_r\neq 0} \frac{\|U^\top x_r\|}{\|x_r\|},

    both in :math:`[0, 1]`: :math:`c` is the cosine between :math:`X` and its orthogonal projection
    :math:`UU^\top X` (1 iff every channel lies in the eigenspace), :math:`c_{\text{channel}}` the mean
    over the :math:`d'` non-zero channels of the same per channel. For a connected graph the lowest
    eigenspace is spanned by :math:`\sqrt{\tilde d}`, so ``low`` measures over-smoothing; ``high``
    measures over-sharpening (HFD).

    Args:
        x (Tensor): node features, shape ``(n, d)`` or ``(n,)``.
        graph (Graph): a graph with ``normalization="sym"``.
        spectrum (Spectrum, optional): the output of :func:`laplacian_spectrum` for ``graph``, to reuse
            it across calls (default: computed here, :math:`O(n^3)`).
        tol (float, optional): eigenvalues within ``tol * max(1, max|lambda|)`` of the lowest (highest)
            count as the same eigenvalue; a finite number ``>= 0``, where ``0`` groups only exactly equal
            eigenvalues (default: square root of the machine epsilon of the spectrum's dtype, the precision its
            eigenvalues have).

    Returns:
        dict[str, Tensor]: 0-dim tensors under ``"low"``, ``"high"`` (:math:`c`) and
        ``"low_channel_mean"``, ``"high_channel_mean"`` (:math:`c_{\text{channel}}`); ``nan`` where
        ``x`` (resp. every channel) is zero, and all four ``nan`` where ``x`` has a non-finite entry.

    Raises:
        TypeError: if ``x`` is not a floating-point tensor, ``graph`` is not a :class:`Graph` or ``tol`` is
            not a real number.
        ValueError: if ``tol`` is negative or not finite, or the shapes of ``x``, ``graph`` and
            ``spectrum`` disagree.
    """
    if not isinstance(graph, Graph):
        raise TypeError(f"graph must be a continuous_gnn.graph.Graph (the one the spectrum belongs to), "
                        f"got {type(graph).__name__}")
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
            raise TypeError(f"tol must be a real number or None, got {type(tol).__name__}")
        # A negative or nan tol makes both eigenspaces empty, so every cosine would silently be 0.
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0 (0 groups only equal eigenvalues), got {tol}")
    x = as_node_features(x, graph.num_nodes)
    if spectrum is None:
        spectrum = laplacian_spectrum(graph)
    spectrum = Spectrum(*spectrum)
    n = graph.num_nodes
    values, vectors = spectrum.eigenvalues, spectrum.eigenvectors
    # A partial spectrum would be taken for the whole one: its extreme eigenspaces would be the wrong ones.
    if not (isinstance(values, Tensor) and isinstance(vectors, Tensor) and values.shape == (n,)
            and vectors.shape == (n, n)):
        shapes = tuple(getattr(values, "shape", ())), tuple(getattr(vectors, "shape", ()))
        raise ValueError(
            f"the spectrum must be the whole spectrum of the graph ({n} nodes): eigenvalues of shape ({n},) and "
            f"eigenvectors of shape ({n}, {n}), got {shapes[0]} and {shapes[1]}; pass laplacian_spectrum(graph) "
            "of the same graph"
        )
    # Grouped in the spectrum's own precision, which its eigenvalues have: in a finer one, the rounding of equal
    # eigenvalues would split their eigenspace, and the result would depend on the basis eigh chose.
    low_basis, high_basis = (basis.to(x.dtype) for basis in _extreme_eigenspaces(spectrum, tol))
    low, low_channel = _projection_cosines(x, low_basis)
    high, high_channel = _projection_cosines(x, high_basis)
    return {"low": low, "high": high, "low_channel_mean": low_channel, "high_channel_mean": high_channel}


@torch.no_grad()
def w_spectrum(w: Tensor, tol: float = 1e-5) -> Tensor:
    r"""Eigenvalues of a symmetric channel-mixing matrix :math:`W`, ascending.

    :math:`\dot F = -F\Omega + \bar A F W` is the gradient flow of an energy only for symmetric
    :math:`\Omega, W`; then the sign of each eigenvalue of :math:`W` says whether that channel direction
    is attracting (:math:`\lambda > 0`, smoothing) or repulsive (:math:`\lambda < 0`, sharpening).

    Args:
        w (Tensor): square matrix of shape ``(d, d)`` (array-likes are converted; integer input becomes
            float64, float16 and bfloat16 float32, which ``eigvalsh`` needs).
        tol (float): symmetry tolerance: :math:`\max|W - W^\top| \le` ``tol`` :math:`\cdot\max(1, \max|W|)`
            (default: ``1e-5``).

    Returns:
        Tensor: shape ``(d,)``, ascending, from :func:`torch.linalg.eigvalsh` of
        :math:`(W + W^\top)/2`.

    Raises:
        TypeError: if ``w`` cannot be converted to a tensor or is complex.
        ValueError: if ``w`` is not a square 2-D matrix, contains ``inf`` or ``nan``, or is not symmetric
            within ``tol``.
    """
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number, got {type(tol).__name__}")
    # A nan tol would pass any W as symmetric, a negative one refuse even the identity.
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    if not isinstance(w, Tensor):
        try:
            w = torch.as_tensor(w)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"W must be a square matrix (tensor or array-like), got {type(w).__name__}") from error
    w = w.detach()
    if w.is_complex():
        raise TypeError(f"W must be a real matrix, got dtype {w.dtype}; pass W.real if the imaginary part is "
                        "rounding noise, or use torch.linalg.eigvals for a genuinely complex W")
    if w.dim() != 2 or w.size(0) != w.size(1):
        raise ValueError(f"W must be a square matrix of shape (d, d); got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        w = w.to(torch.float64)
    elif w.dtype in (torch.float16, torch.bfloat16):  # eigvalsh has no half-precision kernel; float32 holds them
        w = w.to(torch.float32)
    # nan compares False against the symmetry tolerance and eigvalsh reads one triangle only, so a nan entry
    # would otherwise yield finite, meaningless eigenvalues.
    if not bool(w.isfinite().all()):
        raise ValueError("W contains inf or nan; check the trained weights (a diverged run) before taking its spectrum")
    asymmetry = float((w - w.T).abs().max()) if w.numel() else 0.0
    scale = max(1.0, float(w.abs().max())) if w.numel() else 1.0
    if asymmetry > tol * scale:
        raise ValueError(
            f"W is not symmetric (max |W - W^T| = {asymmetry:.3g} > tol * max(1, max|W|) = {tol * scale:.3g}). "
            "With a non-symmetric W the flow -F Omega + A F W is not the gradient flow of any energy and its "
            "eigenvalues may be complex; use torch.linalg.eigvals for that case, or symmetrise W."
        )
    return torch.linalg.eigvalsh(0.5 * (w + w.T))


@torch.no_grad()
def negative_mass(eigenvalues: Tensor) -> Tensor:
    r"""Share of the spectrum's absolute mass carried by negative eigenvalues.

    .. math::
        \nu(\lambda) = \frac{\sum_k \max(-\lambda_k, 0)}{\sum_k |\lambda_k|} \in [0, 1],

    0 when every eigenvalue is zero. :math:`\nu = 0` means :math:`W \succeq 0` (pure attraction,
    smoothing), :math:`\nu = 1` means :math:`W \preceq 0` (pure repulsion, sharpening).

    Args:
        eigenvalues (Tensor): real eigenvalues, any shape (flattened), at least one.

    Returns:
        Tensor: 0-dim, in the eigenvalues' floating dtype (float64 for integer input).

    Raises:
        TypeError: if ``eigenvalues`` is not a tensor or array-like of real numbers.
        ValueError: if ``eigenvalues`` is empty or not finite.
    """
    try:
        eigenvalues = torch.as_tensor(eigenvalues).detach().flatten()
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"eigenvalues must be a tensor or array-like of real numbers, got {type(eigenvalues).__name__}"
        ) from error
    if eigenvalues.is_complex():
        raise TypeError(f"eigenvalues must be real, got dtype {eigenvalues.dtype}; pass the spectrum of a "
                        "symmetric matrix (w_spectrum) or take .real")
    if eigenvalues.numel() == 0:
        raise ValueError("negative_mass needs at least one eigenvalue")
    if not eigenvalues.is_floating_point():
        eigenvalues = eigenvalues.to(torch.float64)
    if not bool(eigenvalues.isfinite().all()):
        raise ValueError("eigenvalues contain inf or nan; the spectrum of a W with non-finite entries has no "
                         "negative mass: check the weights")
    dtype = eigenvalues.dtype
    # Summed in float64: a float16 sum of a few large eigenvalues overflows to inf, and the share would read 0.
    eigenvalues = eigenvalues.to(torch.float64)
    total = eigenvalues.abs().sum()
    if total == 0:
        return torch.zeros((), dtype=dtype, device=eigenvalues.device)
    return (eigenvalues.clamp(max=0).abs().sum() / total).to(dtype)
