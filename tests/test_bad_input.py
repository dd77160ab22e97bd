"""Bad input to the Python API: a clear ValueError or TypeError naming the problem, never a wrong answer."""

from __future__ import annotations

import pytest
import torch

from continuous_gnn import Adaptive, Adjoint, ContinuousGNN, Graph
from continuous_gnn.energies import AllenCahnEnergy, AttentionDirichletEnergy, EnergySchedule, EnergySum, GRAFFEnergy
from continuous_gnn.fields import AttentionDiffusion, GradientFlow, SecondOrderFlow
from continuous_gnn.nn import FlowConv, GRAFFConv, SparseInputLinear
from continuous_gnn.nn.encoders import ResidualMLPEncoder
from continuous_gnn.ode.regularizers import integrate_regularized

EDGES = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])


def test_edge_weights_that_overflow_the_graphs_dtype_are_refused():
    with pytest.raises(ValueError, match=r"edge weights overflow torch.float32 .*pass dtype=torch.float64"):
        Graph.from_edge_index(EDGES, 3, torch.tensor([1e39, 1e39, 1.0, 1.0], dtype=torch.float64))
    # Each weight fits, but node 1's degree (their sum) does not: its row of the operator would be zeros.
    with pytest.raises(ValueError, match=r"a node's degree .* overflows torch.float32"):
        Graph.from_edge_index(EDGES, 3, torch.full((4,), 3e38))
    graph = Graph.from_edge_index(EDGES, 3, torch.full((4,), 3e38), dtype=torch.float64)
    assert bool(torch.isfinite(graph.edge_weight).all())
    # A positive weight that rounds to 0 dropped its edge from the operator without a word.
    with pytest.raises(ValueError, match=r"positive edge weights underflow to 0 in torch.float32 .*dtype=torch.float64"):
        Graph.from_edge_index(EDGES, 3, torch.tensor([1e-50, 1e-50, 1.0, 1.0], dtype=torch.float64))
    kept = Graph.from_edge_index(EDGES, 3, torch.tensor([1e-50, 1e-50, 1.0, 1.0], dtype=torch.float64),
                                 dtype=torch.float64)
    assert bool((kept.edge_weight > 0).all())
    assert Graph.from_edge_index(EDGES, 3, torch.tensor([0.0, 0.0, 1.0, 1.0])).num_nodes == 3  # a zero stays allowed


@pytest.mark.parametrize("build, name", [
    (lambda: Graph.from_edge_index(EDGES, 3, self_loops="no"), "self_loops"),
    (lambda: Graph.from_edge_index(EDGES, 3, symmetrize="no"), "symmetrize"),
    (lambda: GRAFFEnergy(4, source="no"), "source"),
    (lambda: GRAFFEnergy(4, w_learnable="no"), "w_learnable"),
    (lambda: GRAFFEnergy(4, allow_asymmetric=1), "allow_asymmetric"),
    (lambda: AllenCahnEnergy(4, learnable="no"), "learnable"),
    (lambda: AttentionDirichletEnergy(4, rate="no"), "rate"),
    (lambda: AttentionDiffusion(4, source="no"), "source"),
    (lambda: GradientFlow(GRAFFEnergy(4), normalize="no"), "normalize"),
    (lambda: SecondOrderFlow(GRAFFEnergy(4), learnable="no"), "learnable"),
    (lambda: ContinuousGNN(3, 4, 2, GRAFFEnergy(4), normalize_field="no"), "normalize_field"),
    (lambda: ContinuousGNN(3, 4, 2, GRAFFEnergy(4), detach_source="no"), "detach_source"),
    (lambda: GRAFFConv(4, cached="no"), "cached"),
    (lambda: FlowConv(GRAFFEnergy(4), cached=1), "cached"),
    (lambda: integrate_regularized(lambda t, x: -x, torch.ones(2), 1.0, kinetic="no"), "kinetic"),
])
def test_a_flag_that_is_not_a_bool_is_refused(build, name):
    # "no" is a truthy string: taken as it is, it would turn the option on.
    with pytest.raises(TypeError, match=f"{name} must be True or False, got"):
        build()


def test_a_graff_layer_refuses_an_energy_of_another_width():
    with pytest.raises(ValueError, match=r"the energy has 4 channels but channels=8; build it with 8 channels"):
        GRAFFConv(8, energy=GRAFFEnergy(4))


def test_a_regulariser_probe_must_be_finite():
    probe = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="probe must be finite"):
        integrate_regularized(lambda t, x: -x, torch.ones(2), 1.0, jacobian=True, probe=probe)


@pytest.mark.parametrize("method, options, message", [
    ("dopri5", {"safety": float("nan")}, r"options\['safety'\] must be a number in \(0, 1\], got nan"),
    ("dopri5", {"ifactor": 0.5}, r"options\['ifactor'\] must be a number in \[1, inf\), got 0.5"),
    ("dopri5", {"dfactor": 0.0}, r"options\['dfactor'\] must be a number in \(0, 1\]"),
    ("dopri5", {"first_step": -1}, r"options\['first_step'\] must be a number in \(0, inf\)"),
    ("dopri5", {"max_step": 0.0}, r"options\['max_step'\] must be a number in \(0, inf\]"),
    ("dopri5", {"min_step": 1.0, "max_step": 0.5}, r"options\['min_step'\] = 1.0 exceeds options\['max_step'\]"),
    ("dopri5", {"norm": "l2"}, r"options\['norm'\] must be a callable"),
    ("implicit_adams", {"max_order": 0}, r"options\['max_order'\] must be an integer in \[1, 12\]"),
    ("explicit_adams", {"max_order": 100}, r"options\['max_order'\] must be an integer in \[1, 12\]"),
    ("implicit_adams", {"max_iters": 0}, r"options\['max_iters'\] must be an integer"),
    ("euler", {"perturb": "yes"}, r"options\['perturb'\] must be True or False"),
    ("scipy_solver", {"solver": "XYZ"}, r"options\['solver'\] must be one of RK45, RK23"),
])
def test_solver_option_values_are_checked_when_the_settings_are_built(method, options, message):
    # Each failed inside torchdiffeq or scipy at solve time, or ended in a "dt underflow" that blamed the problem.
    from continuous_gnn.ode.methods import check_options

    with pytest.raises(ValueError, match=message):
        check_options(method, options)


def test_a_min_step_past_the_end_is_refused():
    from continuous_gnn import integrate
    from continuous_gnn.ode import Adaptive

    x0 = torch.ones(1, 1, dtype=torch.float64)
    # It forced one step to t = 10 and returned -227 for exp(-1).
    with pytest.raises(ValueError, match=r"options\['min_step'\] = 10 is not below t_end = 1"):
        integrate(lambda t, x: -x, x0, 1.0, solver=Adaptive("dopri5", options={"min_step": 10.0}))
    final = integrate(lambda t, x: -x, x0, 1.0, solver=Adaptive("dopri5", options={"min_step": 0.01})).final
    assert abs(float(final) - float(torch.tensor(-1.0, dtype=torch.float64).exp())) < 1e-3


def test_an_adaptive_method_refuses_a_float16_state():
    from continuous_gnn import integrate

    with pytest.raises(TypeError, match=r"cannot step a float16 state"):
        integrate(lambda t, x: -x, torch.ones(2, 2, dtype=torch.float16), 1.0, method="dopri5")
    assert integrate(lambda t, x: -x, torch.ones(2, 2, dtype=torch.float16), 1.0, method="euler",
                     step_size=0.5).final.dtype == torch.float16


@pytest.mark.parametrize("save_at", [0.5, torch.tensor(0.5), "0.5", [None]])
def test_save_at_must_be_a_sequence_of_times(save_at):
    from continuous_gnn import integrate

    with pytest.raises(TypeError, match=r"save_at must be a sequence of times .*for one time write \[t\]"):
        integrate(lambda t, x: -x, torch.ones(2), 1.0, method="euler", step_size=0.25, save_at=save_at)


def test_a_step_count_needs_a_positive_step():
    from continuous_gnn.ode.grid import count_steps

    for step in (0.0, -0.1):
        with pytest.raises(ValueError, match="step_size must be positive"):
            count_steps(1.0, step)


def test_the_model_checks_its_features_before_the_encoder():
    from torch_geometric.data import Data

    model = ContinuousGNN(5, 4, 3, GRAFFEnergy(4))
    edges = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    with pytest.raises(ValueError, match=r"x must have shape \(num_nodes, 5\), the model's in_channels; got \(4, 6\)"):
        model(torch.randn(4, 6), edges)
    with pytest.raises(ValueError, match=r"got \(1, 4, 5\)"):  # it was taken for a graph of one node
        model(torch.randn(1, 4, 5), edges)
    with pytest.raises(TypeError, match=r"x is torch.float64 but the model's parameters are torch.float32; convert "
                                        r"with x.to\(torch.float32\) or model.to\(torch.float64\)"):
        model(torch.randn(4, 5, dtype=torch.float64), edges)
    with pytest.raises(TypeError, match=r"x is torch.int64 .* convert with x.to\(torch.float32\)$"):
        model(torch.ones(4, 5, dtype=torch.int64), edges)
    with pytest.raises(ValueError, match=r"the Data object has no node features \(data.x\)"):
        model(Data(edge_index=edges, num_nodes=4))
    assert model(torch.randn(4, 5), edges).shape == (4, 3)


def test_energies_check_the_dtype_of_their_buffers_and_of_the_graph():
    from continuous_gnn.energies import PLaplacianEnergy

    graph = Graph.from_edge_index(EDGES, 3)
    x64 = torch.randn(3, 4, dtype=torch.float64)
    fixed = GRAFFEnergy(4, w="sum", w_learnable=False, omega="zero", source=False)  # buffers, no parameters
    with pytest.raises(TypeError, match=r"the features are torch.float64 but GRAFFEnergy's parameters are "
                                        r"torch.float32"):
        fixed.gradient(x64, graph.to(dtype=torch.float64))
    with pytest.raises(TypeError, match=r"the features are torch.float64 but the graph operator is torch.float32"):
        PLaplacianEnergy().gradient(x64, graph)  # it mixed float64 features into a float32 operator


def test_a_check_of_the_initial_state_names_it_x0():
    with pytest.raises(ValueError, match=r"^x0 has 2 rows but the graph has 3 nodes$"):
        GRAFFEnergy(4).gradient(torch.randn(3, 4), Graph.from_edge_index(EDGES, 3), torch.randn(2, 4))
    # a layer names it by its own argument, x_0, and compares it with x before it builds the graph
    with pytest.raises(ValueError, match=r"^x_0 has shape \(2, 4\) but x has \(3, 4\); both hold features of"):
        GRAFFConv(4)(torch.randn(3, 4), torch.randn(2, 4), EDGES)


def test_an_adjacency_of_another_size_than_the_features_is_refused():
    model = ContinuousGNN(4, 4, 3, GRAFFEnergy(4))
    adj = torch.sparse_coo_tensor(EDGES, torch.ones(4), (3, 3), check_invariants=True)
    with pytest.raises(ValueError, match=r"adj_t has size \(3, 3\) but x has 4 rows"):
        model(torch.randn(4, 4), adj)


def test_the_graph_cache_sees_an_edge_index_changed_in_place():
    torch.manual_seed(0)
    model = ContinuousGNN(4, 4, 3, GRAFFEnergy(4)).eval()
    x = torch.randn(4, 4)
    edges = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    before = model(x, edges)
    edges.copy_(torch.tensor([[0, 1, 0, 3, 2, 3], [1, 0, 3, 0, 3, 2]]))
    assert torch.equal(model(x, edges), model(x, edges.clone()))
    assert not torch.equal(model(x, edges), before)


def test_diagnostics_refuse_a_partial_spectrum_a_bad_tolerance_and_float_indices():
    from continuous_gnn.diagnostics import eigvec_cosines, laplacian_spectrum, mean_average_distance, w_spectrum

    graph = Graph.from_edge_index(EDGES, 3, dtype=torch.float64)
    x = torch.randn(3, 2, dtype=torch.float64)
    spectrum = laplacian_spectrum(graph)
    with pytest.raises(ValueError, match=r"the whole spectrum of the graph \(3 nodes\).*got \(2,\) and \(3, 2\)"):
        eigvec_cosines(x, graph, (spectrum.eigenvalues[:2], spectrum.eigenvectors[:, :2]))
    with pytest.raises(ValueError, match="the whole spectrum"):
        eigvec_cosines(x, graph, (spectrum.eigenvectors, spectrum.eigenvalues))
    asymmetric = torch.tensor([[1.0, 5.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="tol must be a finite number >= 0, got nan"):
        w_spectrum(asymmetric, tol=float("nan"))  # it passed any W as symmetric
    with pytest.raises(TypeError, match="tol must be a real number"):
        w_spectrum(asymmetric, tol="a")
    with pytest.raises(TypeError, match="edge_index must hold integer node indices"):
        mean_average_distance(x, torch.tensor([[0.9, 1.7], [1.7, 0.9]]))  # truncated to [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="edge_index refers to node -1"):
        mean_average_distance(x, torch.tensor([[0, -1], [-1, 0]]))


def test_study_helpers_refuse_what_they_would_get_wrong():
    from continuous_gnn.studies.homophily import homophily_min_nodes
    from continuous_gnn.studies.spectra import euler_frequencies, laplacian_radius

    with pytest.raises(ValueError, match="lam_min = 2.0 exceeds lam_max = -1.0"):
        euler_frequencies(2.0, -1.0, 1.5, 0.5)
    for args in ((float("nan"), 1.0, 1.5, 0.5), (-1.0, 1.0, 1.5, float("inf"))):
        with pytest.raises(ValueError, match="must be finite"):
            euler_frequencies(*args)
    with pytest.raises(TypeError, match="tau must be a real number"):
        euler_frequencies(-1.0, 1.0, 1.5, "0.5")
    graph = Graph.from_edge_index(EDGES, 3)
    with pytest.raises(ValueError, match="iterations must be a positive integer, got 0"):
        laplacian_radius(graph, iterations=0)  # it returned the Rayleigh quotient of the random start
    with pytest.raises(TypeError, match="graph must be a continuous_gnn.Graph"):
        laplacian_radius(EDGES)
    with pytest.raises(TypeError, match="homophilies must be a sequence"):
        homophily_min_nodes(0.5)
    # It stepped n by one, about C * avg_degree steps: 1e9 never ended.
    assert homophily_min_nodes([0.5], avg_degree=1e9) == 2_500_000_005
    assert homophily_min_nodes([0.1, 0.9], num_classes=5, avg_degree=8) == 41


def test_an_omega_value_for_a_style_that_ignores_it_is_refused():
    with pytest.raises(ValueError, match=r"applies to the style 'const' \(Omega = cI\), not to 'diag'"):
        GRAFFEnergy(4, omega="diag", omega_value=5.0)
    assert GRAFFEnergy(4, omega="const", omega_value=5.0).Omega.value == 5.0
    assert GRAFFEnergy(4, omega="const").Omega.value == 1.0


@pytest.mark.parametrize("build, error, message", [
    (lambda: EnergySum(GRAFFEnergy(4)), TypeError,
     r"EnergySum takes a list of energies, got GRAFFEnergy; for one energy write EnergySum\(\[energy\]\)"),
    (lambda: EnergySum([GRAFFEnergy(4)], 2.0), TypeError,
     "EnergySum weights must be a list of numbers"),
    (lambda: EnergySum([GRAFFEnergy(4)], [True]), TypeError,
     "EnergySum weights must be a list of numbers"),
    (lambda: EnergySum.of(GRAFFEnergy(4), GRAFFEnergy(4), weights=[1.0]), ValueError,
     "EnergySum.of got 2 energies but 1 weights"),
    (lambda: EnergySchedule(GRAFFEnergy(4), 1.0), TypeError,
     "EnergySchedule takes a list of energies"),
    (lambda: Adjoint("dopri5", step_size=0.1), ValueError,
     r"the adjoint's step_size \(Adjoint\(step_size=...\), or the keyword adjoint_step_size\) applies to fixed-grid"),
    (lambda: Adjoint("rk4", rtol=1e-3), ValueError, r"the adjoint's rtol/atol \(Adjoint\(rtol=..., atol=...\)"),
    (lambda: Adjoint("rk4").for_solver(Adaptive("dopri5")), ValueError,
     r"needs a step size after an adaptive forward solve.*Adjoint\(step_size=...\)"),
    (lambda: FlowConv(GRAFFEnergy(4), adjoint="yes"), TypeError, r"adjoint must be True, False or an Adjoint\(...\)"),
    (lambda: ContinuousGNN(3, 4, 2, GRAFFEnergy(4), dropout="0.1"), TypeError, "dropout must be a number in"),
    (lambda: AllenCahnEnergy(3, well=1e300), ValueError, "well must be a finite number > 0"),
    (lambda: SparseInputLinear(0, 4), ValueError,
     "in_features must be a positive integer, got 0"),
    (lambda: ResidualMLPEncoder(0, 4), ValueError,
     "in_channels must be a positive integer, got 0"),
    (lambda: Graph.from_edge_index(EDGES, 3).propagate([[1.0]]), TypeError, "node features must be a tensor"),
])
def test_constructors_and_calls_name_the_bad_argument(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_a_spectrum_size_limit_must_be_a_positive_integer():
    from continuous_gnn.diagnostics import laplacian_spectrum

    with pytest.raises(TypeError, match="max_nodes must be a positive integer, got '10'"):
        laplacian_spectrum(Graph.from_edge_index(EDGES, 3), max_nodes="10")


def test_attention_fields_layers_and_diagnostics_check_what_they_are_given():
    from continuous_gnn.diagnostics import trajectory_diagnostics

    graph = Graph.from_edge_index(EDGES, 3, dtype=torch.float64)
    x64 = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"the features are torch.float64 but AttentionDiffusion's parameters are "
                                        r"torch.float32"):
        AttentionDiffusion(4).bind(graph, x64)
    with pytest.raises(TypeError, match="metrics must be a sequence of names"):
        trajectory_diagnostics([x64], None, graph, metrics=None)


def test_numpy_scalars_are_numbers_everywhere_a_number_is_taken():
    # np.float32 and np.int64 were refused by some constructors ("must be a positive integer, got np.int64(8)")
    # and accepted by others (FixedGrid); a NumPy scalar is a number, and is stored as the Python one.
    import numpy as np

    from continuous_gnn.energies import PLaplacianEnergy

    model = ContinuousGNN(np.int64(3), np.int64(8), np.int64(2), GRAFFEnergy(np.int64(8)), t_end=np.float32(1.0),
                          dropout=np.float32(0.25))
    assert (model.in_channels, model.t_end, model.dropout) == (3, 1.0, 0.25)
    assert type(model.in_channels) is int and type(model.dropout) is float
    assert GRAFFConv(np.int64(4), step_size=np.float32(0.5)).step_size == 0.5
    assert AllenCahnEnergy(np.int64(4), repulsion=np.float32(1.0)).initial == (1.0, 1.0)
    assert PLaplacianEnergy(p=np.float32(1.5), eps=np.float64(0.1)).p == 1.5
    assert SecondOrderFlow(GRAFFEnergy(4), damping=np.float32(0.5)).initial_damping == 0.5
    assert type(GRAFFEnergy(np.int64(4)).channels) is int
    with pytest.raises(ValueError, match="channels must be a positive integer, got 2.0"):
        GRAFFEnergy(2.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gets_one_message_with_the_fix_up_front(dtype):
    # Each message used to suggest a conversion that the next check refused (energy.to(float16), then
    # graph.to(dtype=float16), which takes float32 or float64 only).
    graph = Graph.from_edge_index(EDGES, 3)
    x = torch.randn(3, 4).to(dtype)
    for flow in (GradientFlow(GRAFFEnergy(4).to(dtype)), GradientFlow(GRAFFEnergy(4)), AttentionDiffusion(4)):
        with pytest.raises(TypeError, match=f"are {dtype}, but the graph operator's sparse products take float32 or "
                                            "float64 only, so half precision .* use x.float"):
            flow.bind(graph, x)(torch.zeros(()), x)
    model = ContinuousGNN(5, 4, 2, GRAFFEnergy(4))
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(TypeError, match="and run outside autocast"):
        model(torch.randn(3, 5), EDGES)


def test_early_errors_that_used_to_come_from_deep_inside():
    from continuous_gnn.data import edge_homophily
    from continuous_gnn.diagnostics import trajectory_diagnostics
    from continuous_gnn.ode.regularizers import regularized_forward

    with pytest.raises(ValueError, match="dropout must be a number in \\[0, 1\\), got 1.5"):
        ResidualMLPEncoder(5, 8, dropout=1.5)  # torch's own dropout error came at the first forward pass
    with pytest.raises(ValueError, match="takes features of shape \\(num_nodes, 5\\), got \\(4, 6\\)"):
        SparseInputLinear(5, 8)(torch.randn(4, 6).to_sparse_csr())
    with pytest.raises(TypeError, match="activation=ReLU is a class; pass an instance \\(ReLU\\(\\)\\)"):
        ContinuousGNN(5, 4, 2, GRAFFEnergy(4), activation=torch.nn.ReLU)
    graph = Graph.from_edge_index(EDGES, 3)
    with pytest.raises(TypeError, match="regularized_forward takes a ContinuousGNN"):
        regularized_forward(torch.nn.Linear(3, 3), torch.randn(3, 3), graph)
    solution = _small_solution(graph)
    with pytest.raises(TypeError, match="states is a Solution; pass its states and times"):
        trajectory_diagnostics(solution, solution.times, graph)
    assert len(trajectory_diagnostics(solution.states, solution.times, graph)) == 2
    with pytest.raises(ValueError, match="edge_index names nodes in 0..1, but y labels nodes 0..0"):
        edge_homophily(torch.tensor([[0, 1], [1, 0]]), torch.tensor([0]))
    with pytest.raises(TypeError, match="y must be an integer tensor"):
        edge_homophily(torch.tensor([[0, 1], [1, 0]]), torch.tensor([0.0, 1.0]))


def _small_solution(graph):
    from continuous_gnn import GradientFlow, integrate

    x0 = torch.randn(3, 4)
    return integrate(GradientFlow(GRAFFEnergy(4)).bind(graph, x0), x0, 1.0, method="euler", step_size=1.0)


def test_messages_that_named_the_wrong_cause_or_the_failing_method():
    from continuous_gnn import FixedGrid, IntegrationError, integrate

    with pytest.raises(ValueError, match="^1 edge\\(s\\) are listed more than once, in one direction only, and a "
                                         "repeated edge's weights are summed"):
        Graph.from_edge_index(torch.tensor([[0, 0, 1], [1, 1, 0]]), 2)  # no weights given, yet "not symmetric"
    with pytest.raises(ValueError, match="^the graph is directed, but"):  # its repeats are not the cause
        Graph.from_edge_index(torch.tensor([[0, 0, 1], [1, 1, 2]]), 3)
    with pytest.raises(ValueError, match="^the edge weights are not symmetric"):
        Graph.from_edge_index(torch.tensor([[0, 1], [1, 0]]), 2, torch.tensor([1.0, 2.0]))
    with pytest.warns(UserWarning, match="did not converge"), pytest.raises(IntegrationError) as info:
        integrate(lambda t, x: -1e4 * x, torch.ones(3), 1.0, solver=FixedGrid("implicit_adams", step_size=0.1))
    advice = str(info.value).split("Fix: ")[1]
    assert "implicit_adams" not in advice and "'rk4' with a smaller step" in advice
