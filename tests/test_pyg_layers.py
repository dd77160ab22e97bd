"""The PyG layers: every Adj form gives the edge_index output, a PyG Sequential model trains, torch.compile runs
them, and the step layers stack into their flow."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from torch.nn import functional as F
from torch_geometric import EdgeIndex
from torch_geometric.nn import Sequential

import continuous_gnn as cg
from continuous_gnn.data import contextual_sbm
from continuous_gnn.energies import AttentionDirichletEnergy, Energy, GRAFFEnergy
from continuous_gnn.nn import ACMPConv, DirichletConv, EnergyConv, FlowConv, GRAFFConv, GRANDConv, PLaplacianConv

N, D = 30, 6


def _data():
    return contextual_sbm(N, 2, 0.7, 4.0, D, 1.0, seed=0)


def _layers() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "graff": GRAFFConv(D, step_size=0.5),
        "grand": GRANDConv(D, step_size=0.5, heads=2),
        "acmp": ACMPConv(D, step_size=0.1),
        "p_laplacian": PLaplacianConv(step_size=0.2, p=1.5, eps=0.1),
        "dirichlet": DirichletConv(step_size=0.5),
    }


def _adjacency_forms(edge_index: torch.Tensor, weight: torch.Tensor) -> dict[str, object]:
    coo = torch.sparse_coo_tensor(edge_index.flip(0), weight, (N, N), check_invariants=True)
    return {
        "sparse_coo": coo,
        "sparse_csr": coo.coalesce().to_sparse_csr(),
        "edge_index_class": EdgeIndex(edge_index, sparse_size=(N, N)),
    }


@pytest.mark.parametrize("name", list(_layers()))
def test_every_adjacency_form_gives_the_edge_index_output(name):
    data = _data()
    layer = _layers()[name].eval()
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(1))
    weight = torch.ones(data.edge_index.size(1))
    expected = layer(x, x, data.edge_index)
    torch.testing.assert_close(layer(x, x, data.edge_index, weight), expected)
    for form, adj in _adjacency_forms(data.edge_index, weight).items():
        torch.testing.assert_close(layer(x, x, adj), expected, msg=form)
    flow = FlowConv(layer.energy, t_end=1.0, solver=cg.FixedGrid("euler", step_size=0.5))
    reference = flow(x, data.edge_index)
    for form, adj in _adjacency_forms(data.edge_index, weight).items():
        torch.testing.assert_close(flow(x, adj), reference, msg=form)


def test_flow_conv_and_the_model_take_the_same_solver_forms():
    data = _data()
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(3))
    energy = GRAFFEnergy(D)
    as_dict = {"method": "rk4", "step_size": 0.25, "adjoint": True, "adjoint_method": "euler"}
    conv = FlowConv(energy, t_end=1.0, solver=as_dict)
    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D), solver=as_dict)
    assert conv.solver == model.solver == cg.FixedGrid("rk4", step_size=0.25)
    assert conv.adjoint == model.adjoint == cg.Adjoint("euler")
    typed = FlowConv(energy, t_end=1.0, solver=cg.FixedGrid("rk4", step_size=0.25), adjoint=cg.Adjoint("euler"))
    torch.testing.assert_close(conv(x, data.edge_index), typed(x, data.edge_index))
    for bad in ({"method": "rk4", "tol": 1.0}, "rk4"):
        with pytest.raises((ValueError, TypeError)) as from_conv:
            FlowConv(energy, solver=bad)
        with pytest.raises(type(from_conv.value), match=re.escape(str(from_conv.value))):
            cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D), solver=bad)


def test_the_model_takes_pyg_keywords():
    data = _data()
    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D)).eval()
    expected = model(data.x, data.edge_index)
    torch.testing.assert_close(model(data.x, edge_index=data.edge_index), expected)
    torch.testing.assert_close(model(x=data.x, edge_index=data.edge_index, edge_weight=None), expected)


def test_the_gcn_habit_is_refused_with_the_right_order():
    data = _data()
    x = torch.randn(N, D)
    with pytest.raises(TypeError, match=r"conv\(x, x_0, edge_index\)"):
        GRAFFConv(D)(x, data.edge_index)


def test_flow_conv_equals_a_stack_of_step_layers():
    data = _data()
    torch.manual_seed(2)
    energy = cg.energies.GRAFFEnergy(D)
    x = torch.randn(N, D, dtype=torch.float32)
    step = EnergyConv(energy, step_size=0.25)
    h = x
    for _ in range(4):
        h = step(h, x, data.edge_index)
    flow = FlowConv(energy, t_end=1.0, solver=cg.FixedGrid("euler", step_size=0.25))
    torch.testing.assert_close(flow(x, data.edge_index), h, rtol=1e-5, atol=1e-6)


def test_a_pyg_sequential_model_trains():
    data = _data()
    torch.manual_seed(3)
    model = Sequential("x, edge_index", [
        (torch.nn.Linear(D, 16), "x -> h0"),
        (GRANDConv(16, step_size=0.5), "h0, h0, edge_index -> h"),
        (GRAFFConv(16, step_size=0.5, activation="relu"), "h, h0, edge_index -> h"),
        (FlowConv(cg.energies.AllenCahnEnergy(16, well=0.05, learnable=False), t_end=0.5,
                  solver=cg.FixedGrid("rk4", step_size=0.25)),
         "h, edge_index -> h"),
        (torch.nn.Linear(16, 2), "h -> out"),
    ])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    train = data.train_mask[:, 0]
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data.x, data.edge_index)[train], data.y[train])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow  # a torch.compile of the whole flow: 15 s or more on two cores
def test_a_compiled_flow_does_not_ask_dynamo_to_trace_the_clock(monkeypatch):
    import warnings

    from torch._dynamo import utils as dynamo_utils

    # Dynamo warns once per process; a fresh cache and fresh compiled code make this test see its warning.
    monkeypatch.setattr(dynamo_utils, "warn_once_cache", set())
    torch._dynamo.reset()
    data = _data()
    flow = FlowConv(_layers()["graff"].energy, t_end=1.0, solver=cg.FixedGrid("euler", step_size=0.5))
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.compile(flow, backend="aot_eager")(x, data.edge_index)
    assert not [w for w in caught if "perf_counter" in str(w.message)]
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["graff", pytest.param("grand", marks=pytest.mark.slow), "dirichlet"])  # grand: 10 s
def test_layers_run_under_torch_compile(name):
    data = _data()
    layer = _layers()[name].eval()
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(4))
    expected = layer(x, x, data.edge_index)
    compiled = torch.compile(layer, backend="aot_eager")
    torch.testing.assert_close(compiled(x, x, data.edge_index), expected)
    flow = FlowConv(layer.energy, t_end=1.0, solver=cg.FixedGrid("euler", step_size=0.5))
    torch.testing.assert_close(torch.compile(flow, backend="aot_eager")(x, data.edge_index), flow(x, data.edge_index))


def _learned_weight_steps(layer_call, weight: torch.nn.Parameter, steps: int = 2) -> None:
    """An evaluation under no_grad, then optimiser steps, then two accumulated backward passes: each must reach
    the edge weights (a graph cached from any of them would carry no or spent autograd history)."""
    optimiser = torch.optim.SGD([weight], lr=1e-3)  # small steps keep the weights positive
    with torch.no_grad():
        layer_call()
    for _ in range(steps):
        optimiser.zero_grad()
        before = weight.detach().clone()
        layer_call().square().mean().backward()
        assert weight.grad is not None and weight.grad.abs().sum() > 0
        optimiser.step()
        assert not torch.equal(weight, before)
    optimiser.zero_grad()
    layer_call().sum().backward()
    first = weight.grad.clone()
    layer_call().sum().backward()
    torch.testing.assert_close(weight.grad, 2 * first)


def test_learned_edge_weights_get_gradients_through_every_cache():
    data = _data()
    torch.manual_seed(0)
    x = torch.randn(N, D)
    weight = torch.nn.Parameter(torch.rand(data.edge_index.size(1)) + 0.5)
    # symmetric, as the energies need: the weight of an edge is that of its reverse
    pair = torch.minimum(data.edge_index[0], data.edge_index[1]) * N + torch.maximum(*data.edge_index)
    _, slot = torch.unique(pair, return_inverse=True)
    symmetric = lambda: weight[slot]  # noqa: E731
    conv = GRAFFConv(D, step_size=0.5, cached=True)
    _learned_weight_steps(lambda: conv(x, x, data.edge_index, symmetric()), weight)
    flow = FlowConv(GRAFFEnergy(D), t_end=1.0, cached=True)
    _learned_weight_steps(lambda: flow(x, data.edge_index, symmetric()), weight)
    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D), t_end=1.0).eval()  # eval: no dropout between the calls
    _learned_weight_steps(lambda: model(x, data.edge_index, symmetric()), weight)
    # the same Parameter object on every call, so that only the cache's own rule keeps it out (no steps: one
    # weight per directed edge would not stay symmetric)
    direct = torch.nn.Parameter(torch.ones(data.edge_index.size(1)))
    _learned_weight_steps(lambda: model(x, data.edge_index, direct), direct, steps=0)
    _learned_weight_steps(lambda: conv(x, x, data.edge_index, direct), direct, steps=0)


def test_flow_conv_reset_parameters_reinitialises_its_energy_and_field():
    torch.manual_seed(0)
    layers = (FlowConv(GRAFFEnergy(D)), FlowConv(cg.SecondOrderFlow(GRAFFEnergy(D), damping=0.7, learnable=True)),
              FlowConv(cg.EnergySchedule([GRAFFEnergy(D), GRAFFEnergy(D)], t_end=1.0)))
    for layer in layers:
        with torch.no_grad():
            for parameter in layer.parameters():
                parameter.add_(10.0)  # far from any initial value
        perturbed = {name: p.detach().clone() for name, p in layer.named_parameters()}
        layer.reset_parameters()
        for name, parameter in layer.named_parameters():
            assert not torch.equal(parameter, perturbed[name]), name
            if name.endswith("beta"):
                assert parameter.item() == 0.0, name  # GRAFF's β starts at 0
            elif name.endswith("raw_damping"):
                assert F.softplus(parameter).item() == pytest.approx(0.7), name
    conv = GRAFFConv(D)
    assert len(conv.state_dict()) == len(list(conv.parameters()))  # each parameter once, under flow.energy.
    assert all(key.startswith("flow.energy.") for key in conv.state_dict())


def test_flow_conv_refuses_a_schedule_over_another_span():
    schedule = cg.EnergySchedule([GRAFFEnergy(D), GRAFFEnergy(D)], t_end=2.0)
    with pytest.raises(ValueError, match=r"spans \[0, 2.0\] but t_end=1.0"):
        FlowConv(schedule, t_end=1.0)


@pytest.mark.parametrize("bad, message", [
    (lambda x: x[None], r"x must be node features of shape \(num_nodes, channels\)"),
    (lambda x: x.t(), r"x_0 has shape \(30, 6\) but x has \(6, 30\)"),
    (lambda x: x.long(), r"x is torch.int64, but the layers compute in torch.float32 or torch.float64"),
    (lambda x: x.half(), r"x is torch.float16"),
    (lambda x: x.tolist(), r"x must be a tensor of node features"),
])
def test_bad_features_are_named_before_the_graph_is_built(bad, message):
    data = _data()
    x = torch.randn(N, D)
    conv = GRAFFConv(D)
    error = TypeError if "torch.int64" in message or "float16" in message or "a tensor" in message else ValueError
    with pytest.raises(error, match=message):
        conv(bad(x), x, data.edge_index)
    if "x_0" not in message:
        with pytest.raises(error, match=message):
            FlowConv(GRAFFEnergy(D))(bad(x), data.edge_index)
    with pytest.raises(ValueError, match=r"x_0 has shape \(30, 5\) but x has \(30, 6\)"):
        conv(x, x[:, :5], data.edge_index)
    with pytest.raises(TypeError, match="x_0 is torch.float64 but x is torch.float32"):
        conv(x, x.double(), data.edge_index)
    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D))
    with pytest.raises(ValueError, match=r"x must have shape \(num_nodes, 6\)"):
        model(x[:, :5], data.edge_index, torch.ones(data.edge_index.size(1)))


def test_an_edge_index_of_another_size_is_refused():
    data = _data()
    x = torch.randn(N, D)
    with pytest.raises(ValueError, match=r"sparse_size \(40, 40\) but x has 30 rows"):
        GRAFFConv(D)(x, x, EdgeIndex(data.edge_index, sparse_size=(N + 10, N + 10)))
    assert repr(DirichletConv()).startswith("DirichletConv(step_size=1.0")


# ---------------------------------------------------------------------- inference mode, sparse features, Data forms


def _undirected(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from torch_geometric.utils import to_undirected

    generator = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, N, (2, 3 * N), generator=generator)
    return to_undirected(edges, torch.rand(3 * N, generator=generator) + 0.1)


@pytest.mark.parametrize("make", [
    lambda: cg.ContinuousGNN(D, D, 2, AttentionDirichletEnergy(D)),
    lambda: GRANDConv(D, cached=True),
    lambda: PLaplacianConv(cached=True),
], ids=["model-attention", "grand-cached", "p-laplacian-cached"])
def test_a_call_under_inference_mode_leaves_the_next_training_step_working(make):
    module = make()
    edge_index, _ = _undirected()
    x = torch.randn(N, D)

    def call(features):
        return module(features, edge_index) if isinstance(module, cg.ContinuousGNN) else module(features, features,
                                                                                                  edge_index)

    with torch.inference_mode():  # e.g. a trainer's validation pass before the first training step
        seen = call(x)
    out = call(x.clone().requires_grad_())
    out.sum().backward()  # raised "Inference tensors cannot be saved for backward" from the cached graph
    assert torch.allclose(seen, out.detach())


class _AutogradOnlyEnergy(Energy):
    """A user's energy: only energy(), so its gradient comes from autograd."""

    def energy(self, x, graph, x0=None):
        return 0.5 * (x * graph.laplacian(x)).sum()


def test_a_first_call_under_inference_mode_works_with_an_autograd_energy_and_caches_its_graph():
    # e.g. a model loaded from a checkpoint, then used to predict: its graph used to be built under inference mode,
    # and the energy's autograd gradient could not differentiate through it (RuntimeError), nor was it cached.
    model = cg.ContinuousGNN(D, D, 2, _AutogradOnlyEnergy()).eval()
    fresh = copy.deepcopy(model)  # its cache starts empty, as a loaded model's does
    edge_index, x = _undirected()[0], torch.randn(N, D)
    with torch.no_grad():
        expected = model(x, edge_index)
    with torch.inference_mode():
        first = fresh(x, edge_index)
    cached = fresh._graphs._graph
    assert torch.equal(first, expected) and cached is not None and not cached.operator.is_inference()
    with torch.inference_mode():
        assert torch.equal(fresh(x, edge_index), first) and fresh._graphs._graph is cached


def test_adjacency_tensors_made_under_inference_mode_are_taken():
    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D)).eval()
    conv = GRAFFConv(D, cached=True)
    x = torch.randn(N, D)
    expected = model(x, _undirected()[0])
    with torch.inference_mode():
        edge_index, _ = _undirected()  # an inference tensor has no version counter for the cache to read
        assert torch.equal(model(x, edge_index), expected)
        assert conv(x, x, edge_index).shape == (N, D)


def test_an_edge_pattern_first_needed_under_inference_mode_serves_training_too():
    graph = cg.Graph.from_edge_index(_undirected()[0], N)
    conv = GRANDConv(D)
    x = torch.randn(N, D)
    with torch.inference_mode():
        conv(x, x, graph)  # builds graph.pattern, which stays with the graph
    conv(x.clone().requires_grad_(), x, graph).sum().backward()
    assert not graph.pattern.edge_index.is_inference()


@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("sparse_encoder", [False, True])
def test_sparse_features_train_with_input_dropout(layout, sparse_encoder):
    from continuous_gnn.nn import SparseInputLinear

    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D), input_dropout=0.5)
    if sparse_encoder:
        model.encoder = SparseInputLinear(D, D, dropout=0.3)
    dense = torch.randn(N, D).relu()
    features = dense.to_sparse_csr() if layout == "csr" else dense.to_sparse()
    edge_index, _ = _undirected()
    model(features, edge_index).sum().backward()  # raised NotImplementedError from bernoulli_ on sparse storage
    model.eval()
    assert torch.allclose(model(features, edge_index), model(dense, edge_index), atol=1e-6)


def test_sparse_dropout_drops_stored_entries_only_with_the_dense_scaling():
    from continuous_gnn.nn.sparse_linear import dropout_stored

    torch.manual_seed(0)
    dense = torch.rand(200, 50) * (torch.rand(200, 50) < 0.2)
    for sparse in (dense.to_sparse_csr(), dense.to_sparse()):
        dropped = dropout_stored(sparse, 0.25, True).to_dense()
        kept = dropped != 0
        assert torch.equal(dropped[kept], dense[kept] / 0.75)  # each kept entry scaled by 1 / (1 - p)
        assert not bool(kept[dense == 0].any())
        assert abs(kept.sum().item() / (dense != 0).sum().item() - 0.75) < 0.05
        assert dropout_stored(sparse, 0.25, False) is sparse
    with pytest.raises(TypeError, match="layout torch.sparse_csc.*x.to_sparse_csr"):
        dropout_stored(dense.to_sparse_csc(), 0.5, True)


def test_a_data_with_adj_t_beside_its_edge_weight_uses_the_adj_t():
    import torch_geometric.transforms as T
    from torch_geometric.data import Data

    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D)).eval()
    edge_index, weight = _undirected()
    x = torch.randn(N, D)
    data = T.ToSparseTensor(remove_edge_index=False)(Data(x=x, edge_index=edge_index, edge_weight=weight))
    assert data.edge_weight is not None and data.adj_t is not None
    assert torch.allclose(model(data), model(x, edge_index, weight), atol=1e-6)


def test_heterogeneous_data_is_refused_with_the_conversion_to_use():
    from torch_geometric.data import HeteroData

    with pytest.raises(TypeError, match="not HeteroData.*to_homogeneous"):
        cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D))(HeteroData())


def test_a_data_in_place_of_edge_index_is_refused_with_both_ways_to_pass_it():
    from torch_geometric.data import Data

    edge_index, _ = _undirected()
    data = Data(x=torch.randn(N, D), edge_index=edge_index)
    with pytest.raises(TypeError, match=r"got Data; pass data.edge_index \(a ContinuousGNN model also takes the "
                                        r"Data alone: model\(data\)\)"):
        cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D))(data.x, data)
    with pytest.raises(TypeError, match="got Data; pass data.edge_index"):
        GRAFFConv(D)(data.x, data.x, data)


@pytest.mark.parametrize("encoder", ["linear", "mlp"])
def test_model_reset_parameters_reinitialises_every_part_and_forgets_the_graph(encoder):
    model = cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D), encoder=encoder, decoder="mlp")
    edge_index, _ = _undirected()
    model(torch.randn(N, D), edge_index)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    model.reset_parameters()
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    # Every matrix is drawn again (GRAFF's β starts at 0 and Ω's diagonal at its fixed start, so they may not move).
    assert {name for name, value in before.items() if value.dim() == 2} <= changed
    assert model._graphs._graph is None


@pytest.mark.parametrize("make", [lambda: FlowConv(GRAFFEnergy(D), adjoint=True),
                                  lambda: cg.ContinuousGNN(D, D, 2, GRAFFEnergy(D), adjoint=True)],
                         ids=["flow-conv", "model"])
def test_learnable_edge_weights_under_the_adjoint_are_refused_with_what_to_do(make):
    edge_index, weight = _undirected()
    with pytest.raises(ValueError, match=r"get no gradient through the adjoint.*adjoint=None.*edge_weight.detach\(\)"):
        make()(torch.randn(N, D), edge_index, weight.requires_grad_())


def test_models_and_layers_that_cached_a_graph_deep_copy_and_pickle():
    # The cache held a Graph, whose sparse CSR operator torch cannot deep-copy: `best = copy.deepcopy(model)`
    # failed after the first forward pass, and so did studies.trajectory_records.
    import copy
    import io

    data = _data()
    model = cg.ContinuousGNN(data.num_features, 8, 3, GRAFFEnergy(8), solver=cg.FixedGrid("euler", step_size=0.5)).double().eval()
    layers = [GRAFFConv(data.num_features, step_size=0.5, cached=True).double(),
              FlowConv(GRAFFEnergy(data.num_features).double(), 1.0, cached=True)]
    x = data.x.double()
    expected = model(x, data.edge_index)
    outputs = [layers[0](x, x, data.edge_index), layers[1](x, data.edge_index)]
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    for copied in (copy.deepcopy(model), torch.load(buffer, weights_only=False)):
        assert copied._graphs._graph is None  # the copy's cache starts empty
        torch.testing.assert_close(copied(x, data.edge_index), expected, rtol=0, atol=0)
    for layer, output in zip(layers, outputs):
        copied = copy.deepcopy(layer)
        got = copied(x, x, data.edge_index) if isinstance(layer, GRAFFConv) else copied(x, data.edge_index)
        torch.testing.assert_close(got, output, rtol=0, atol=0)
