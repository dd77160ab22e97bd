"""The PyG layers: every Adj form gives the edge_index output, a PyG Sequential model trains, torch.compile runs
them, and the step layers stack into their flow."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch_geometric import EdgeIndex
from torch_geometric.nn import Sequential

import continuous_gnn as cg
from continuous_gnn.data import contextual_sbm
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


@pytest.mark.parametrize("name", ["graff", "grand", "dirichlet"])
def test_layers_run_under_torch_compile(name):
    data = _data()
    layer = _layers()[name].eval()
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(4))
    expected = layer(x, x, data.edge_index)
    compiled = torch.compile(layer, backend="aot_eager")
    torch.testing.assert_close(compiled(x, x, data.edge_index), expected)
    flow = FlowConv(layer.energy, t_end=1.0, solver=cg.FixedGrid("euler", step_size=0.5))
    torch.testing.assert_close(torch.compile(flow, backend="aot_eager")(x, data.edge_index), flow(x, data.edge_index))
