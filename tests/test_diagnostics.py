"""Tests for continuous_gnn.diagnostics: every documented identity is checked numerically."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.utils import add_remaining_self_loops, get_laplacian, to_dense_adj

from continuous_gnn.data.fixed_graphs import complete_bipartite, grid_graph, path_graph, ring_graph
from continuous_gnn.diagnostics import (
    DEFAULT_METRICS,
    DIAGNOSTICS,
    channel_dirichlet_energies,
    dirichlet_energy,
    eigvec_cosines,
    laplacian_spectrum,
    mean_average_distance,
    negative_mass,
    rayleigh_quotient,
    trajectory_diagnostics,
    w_spectrum,
)
from continuous_gnn.diagnostics import trajectory as trajectory_module
from continuous_gnn.graph import Graph

F64 = torch.float64


# --------------------------------------------------------------------------------------------------
# fixtures: a small connected irregular graph, optionally weighted
# --------------------------------------------------------------------------------------------------


def _irregular_edges() -> torch.Tensor:
    """A connected, irregular, non-bipartite graph on 7 nodes (both directions stored)."""
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6), (5, 6), (0, 6)]
    one_way = torch.tensor(pairs).T
    return torch.cat([one_way, one_way.flip(0)], dim=1)


def _symmetric_weights(edge_index: torch.Tensor, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    half = edge_index.size(1) // 2
    w = torch.rand(half, generator=generator, dtype=F64) + 0.5
    return torch.cat([w, w])


def _graph(self_loops: bool = True, weighted: bool = False, dtype: torch.dtype = F64) -> Graph:
    edge_index = _irregular_edges()
    weight = _symmetric_weights(edge_index) if weighted else None
    return Graph.from_edge_index(edge_index, 7, weight, self_loops=self_loops, dtype=dtype)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _dense_laplacian(graph: Graph) -> torch.Tensor:
    return torch.eye(graph.num_nodes, dtype=graph.dtype) - graph.to_dense()


def _graph_of(data, self_loops: bool) -> Graph:
    return Graph.from_data(data, self_loops=self_loops, dtype=F64)


# --------------------------------------------------------------------------------------------------
# Dirichlet energy
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_dirichlet_energy_equals_edge_sum(self_loops: bool, weighted: bool) -> None:
    edge_index = _irregular_edges()
    weight = _symmetric_weights(edge_index) if weighted else torch.ones(edge_index.size(1), dtype=F64)
    graph = Graph.from_edge_index(edge_index, 7, weight if weighted else None, self_loops=self_loops, dtype=F64)
    # Raw (un-normalised) entries of A~, built independently of Graph.
    if self_loops:
        edge_index, weight = add_remaining_self_loops(edge_index, weight, 1.0, 7)
    degree = torch.zeros(7, dtype=F64).index_add_(0, edge_index[0], weight)
    x = _randn(7, 3)
    scaled = x / degree.sqrt().unsqueeze(1)
    row, col = edge_index
    edge_sum = 0.25 * (weight * (scaled[row] - scaled[col]).pow(2).sum(dim=1)).sum()
    assert torch.allclose(dirichlet_energy(x, graph), edge_sum, rtol=1e-12, atol=1e-12)
    assert torch.allclose(graph.degree, degree)


@pytest.mark.parametrize("weighted", [True, False])
def test_dirichlet_energy_is_half_pyg_sym_laplacian_energy_without_self_loops(weighted: bool) -> None:
    edge_index = _irregular_edges()
    weight = _symmetric_weights(edge_index) if weighted else None
    graph = Graph.from_edge_index(edge_index, 7, weight, self_loops=False, dtype=F64)
    lap_index, lap_weight = get_laplacian(edge_index, weight, normalization="sym", dtype=F64, num_nodes=7)
    laplacian = to_dense_adj(lap_index, edge_attr=lap_weight, max_num_nodes=7)[0]
    x = _randn(7, 4)
    assert torch.allclose(dirichlet_energy(x, graph), 0.5 * torch.trace(x.T @ laplacian @ x), rtol=1e-12)


def test_pyg_get_laplacian_drops_self_loops_so_differs_on_self_looped_graph() -> None:
    """The docstring's caveat: the official 'DE' on a self-looped edge list is the loop-free energy."""
    edge_index = _irregular_edges()
    looped_index, looped_weight = add_remaining_self_loops(edge_index, torch.ones(edge_index.size(1), dtype=F64), 1.0, 7)
    lap_index, lap_weight = get_laplacian(looped_index, looped_weight, normalization="sym", dtype=F64, num_nodes=7)
    laplacian = to_dense_adj(lap_index, edge_attr=lap_weight, max_num_nodes=7)[0]
    x = _randn(7, 4)
    official = 0.5 * torch.trace(x.T @ laplacian @ x)
    with_loops = dirichlet_energy(x, _graph(self_loops=True))
    without_loops = dirichlet_energy(x, _graph(self_loops=False))
    assert torch.allclose(official, without_loops, rtol=1e-12)
    assert abs(float(official - with_loops)) > 1e-3 * float(with_loops)
    # self_loops=False keeps the self-loops an edge list lists, which get_laplacian drops: they differ then too.
    listed = torch.cat([edge_index, torch.tensor([[3], [3]])], dim=1)
    lap_index, lap_weight = get_laplacian(listed, None, normalization="sym", dtype=F64, num_nodes=7)
    official = 0.5 * torch.trace(x.T @ to_dense_adj(lap_index, edge_attr=lap_weight, max_num_nodes=7)[0] @ x)
    kept = dirichlet_energy(x, Graph.from_edge_index(listed, 7, self_loops=False, dtype=F64))
    assert abs(float(official - kept)) > 1e-3 * float(kept)


@pytest.mark.parametrize("self_loops", [True, False])
def test_dirichlet_energy_matches_dense_trace(self_loops: bool) -> None:
    graph = _graph(self_loops=self_loops, weighted=True)
    x = _randn(7, 5, seed=3)
    expected = 0.5 * torch.trace(x.T @ _dense_laplacian(graph) @ x)
    assert torch.allclose(dirichlet_energy(x, graph), expected, rtol=1e-12)


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_zero_energy_exactly_on_sqrt_degree_not_on_constants(self_loops: bool, weighted: bool) -> None:
    graph = _graph(self_loops=self_loops, weighted=weighted)
    sqrt_degree = graph.degree.sqrt()
    assert abs(float(dirichlet_energy(sqrt_degree, graph))) < 1e-12
    # Any multi-channel field whose channels are multiples of sqrt(d~) is in the kernel.
    kernel_field = sqrt_degree.unsqueeze(1) * torch.tensor([[1.5, -2.0, 0.3]], dtype=F64)
    assert abs(float(dirichlet_energy(kernel_field, graph))) < 1e-12
    # The graph is irregular, so constants are not in the kernel.
    assert graph.degree.unique().numel() > 1
    assert float(dirichlet_energy(torch.ones(7, dtype=F64), graph)) > 1e-3
    # Random fields, also with their kernel component removed, have strictly positive energy.
    u = sqrt_degree / sqrt_degree.norm()
    for seed in range(5):
        x = _randn(7, 2, seed=seed)
        assert float(dirichlet_energy(x, graph)) > 1e-6
        x_perp = x - u.unsqueeze(1) * (u @ x).unsqueeze(0)
        assert float(dirichlet_energy(x_perp, graph)) > 1e-6


def test_channel_energies_sum_to_total_and_match_per_channel_forms() -> None:
    graph = _graph(weighted=True)
    x = _randn(7, 4, seed=1)
    channels = channel_dirichlet_energies(x, graph)
    assert channels.shape == (4,)
    laplacian = _dense_laplacian(graph)
    for r in range(4):
        assert torch.allclose(channels[r], 0.5 * x[:, r] @ laplacian @ x[:, r], rtol=1e-12)
    assert torch.allclose(channels.sum(), dirichlet_energy(x, graph), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# Rayleigh quotient
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("self_loops", [True, False])
def test_rayleigh_quotient_bounds_and_scaling_identity(self_loops: bool) -> None:
    graph = _graph(self_loops=self_loops, weighted=True)
    eigenvalues, eigenvectors = laplacian_spectrum(graph)
    rho = float(eigenvalues[-1])
    for seed in range(20):
        x = _randn(7, 3, seed=seed)
        rq = float(rayleigh_quotient(x, graph))
        assert 0.0 <= rq <= rho + 1e-12
        assert math.isclose(rq, 2 * float(dirichlet_energy(x / x.norm(), graph)), rel_tol=1e-12)
        assert math.isclose(rq, float(torch.trace(x.T @ _dense_laplacian(graph) @ x) / x.pow(2).sum()), rel_tol=1e-12)
    # The bounds are attained at the extreme eigenvectors.
    assert abs(float(rayleigh_quotient(eigenvectors[:, 0], graph))) < 1e-12
    assert math.isclose(float(rayleigh_quotient(eigenvectors[:, -1], graph)), rho, rel_tol=1e-12)


def test_rounding_keeps_the_quotient_the_distance_and_the_negative_mass_in_their_ranges() -> None:
    graph = _graph(weighted=True, dtype=torch.float32)
    bottom = graph.degree.sqrt().unsqueeze(1)  # the bottom eigenspace: 0 in exact arithmetic, below it in float32
    for seed in range(50):
        scale = torch.rand(1, 3, generator=torch.Generator().manual_seed(seed)) * 100 - 50
        assert float(rayleigh_quotient(bottom * scale, graph)) >= 0.0
    rows = torch.ones(9, 4, dtype=F64) * torch.tensor([0.3, -1.7, 2.9, 0.1], dtype=F64)
    assert float(mean_average_distance(rows)) == 0.0  # identical rows: MAD 0, never a rounding below it
    path = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 4, 5], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4]])
    signs = torch.tensor([1.0, -1.0] * 3, dtype=F64).unsqueeze(1)
    for seed in range(20):  # over the graph's pairs too: some of these rounded to -4.4e-16 and to 2 + 4.4e-16
        row = torch.randn(7, dtype=F64, generator=torch.Generator().manual_seed(seed))
        assert 0.0 <= float(mean_average_distance(row.expand(6, 7), path)) < 1e-15
        assert 2.0 - 1e-15 < float(mean_average_distance(row * signs, path)) <= 2.0
    # float16's sum of these overflows: the share was 0 ("pure attraction") for a mass of 0.1 on negatives.
    assert math.isclose(float(negative_mass(torch.tensor([-1e4, 6e4, 3e4]).half())), 0.1, rel_tol=1e-3)


def test_a_blown_up_state_is_recorded_as_nan_by_every_diagnostic_mad_included() -> None:
    graph = _graph()
    good, blown = _randn(7, 3), torch.full((7, 3), float("nan"), dtype=F64)
    records = trajectory_diagnostics([good, blown], [0.0, 1.0], graph, metrics=["mad", "mad_global", "dirichlet"])
    assert records[0]["mad"] == pytest.approx(float(mean_average_distance(good, graph)))
    assert all(math.isnan(records[1][name]) for name in ("mad", "mad_global", "dirichlet"))


def test_rayleigh_quotient_of_zero_is_nan() -> None:
    assert math.isnan(float(rayleigh_quotient(torch.zeros(7, 2, dtype=F64), _graph())))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_energy_functions_keep_dtype_and_detach(dtype: torch.dtype) -> None:
    graph = _graph(dtype=dtype)
    x = _randn(7, 3, dtype=dtype).requires_grad_(True)
    reference = x.detach().double()
    for function in (dirichlet_energy, rayleigh_quotient, channel_dirichlet_energies):
        value = function(x, graph)
        assert value.dtype == dtype and not value.requires_grad
        expected = function(reference, _graph())
        assert torch.allclose(value.double(), expected, rtol=1e-5)


def test_energy_input_errors() -> None:
    graph = _graph()
    with pytest.raises(TypeError, match="dtype"):
        dirichlet_energy(_randn(7, 2, dtype=torch.float32), graph)
    with pytest.raises(ValueError, match="shape"):
        dirichlet_energy(_randn(6, 2), graph)
    rw = Graph.from_edge_index(_irregular_edges(), 7, normalization="rw", dtype=F64)
    with pytest.raises(ValueError, match="symmetric"):
        rayleigh_quotient(_randn(7, 2), rw)
    with pytest.raises(ValueError, match="symmetric"):
        laplacian_spectrum(rw)


# --------------------------------------------------------------------------------------------------
# exact spectra
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [7, 8])
def test_ring_spectrum_without_self_loops(n: int) -> None:
    eigenvalues, _ = laplacian_spectrum(_graph_of(ring_graph(n), self_loops=False))
    k = torch.arange(n, dtype=F64)
    expected = (1 - torch.cos(2 * math.pi * k / n)).sort().values
    assert torch.allclose(eigenvalues, expected, atol=1e-12)


def test_ring_spectrum_with_self_loops() -> None:
    n = 9
    eigenvalues, _ = laplacian_spectrum(_graph_of(ring_graph(n), self_loops=True))
    # A~ = A + I on a 2-regular graph, so Delta = I - (A + I)/3.
    k = torch.arange(n, dtype=F64)
    expected = ((2 - 2 * torch.cos(2 * math.pi * k / n)) / 3).sort().values
    assert torch.allclose(eigenvalues, expected, atol=1e-12)


def test_path_spectrum_without_self_loops() -> None:
    n = 6
    eigenvalues, _ = laplacian_spectrum(_graph_of(path_graph(n), self_loops=False))
    expected = 1 - torch.cos(math.pi * torch.arange(n, dtype=F64) / (n - 1))
    assert torch.allclose(eigenvalues, expected, atol=1e-12)


def test_periodic_grid_spectrum_without_self_loops() -> None:
    rows, cols = 4, 5
    eigenvalues, _ = laplacian_spectrum(_graph_of(grid_graph(rows, cols, periodic=True), self_loops=False))
    j = torch.arange(rows, dtype=F64).unsqueeze(1)
    k = torch.arange(cols, dtype=F64).unsqueeze(0)
    expected = 1 - 0.5 * (torch.cos(2 * math.pi * j / rows) + torch.cos(2 * math.pi * k / cols))
    assert torch.allclose(eigenvalues, expected.flatten().sort().values, atol=1e-12)


def test_open_grid_is_bipartite_with_top_eigenvalue_two() -> None:
    rows, cols = 3, 4
    graph = _graph_of(grid_graph(rows, cols), self_loops=False)
    eigenvalues, eigenvectors = laplacian_spectrum(graph)
    assert math.isclose(float(eigenvalues[-1]), 2.0, abs_tol=1e-12)
    assert float(eigenvalues[-2]) < 2.0 - 1e-6
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    checkerboard = (-1.0) ** (r + c).flatten().to(F64) * graph.degree.sqrt()
    checkerboard = checkerboard / checkerboard.norm()
    assert math.isclose(abs(float(eigenvectors[:, -1] @ checkerboard)), 1.0, rel_tol=1e-12)
    assert math.isclose(float(rayleigh_quotient(checkerboard, graph)), 2.0, rel_tol=1e-12)


@pytest.mark.parametrize("n", [3, 10])
def test_complete_bipartite_spectra(n: int) -> None:
    side = torch.cat([torch.ones(n, dtype=F64), -torch.ones(n, dtype=F64)])
    # Without self-loops: rho = 2 with the +-1 side indicator, RQ exactly 2.
    plain = _graph_of(complete_bipartite(n), self_loops=False)
    eigenvalues, _ = laplacian_spectrum(plain)
    expected = torch.tensor([0.0] + [1.0] * (2 * n - 2) + [2.0], dtype=F64)
    assert torch.allclose(eigenvalues, expected, atol=1e-12)
    assert math.isclose(float(rayleigh_quotient(side, plain)), 2.0, rel_tol=1e-14)
    assert math.isclose(float(eigvec_cosines(side, plain)["high"]), 1.0, rel_tol=1e-12)
    # With self-loops: rho = 2n/(n+1), still on the side indicator.
    looped = _graph_of(complete_bipartite(n), self_loops=True)
    eigenvalues, _ = laplacian_spectrum(looped)
    rho = 2 * n / (n + 1)
    expected = torch.tensor([0.0] + [n / (n + 1)] * (2 * n - 2) + [rho], dtype=F64)
    assert torch.allclose(eigenvalues, expected, atol=1e-12)
    assert math.isclose(float(rayleigh_quotient(side, looped)), rho, rel_tol=1e-12)


@pytest.mark.parametrize("self_loops", [True, False])
def test_spectrum_is_orthonormal_and_lowest_eigenvector_is_normalised_sqrt_degree(self_loops: bool) -> None:
    graph = _graph(self_loops=self_loops, weighted=True)
    eigenvalues, eigenvectors = laplacian_spectrum(graph)
    assert torch.all(eigenvalues[1:] >= eigenvalues[:-1])
    assert torch.allclose(eigenvectors.T @ eigenvectors, torch.eye(7, dtype=F64), atol=1e-12)
    assert torch.allclose(_dense_laplacian(graph) @ eigenvectors, eigenvectors * eigenvalues, atol=1e-12)
    sqrt_degree = graph.degree.sqrt()
    assert torch.allclose(eigenvectors[:, 0], sqrt_degree / sqrt_degree.norm(), atol=1e-12)
    assert abs(float(eigenvalues[0])) < 1e-12
    assert float(eigenvalues[-1]) <= 2.0 + 1e-12
    if self_loops:
        assert float(eigenvalues[-1]) < 2.0


def test_laplacian_spectrum_refuses_large_graphs() -> None:
    with pytest.raises(ValueError, match="max_nodes"):
        laplacian_spectrum(_graph(), max_nodes=6)


# --------------------------------------------------------------------------------------------------
# eigenvector cosines
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cosine_of_sqrt_degree_to_lowest_eigenvector_is_one(dtype: torch.dtype) -> None:
    graph = _graph(weighted=True, dtype=dtype)
    x = graph.degree.sqrt().unsqueeze(1) * torch.tensor([[2.0, -1.0]], dtype=dtype)
    cosines = eigvec_cosines(x, graph)
    tol = 1e-12 if dtype == F64 else 1e-5
    assert math.isclose(float(cosines["low"]), 1.0, abs_tol=tol)
    assert math.isclose(float(cosines["low_channel_mean"]), 1.0, abs_tol=tol)
    assert abs(float(cosines["high"])) < 1e-3
    assert all(v.dtype == dtype for v in cosines.values())


def test_a_repeated_eigenvalue_of_a_float32_spectrum_is_one_eigenspace_for_float64_features() -> None:
    # K_6 without self-loops: Δ has eigenvalues 0 and 6/5 (five times); every centred X lies in the top eigenspace.
    pairs = torch.combinations(torch.arange(6)).T
    graph = Graph.from_edge_index(torch.cat([pairs, pairs.flip(0)], 1), 6, self_loops=False)
    assert graph.dtype == torch.float32
    for seed in range(3):
        x = _randn(6, 2, seed=seed)
        x = x - x.mean(0)
        assert x.dtype == F64
        # Before: the float32 eigenvalues, cast to float64, were split by float64's tolerance: 0.2 to 0.7.
        assert math.isclose(float(eigvec_cosines(x, graph)["high"]), 1.0, rel_tol=1e-6)
        assert math.isclose(float(eigvec_cosines(x.float(), graph)["high"]), 1.0, rel_tol=1e-5)


def test_cosines_follow_their_definitions() -> None:
    graph = _graph(weighted=True)
    spectrum = laplacian_spectrum(graph)
    low, high = spectrum.eigenvectors[:, 0], spectrum.eigenvectors[:, -1]
    # Channel 0 along the lowest eigenvector (norm 3), channel 1 along the highest (norm 4).
    x = torch.stack([3 * low, 4 * high], dim=1)
    cosines = eigvec_cosines(x, graph, spectrum)
    assert math.isclose(float(cosines["low"]), 3 / 5, rel_tol=1e-12)
    assert math.isclose(float(cosines["high"]), 4 / 5, rel_tol=1e-12)
    assert math.isclose(float(cosines["low_channel_mean"]), 0.5, rel_tol=1e-12)
    assert math.isclose(float(cosines["high_channel_mean"]), 0.5, rel_tol=1e-12)
    # Random X: the Frobenius version is ||u^T X|| / ||X||_F, all values in [0, 1].
    x = _randn(7, 3, seed=5)
    cosines = eigvec_cosines(x, graph, spectrum)
    assert math.isclose(float(cosines["low"]), float((low @ x).norm() / x.norm()), rel_tol=1e-12)
    per_channel = (low @ x).abs() / x.norm(dim=0)
    assert math.isclose(float(cosines["low_channel_mean"]), float(per_channel.mean()), rel_tol=1e-12)
    assert all(0.0 <= float(v) <= 1.0 for v in cosines.values())
    # Passing the spectrum or letting the function compute it gives the same answer.
    recomputed = eigvec_cosines(x, graph)
    assert all(torch.allclose(recomputed[key], cosines[key], rtol=1e-10) for key in cosines)


def test_cosine_uses_whole_eigenspace_of_a_repeated_extreme_eigenvalue() -> None:
    """Odd ring: the top eigenvalue 1 - cos(2 pi 3/7) has a 2-D eigenspace (cos and sin modes)."""
    n = 7
    graph = _graph_of(ring_graph(n), self_loops=False)
    k = torch.arange(n, dtype=F64)
    for phase in (0.0, 0.4, 1.3):
        mode = torch.cos(2 * math.pi * 3 * k / n + phase)
        assert math.isclose(float(eigvec_cosines(mode, graph)["high"]), 1.0, rel_tol=1e-10)


def test_cosine_of_zero_is_nan() -> None:
    cosines = eigvec_cosines(torch.zeros(7, 2, dtype=F64), _graph())
    assert all(math.isnan(float(v)) for v in cosines.values())


def test_eigvec_cosines_input_errors() -> None:
    graph = _graph()
    spectrum = laplacian_spectrum(graph)
    x = _randn(7, 2)
    # A negative or nan tol would empty both eigenspaces and report every cosine as 0.
    for tol in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
            eigvec_cosines(x, graph, spectrum, tol=tol)
    with pytest.raises(TypeError, match="tol must be a real number"):
        eigvec_cosines(x, graph, spectrum, tol="0.1")
    # tol=0 groups exactly equal eigenvalues only; the extreme eigenvector itself always counts.
    assert math.isclose(float(eigvec_cosines(graph.degree.sqrt(), graph, spectrum, tol=0.0)["low"]), 1.0, rel_tol=1e-12)
    with pytest.raises(TypeError, match="floating-point tensor"):
        eigvec_cosines(torch.ones(7, 2, dtype=torch.long), graph, spectrum)
    with pytest.raises(TypeError, match="torch.Tensor of node features"):
        eigvec_cosines(x.tolist(), graph, spectrum)
    with pytest.raises(TypeError, match="graph must be a continuous_gnn.graph.Graph"):
        eigvec_cosines(x, None, spectrum)
    with pytest.raises(ValueError, match=r"shape \(7, channels\)"):
        eigvec_cosines(_randn(6, 2), graph, spectrum)


# --------------------------------------------------------------------------------------------------
# spectrum of W
# --------------------------------------------------------------------------------------------------


def test_half_precision_w_and_a_state_of_another_graph_are_handled() -> None:
    w = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    for dtype in (torch.float16, torch.bfloat16):  # eigvalsh has no half kernel: computed in float32
        torch.testing.assert_close(w_spectrum(w.to(dtype)), torch.tensor([1.0, 3.0]))
    graph = _graph()
    with pytest.raises(ValueError, match="7"):  # the norm diagnostic checks the state as the others do
        trajectory_diagnostics([_randn(5, 3)], [0.0], graph, metrics=["norm"])


def test_w_spectrum_of_known_matrices() -> None:
    diagonal = torch.diag(torch.tensor([3.0, -1.0, 0.5], dtype=F64))
    assert torch.allclose(w_spectrum(diagonal), torch.tensor([-1.0, 0.5, 3.0], dtype=F64))
    q, _ = torch.linalg.qr(_randn(4, 4, seed=2))
    eigenvalues = torch.tensor([-2.0, -0.5, 1.0, 4.0], dtype=F64)
    rotated = q @ torch.diag(eigenvalues) @ q.T
    assert torch.allclose(w_spectrum(rotated), eigenvalues, atol=1e-12)
    assert torch.allclose(w_spectrum([[0, 1], [1, 0]]), torch.tensor([-1.0, 1.0], dtype=F64))
    # Rounding-level asymmetry is accepted.
    assert torch.allclose(w_spectrum(rotated + 1e-9 * _randn(4, 4, seed=3)), eigenvalues, atol=1e-8)


def test_w_spectrum_errors() -> None:
    with pytest.raises(ValueError, match="square"):
        w_spectrum(torch.ones(2, 3))
    with pytest.raises(ValueError, match="square"):
        w_spectrum(torch.ones(2, 2, 2))
    with pytest.raises(ValueError, match="not symmetric.*gradient flow"):
        w_spectrum(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(TypeError):
        w_spectrum(object())


def test_w_spectrum_rejects_non_finite_and_complex_matrices() -> None:
    # nan fails every comparison, so it used to pass the symmetry test and give finite eigenvalues.
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="W contains inf or nan"):
            w_spectrum(torch.tensor([[bad, 1.0], [1.0, 0.0]]))
    with pytest.raises(TypeError, match="W must be a real matrix"):
        w_spectrum(torch.tensor([[1.0 + 1.0j, 1.0], [1.0, 0.0]]))


def test_negative_mass() -> None:
    assert math.isclose(float(negative_mass(torch.tensor([-1.0, 1.0, 2.0]))), 0.25, rel_tol=1e-7)
    assert float(negative_mass(torch.tensor([0.5, 2.0]))) == 0.0
    assert float(negative_mass(torch.tensor([-0.5, -2.0]))) == 1.0
    assert float(negative_mass(torch.zeros(3))) == 0.0
    assert math.isclose(float(negative_mass(w_spectrum(torch.diag(torch.tensor([-3.0, 1.0]))))), 0.75)
    assert negative_mass(torch.tensor([-1, 3])).dtype == F64
    assert negative_mass(torch.tensor([-1.0, 3.0])).dtype == torch.float32
    with pytest.raises(ValueError):
        negative_mass(torch.tensor([]))


def test_negative_mass_type_errors() -> None:
    with pytest.raises(TypeError, match="tensor or array-like of real numbers, got str"):
        negative_mass("a")
    with pytest.raises(TypeError, match="eigenvalues must be real"):
        negative_mass(torch.tensor([1.0 + 1.0j]))


# --------------------------------------------------------------------------------------------------
# mean average distance
# --------------------------------------------------------------------------------------------------


def _brute_force_mad(x: torch.Tensor, partners: list[list[int]]) -> float:
    means = []
    for i, js in enumerate(partners):
        js = [j for j in js if x[j].norm() > 0] if x[i].norm() > 0 else []
        if js:
            means.append(sum(1 - float(torch.cosine_similarity(x[i], x[j], dim=0)) for j in js) / len(js))
    return sum(means) / len(means)


def test_mad_identical_rows_is_zero() -> None:
    x = torch.tensor([[1.0, 2.0, -1.0]], dtype=F64).repeat(7, 1) * torch.arange(1, 8, dtype=F64).unsqueeze(1)
    assert abs(float(mean_average_distance(x, _graph()))) < 1e-12
    assert abs(float(mean_average_distance(x))) < 1e-12


def test_mad_orthogonal_and_opposite_neighbours() -> None:
    edge_index = torch.tensor([[0, 1], [1, 0]])
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=F64)
    assert math.isclose(float(mean_average_distance(orthogonal, edge_index)), 1.0, abs_tol=1e-12)
    assert math.isclose(float(mean_average_distance(orthogonal)), 1.0, abs_tol=1e-12)
    opposite = torch.tensor([[1.0, 1.0], [-2.0, -2.0]], dtype=F64)
    assert math.isclose(float(mean_average_distance(opposite)), 2.0, abs_tol=1e-12)


def test_mad_hand_example_and_zero_rows() -> None:
    # Path 0-1-2 with x = e1, e1, e2 plus an isolated zero row 3 joined to 2.
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=F64)
    one_way = torch.tensor([[0, 1, 2], [1, 2, 3]])
    edge_index = torch.cat([one_way, one_way.flip(0)], dim=1)
    # Per node over neighbours: 0 -> 0, 1 -> (0 + 1)/2, 2 -> 1 (the zero row is dropped); mean 0.5.
    assert math.isclose(float(mean_average_distance(x, edge_index)), 0.5, abs_tol=1e-12)
    # All pairs: 0 -> (0 + 1)/2, 1 -> (0 + 1)/2, 2 -> (1 + 1)/2; mean 2/3.
    assert math.isclose(float(mean_average_distance(x)), 2 / 3, abs_tol=1e-12)


def test_mad_counts_repeated_neighbours_and_is_nan_without_pairs() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=F64)
    # Node 0 lists neighbour 1 twice and neighbour 2 once: (1 + 1 + 0)/3; nodes 1, 2: 1 and 0.
    edge_index = torch.tensor([[0, 0, 0, 1, 2], [1, 1, 2, 0, 0]])
    assert math.isclose(float(mean_average_distance(x, edge_index)), (2 / 3 + 1 + 0) / 3, rel_tol=1e-12)
    assert math.isnan(float(mean_average_distance(x[:1])))
    assert math.isnan(float(mean_average_distance(x, torch.empty(2, 0, dtype=torch.long))))


def test_mad_input_errors() -> None:
    # A nan row has no positive norm and used to be dropped like a zero row: MAD came out as 1.0.
    with pytest.raises(ValueError, match="x contains inf or nan"):
        mean_average_distance(torch.tensor([[1.0, 0.0], [float("nan"), float("nan")], [0.0, 1.0]]))
    path = Graph.from_edge_index(torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), 3, dtype=F64)
    with pytest.raises(ValueError, match=r"shape \(3, channels\) for a graph of 3 nodes; got \(10, 2\)"):
        mean_average_distance(_randn(10, 2), path)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        mean_average_distance(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        mean_average_distance([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="shape"):
        mean_average_distance(_randn(3))


def test_mad_matches_brute_force_and_ignores_self_loops() -> None:
    x = _randn(7, 3, seed=4)
    edges = _irregular_edges()
    neighbours = [[int(j) for j in edges[1][edges[0] == i]] for i in range(7)]
    everyone = [[j for j in range(7) if j != i] for i in range(7)]
    with_loops = Graph.from_edge_index(edges, 7, self_loops=True, dtype=F64)
    assert math.isclose(float(mean_average_distance(x, with_loops)), _brute_force_mad(x, neighbours), rel_tol=1e-12)
    assert math.isclose(float(mean_average_distance(x, edges)), _brute_force_mad(x, neighbours), rel_tol=1e-12)
    assert math.isclose(float(mean_average_distance(x)), _brute_force_mad(x, everyone), rel_tol=1e-12)
    value = float(mean_average_distance(x.float()))
    assert math.isclose(value, _brute_force_mad(x, everyone), rel_tol=1e-5)


# --------------------------------------------------------------------------------------------------
# trajectories
# --------------------------------------------------------------------------------------------------


def test_trajectory_diagnostics_per_state_values(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _graph(weighted=True)
    x = _randn(7, 3, seed=6)
    kernel = graph.degree.sqrt().unsqueeze(1).repeat(1, 3)
    states = torch.stack([x, 2 * x, kernel])
    times = torch.tensor([0.0, 0.5, 1.0])
    calls = []
    original = trajectory_module.laplacian_spectrum
    monkeypatch.setattr(trajectory_module, "laplacian_spectrum", lambda g: calls.append(1) or original(g))

    metrics = ("dirichlet", "rayleigh", "norm", "mad", "cos_low", "cos_high")
    records = trajectory_diagnostics(states, times, graph, metrics)
    assert len(calls) == 1  # one eigendecomposition per trajectory
    assert [r["time"] for r in records] == [0.0, 0.5, 1.0]
    for record, state in zip(records, states):
        assert set(record) == {"time", *metrics}
        assert all(isinstance(value, float) for value in record.values())
        assert math.isclose(record["dirichlet"], float(dirichlet_energy(state, graph)), rel_tol=1e-12)
        assert math.isclose(record["rayleigh"], float(rayleigh_quotient(state, graph)), rel_tol=1e-12)
        assert math.isclose(record["norm"], float(state.norm()), rel_tol=1e-12)
        assert math.isclose(record["mad"], float(mean_average_distance(state, graph)), rel_tol=1e-12, abs_tol=1e-12)
    # Scaling by 2 multiplies the energy by 4 and keeps the RQ; the kernel state has zero energy, cos_low 1.
    assert math.isclose(records[1]["dirichlet"], 4 * records[0]["dirichlet"], rel_tol=1e-12)
    assert math.isclose(records[1]["rayleigh"], records[0]["rayleigh"], rel_tol=1e-12)
    assert abs(records[2]["dirichlet"]) < 1e-12 and math.isclose(records[2]["cos_low"], 1.0, rel_tol=1e-12)
    # A list of states and default times (step indices) give the same values.
    as_list = trajectory_diagnostics(list(states), None, graph, metrics)
    assert [r["time"] for r in as_list] == [0.0, 1.0, 2.0]
    assert all(a[m] == b[m] for a, b in zip(records, as_list) for m in metrics)


def test_trajectory_diagnostics_errors() -> None:
    graph = _graph()
    states = _randn(2, 7, 3)
    with pytest.raises(ValueError, match="known: .*dirichlet"):
        trajectory_diagnostics(states, [0.0, 1.0], graph, ("dirichlet", "nonsense"))
    defaults = trajectory_diagnostics(states, [0.0, 1.0], graph)
    assert all(set(record) == {"time", *DEFAULT_METRICS} for record in defaults)
    with pytest.raises(ValueError, match="2 states but 3 times"):
        trajectory_diagnostics(states, [0.0, 1.0, 2.0], graph)
    with pytest.raises(ValueError, match="num_times"):
        trajectory_diagnostics(_randn(7, 3), None, graph)


def test_every_registered_diagnostic_runs() -> None:
    graph = _graph()
    records = trajectory_diagnostics(_randn(2, 7, 3), None, graph, tuple(DIAGNOSTICS))
    assert all(math.isfinite(value) for record in records for value in record.values())


@pytest.mark.parametrize(("dtype", "factors"), [(F64, (1e160, 1e-170)), (torch.float32, (1e20, 1e-30))])
def test_scale_free_diagnostics_hold_for_finite_states_of_any_magnitude(dtype, factors) -> None:
    # RQ, MAD and the cosines depend on the direction of X only; the energy and norm scale as they should.
    graph = _graph(dtype=dtype)
    x = _randn(7, 3, seed=4, dtype=dtype)
    reference = {"rq": rayleigh_quotient(x, graph), "mad": mean_average_distance(x, graph),
                 "mad_all": mean_average_distance(x), **eigvec_cosines(x, graph)}
    energy, norm = dirichlet_energy(x, graph), trajectory_module.DIAGNOSTICS["norm"](x, graph, {})
    for factor in factors:
        scaled = x * factor
        assert bool(scaled.isfinite().all()) and bool((scaled != 0).any())
        got = {"rq": rayleigh_quotient(scaled, graph), "mad": mean_average_distance(scaled, graph),
               "mad_all": mean_average_distance(scaled), **eigvec_cosines(scaled, graph)}
        for key, value in reference.items():
            torch.testing.assert_close(got[key], value, msg=f"{key} at {factor:g}")
        big = torch.finfo(dtype).max
        expected_energy = float(energy) * factor * factor  # inf past float64, as the energy should be past dtype
        if expected_energy < big:
            assert float(dirichlet_energy(scaled, graph)) == pytest.approx(expected_energy, rel=1e-4)
        else:
            assert dirichlet_energy(scaled, graph) == math.inf  # beyond the dtype: inf, never nan
        if float(norm) * factor < big:
            assert float(trajectory_module.DIAGNOSTICS["norm"](scaled, graph, {})) == pytest.approx(
                float(norm) * factor, rel=1e-4)


def test_non_finite_states_give_nan_cosines_not_a_partial_mean() -> None:
    graph = _graph()
    x = _randn(7, 3, seed=5)
    x[3, 1] = float("nan")
    assert all(math.isnan(float(value)) for value in eigvec_cosines(x, graph).values())
    assert math.isnan(float(dirichlet_energy(x, graph))) and math.isnan(float(rayleigh_quotient(x, graph)))
    with pytest.raises(ValueError, match="eigenvalues contain inf or nan"):
        negative_mass(torch.tensor([float("nan"), 1.0]))


def test_trajectory_diagnostics_refuse_empty_and_unordered_input() -> None:
    graph = _graph()
    states = _randn(3, 7, 3)
    with pytest.raises(ValueError, match="the trajectory has no states"):
        trajectory_diagnostics([], [], graph)
    with pytest.raises(ValueError, match="the trajectory has no states"):
        trajectory_diagnostics(torch.empty(0, 7, 3, dtype=F64), None, graph)
    with pytest.raises(ValueError, match="no diagnostics asked for"):
        trajectory_diagnostics(states, None, graph, [])
    for times in ([1.0, 1.0, 2.0], [0.0, float("nan"), 1.0], [0.0, 2.0, 1.0]):
        with pytest.raises(ValueError, match="times must be finite and strictly increasing"):
            trajectory_diagnostics(states, times, graph)
    with pytest.raises(TypeError, match="times must be a sequence of floats"):
        trajectory_diagnostics(states[:1], 0.5, graph)


def test_laplacian_radius_is_exact_on_small_graphs_and_zero_without_a_laplacian() -> None:
    from continuous_gnn.studies import laplacian_radius

    n = 60
    path = Graph.from_edge_index(path_graph(n).edge_index, n, dtype=F64)
    exact = float(torch.linalg.eigvalsh(_dense_laplacian(path))[-1])
    assert laplacian_radius(path) == pytest.approx(exact, abs=1e-12)  # power iteration stopped at 1.3297 here
    lonely = Graph.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 1, dtype=F64)
    assert laplacian_radius(lonely) == 0.0


def test_the_dirichlet_energy_of_a_huge_finite_state_is_a_number_not_nan():
    # Channels along √d̃ have forms that round just below 0; scaled back by 1e308 they were -inf, and the sum nan.
    graph = Graph.from_edge_index(torch.tensor([[0, 1, 1, 2, 2, 3, 3, 0, 0, 2], [1, 0, 2, 1, 3, 2, 0, 3, 2, 0]]), 4,
                                  dtype=torch.float64)
    root = graph.degree.sqrt()
    noise = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.stack([root, 1.3 * root, 0.7 * root, noise], dim=1) * 1e154
    channels = channel_dirichlet_energies(x, graph)
    assert bool((channels >= 0).all()) and not bool(channels.isnan().any())
    assert not math.isnan(float(dirichlet_energy(x, graph)))
    assert float(dirichlet_energy(x / 1e154, graph)) == pytest.approx(float(channel_dirichlet_energies(x / 1e154,
                                                                                                      graph)[3]), abs=1e-12)


def test_a_listed_self_loop_keeps_its_weight_so_one_of_weight_zero_leaves_the_top_eigenvalue_at_two() -> None:
    # The exception the docstrings state: self_loops=True adds 1 only where the edge list has no loop (as
    # PyG's GCNConv), so a listed loop of weight 0 leaves a bipartite pair's spectrum at 2.
    pair = torch.tensor([[0, 1, 0, 1], [1, 0, 0, 1]])
    zero_loops = Graph.from_edge_index(pair, 2, torch.tensor([1.0, 1.0, 0.0, 0.0]), self_loops=True, dtype=F64)
    unit_loops = Graph.from_edge_index(pair[:, :2], 2, torch.tensor([1.0, 1.0]), self_loops=True, dtype=F64)
    assert float(laplacian_spectrum(zero_loops).eigenvalues[-1]) == pytest.approx(2.0, abs=1e-12)
    assert float(laplacian_spectrum(unit_loops).eigenvalues[-1]) == pytest.approx(1.0, abs=1e-12)


def test_laplacian_radius_above_the_exact_size_is_a_lower_bound_close_to_the_radius(monkeypatch) -> None:
    # The power-iteration branch, run on a graph small enough to check against the dense eigenvalues.
    from continuous_gnn.data import contextual_sbm
    from continuous_gnn.studies import spectra

    graph = Graph.from_data(contextual_sbm(400, 3, 0.2, 8.0, 4, 1.0, seed=1), dtype=F64)
    exact = spectra.laplacian_radius(graph)
    assert exact == pytest.approx(float(torch.linalg.eigvalsh(_dense_laplacian(graph))[-1]), abs=1e-12)
    monkeypatch.setattr(spectra, "EXACT_RADIUS_NODES", 100)
    estimate = spectra.laplacian_radius(graph)
    assert estimate <= exact + 1e-12 and estimate == pytest.approx(exact, rel=1e-3)
    assert spectra.laplacian_radius(graph, iterations=1) < estimate  # a random start is far below the radius
