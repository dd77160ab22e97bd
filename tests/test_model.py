"""ContinuousGNN: equals encoder → shared-weight residual layers → decoder; dropout, detach_source, training."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import (
    DTYPE,
    graff_energy,
    permute_edge_index,
    random_edge_index,
    random_features,
    random_graph,
    randomize_,
)
from torch.nn import functional as F

import continuous_gnn as cg
from continuous_gnn import ContinuousGNN, Graph
from continuous_gnn.nn import GRAFFConv, ResidualMLPEncoder

N, P, D, K = 9, 5, 4, 3


def make_model(seed=0, energy=None, **kwargs):
    energy = energy if energy is not None else graff_energy(D, seed=seed)
    model = ContinuousGNN(P, D, K, energy, **kwargs).double()
    randomize_(model.encoder, seed + 1, scale=0.5)
    randomize_(model.decoder, seed + 2, scale=0.5)
    return model


def hand_forward(model, x, graph, tau, layers, activation=None, energies=None):
    h0 = model.encoder(x)
    h = h0
    for k in range(layers):
        energy = energies[k] if energies is not None else model.energy
        h = GRAFFConv(D, step_size=tau, energy=energy, activation=activation)(h, h0, graph)
    return model.decoder(F.relu(h))


@pytest.mark.parametrize("tau, layers", [(0.25, 4), (0.5, 3)])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_model_equals_hand_loop_bitwise(tau, layers, activation):
    graph = random_graph(N, 0.3, 0)
    x = random_features(N, P, 1)
    model = make_model(t_end=tau * layers, solver={"method": "euler", "step_size": tau}, activation=activation).eval()
    assert torch.equal(model(x, graph), hand_forward(model, x, graph, tau, layers, activation))


def test_model_equals_hand_loop_float32():
    graph = random_graph(N, 0.3, 0, dtype=torch.float32)
    x = random_features(N, P, 1, dtype=torch.float32)
    model = make_model(t_end=0.7, solver={"method": "euler", "step_size": 0.1}).float().eval()
    torch.testing.assert_close(model(x, graph), hand_forward(model, x, graph, 0.1, 7), rtol=0, atol=1e-6)


def test_model_with_schedule_equals_loop_of_distinct_layers():
    num, tau = 4, 0.25
    pieces = [graff_energy(D, seed=10 + k) for k in range(num)]
    schedule = cg.EnergySchedule(pieces, t_end=num * tau)
    model = make_model(energy=schedule, t_end=num * tau, solver={"method": "euler", "step_size": tau}).eval()
    graph = random_graph(N, 0.3, 2)
    x = random_features(N, P, 3)
    assert torch.equal(model(x, graph), hand_forward(model, x, graph, tau, num, energies=pieces))
    assert sum(p.numel() for p in model.flow.parameters()) == num * sum(p.numel() for p in pieces[0].parameters())


def test_forward_shapes_and_solution():
    graph = random_graph(N, 0.3, 0)
    x = random_features(N, P, 1)
    model = make_model(t_end=1.0, solver={"method": "euler", "step_size": 0.25})
    logits, sol = model.forward_with_solution(x, graph)
    assert logits.shape == (N, K) and logits.dtype == DTYPE
    assert sol.final.shape == (N, D) and sol.stats.steps_accepted == 4 and sol.stats.nfe_forward == 4
    h0, sol = model.solve(x, graph, t_end=2.0, save_at=[1.0])
    assert h0.shape == (N, D)
    assert sol.times.tolist() == [0.0, 1.0, 2.0] and sol.states.shape == (3, N, D)
    torch.testing.assert_close(sol.states[0], h0, rtol=0, atol=0)
    mlp = make_model(encoder="mlp", t_end=1.0, solver={"method": "rk4", "num_steps": 2})
    assert mlp(x, graph).shape == (N, K)
    assert sum(p.numel() for p in mlp.encoder.parameters()) == P * D + D + 2 * (D * D + D)
    adaptive = make_model(solver={"method": "dopri5", "rtol": 1e-6, "atol": 1e-8})
    assert adaptive(x, graph).shape == (N, K)


def test_mlp_decoder_is_a_hidden_relu_layer_before_the_dropout_and_the_linear_map():
    graph = random_graph(N, 0.3, 0)
    x = random_features(N, P, 1)
    model = make_model(decoder="mlp", dropout=0.5)
    assert make_model().decoder_hidden is None
    randomize_(model.decoder_hidden, 3, scale=0.5)
    model.eval()
    final = model.solve(x, graph)[1].final
    hidden = F.relu(model.decoder_hidden(F.relu(final)))
    torch.testing.assert_close(model(x, graph), model.decoder(hidden), rtol=0, atol=0)
    model.train()
    torch.manual_seed(5)
    trained = model.decode(final)
    torch.manual_seed(5)
    torch.testing.assert_close(trained, model.decoder(F.dropout(hidden, 0.5, True)), rtol=0, atol=0)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in make_model().parameters()) + D * D + D


def test_dropout_in_train_mode_only():
    graph = random_graph(N, 0.3, 0)
    x = random_features(N, P, 1)
    model = make_model(input_dropout=0.5, dropout=0.5, solver={"method": "euler", "step_size": 0.5})
    model.train()
    torch.manual_seed(0)
    first, second = model(x, graph), model(x, graph)
    assert not torch.equal(first, second)
    model.eval()
    evaluated = model(x, graph)
    assert torch.equal(evaluated, model(x, graph))
    assert not torch.equal(evaluated, first)
    no_dropout = make_model(solver={"method": "euler", "step_size": 0.5}).eval()
    assert torch.equal(evaluated, no_dropout(x, graph))


@pytest.mark.parametrize("blocks", [1, 3])
def test_residual_mlp_encoder_in_eval_mode_is_the_hand_written_residual_loop_bitwise(blocks):
    # h = W₀x + b₀; then h ← h + W_k relu(h) + b_k per block; dropout (p = 0.5 here) is off in eval mode.
    encoder = randomize_(ResidualMLPEncoder(P, D, blocks=blocks, dropout=0.5).double(), 13, scale=0.5).eval()
    x = random_features(N, P, 14)
    h = F.linear(x, encoder.input.weight, encoder.input.bias)
    for block in encoder.blocks:
        h = h + F.linear(torch.relu(h), block.weight, block.bias)
    assert (h < 0).any() and len(encoder.blocks) == blocks  # relu and every block matter
    assert torch.equal(encoder(x), h)


def encoder_grad(model, x, graph, weights):
    model.zero_grad()
    (model(x, graph) * weights).sum().backward()
    return model.encoder.weight.grad.clone()


def manual_encoder_grad(model, x, graph, weights, detach):
    model.zero_grad()
    h0 = model.encoder(x)
    sol = cg.integrate(model.flow.bind(graph, h0.detach() if detach else h0), h0, model.t_end, solver=model.solver)
    (model.decode(sol.final) * weights).sum().backward()
    return model.encoder.weight.grad.clone()


def test_detach_source_cuts_only_the_source_path():
    graph = random_graph(N, 0.3, 4)
    x = random_features(N, P, 5)
    weights = random_features(N, K, 6)
    solver = {"method": "euler", "step_size": 0.25}
    attached = make_model(seed=3, t_end=1.0, solver=solver).eval()
    detached = copy.deepcopy(attached)
    detached.detach_source = True
    assert abs(float(attached.energy.beta.detach())) > 1e-2
    g_attached = encoder_grad(attached, x, graph, weights)
    g_detached = encoder_grad(detached, x, graph, weights)
    # Same forward pass, different gradients: the difference is the gradient through β·F(0).
    assert torch.equal(attached(x, graph), detached(x, graph))
    assert (g_attached - g_detached).abs().max() > 1e-4
    torch.testing.assert_close(g_attached, manual_encoder_grad(attached, x, graph, weights, False), rtol=0, atol=0)
    torch.testing.assert_close(g_detached, manual_encoder_grad(detached, x, graph, weights, True), rtol=0, atol=0)
    # The source path alone: only the bound source depends on the encoder.
    attached.zero_grad()
    h0 = attached.encoder(x)
    sol = cg.integrate(attached.flow.bind(graph, h0), h0.detach(), 1.0, **solver)
    (attached.decode(sol.final) * weights).sum().backward()
    source_path = attached.encoder.weight.grad
    assert source_path.abs().max() > 1e-4
    torch.testing.assert_close(g_attached - g_detached, source_path, rtol=1e-10, atol=1e-12)
    # Without a source term detaching changes nothing.
    plain = make_model(seed=3, energy=graff_energy(D, seed=3, source=False), t_end=1.0, solver=solver)
    plain_detached = copy.deepcopy(plain)
    plain_detached.detach_source = True
    assert torch.equal(encoder_grad(plain, x, graph, weights), encoder_grad(plain_detached, x, graph, weights))


@pytest.mark.parametrize("field", ["energy", "fixed_attention"])
def test_detach_source_keeps_attention_from_the_initial_state_attached_as_grand_does(field):
    # GRAND's code detaches X(0) in its source term only; its attention reads X(0) itself. Detaching therefore
    # removes exactly the source path: the gradient through the attention stays, and the adjoint agrees.
    from continuous_gnn.energies import AttentionDirichletEnergy
    from continuous_gnn.fields import FixedAttentionDiffusion

    graph = random_graph(N, 0.5, 21)
    x = random_features(N, P, 22)
    weights = random_features(N, K, 23)
    solver = {"method": "rk4", "step_size": 0.25}
    torch.manual_seed(24)
    flow = (AttentionDirichletEnergy(D, key_channels=3, heads=2, source=True) if field == "energy"
            else FixedAttentionDiffusion(D, key_channels=3, heads=2, rate=True, source=True))
    attached = make_model(seed=25, energy=randomize_(flow.double(), 28, scale=0.5), t_end=1.0, solver=solver).eval()
    detached = copy.deepcopy(attached)
    detached.detach_source = True
    assert torch.equal(attached(x, graph), detached(x, graph))
    g_attached = encoder_grad(attached, x, graph, weights)
    g_detached = encoder_grad(detached, x, graph, weights)

    def path_grad(attention_input, source):
        # The gradient of one path alone: only the attention's X(0), or only the source's, reaches the encoder.
        attached.zero_grad()
        h0 = attached.encoder(x)
        bound = attached.flow.bind(graph, attention_input(h0), source=source(h0))
        sol = cg.integrate(bound, h0.detach(), 1.0, **solver)
        (attached.decode(sol.final) * weights).sum().backward()
        return attached.encoder.weight.grad.clone()

    attention_path = path_grad(lambda h0: h0, lambda h0: h0.detach())
    source_path = path_grad(lambda h0: h0.detach(), lambda h0: h0)
    assert attention_path.abs().max() > 1e-4 and source_path.abs().max() > 1e-4
    initial_path = g_attached - attention_path - source_path  # through the initial state of the solve
    torch.testing.assert_close(g_detached, initial_path + attention_path, rtol=1e-10, atol=1e-12)
    # Under the adjoint the attached X(0) of the attention is a captured tensor: the gradients of direct
    # backprop, to the tolerance of the solves (both adaptive, so that neither differentiates its own grid).
    detached.solver = cg.Adaptive("dopri5", rtol=1e-10, atol=1e-12)
    adjoint = copy.deepcopy(detached)
    adjoint.adjoint = cg.Adjoint()
    torch.testing.assert_close(encoder_grad(adjoint, x, graph, weights), encoder_grad(detached, x, graph, weights),
                               rtol=1e-6, atol=1e-9)


def test_bind_refuses_a_source_of_another_shape():
    graph = random_graph(N, 0.3, 26)
    x0 = random_features(N, D, 27)
    with pytest.raises(ValueError, match=r"source must have the shape of x0, \(9, 4\); got \(9, 3\)"):
        cg.GradientFlow(graff_energy(D, seed=1)).bind(graph, x0, source=x0[:, :3])
    with pytest.raises(ValueError, match="source must have the shape of x0, None"):
        cg.GradientFlow(graff_energy(D, seed=1)).bind(graph, source=x0)


def test_adjoint_model_gradients_match_direct():
    graph = random_graph(N, 0.3, 7)
    x = random_features(N, P, 8)
    weights = random_features(N, K, 9)
    tolerances = {"method": "dopri5", "rtol": 1e-9, "atol": 1e-11}
    direct = make_model(seed=5, t_end=1.0, solver=tolerances).eval()
    adjoint = copy.deepcopy(direct)
    adjoint.adjoint = cg.Adjoint()
    grads = []
    for model in (direct, adjoint):
        model.zero_grad()
        logits, sol = model.forward_with_solution(x, graph)
        (logits * weights).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    assert sol.stats.nfe_backward > 0
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-8, msg=name)


@pytest.mark.parametrize(
    "solver", [{"method": "euler", "step_size": 0.25}, {"method": "dopri5", "rtol": 1e-9, "atol": 1e-11}]
)
def test_logits_are_permutation_equivariant(solver):
    edge_index = random_edge_index(N, 0.3, 11)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(11))
    graph = Graph.from_edge_index(edge_index, N, dtype=DTYPE)
    permuted = Graph.from_edge_index(permute_edge_index(edge_index, perm), N, dtype=DTYPE)
    model = make_model(seed=11, t_end=1.0, solver=solver, activation="relu").eval()
    x = random_features(N, P, 12)
    logits = model(x, graph)
    tol = 0.0 if solver["method"] == "euler" else 1e-7
    torch.testing.assert_close(model(x[perm], permuted), logits[perm], rtol=tol, atol=max(tol, 1e-14))
    assert not torch.allclose(logits[perm], logits)


def test_parameter_count_independent_of_t():
    counts = set()
    for t_end, tau in ((0.5, 0.25), (1.0, 0.25), (8.0, 0.5)):
        model = ContinuousGNN(P, D, K, graff_energy(D), t_end=t_end, solver={"method": "euler", "step_size": tau})
        counts.add(sum(p.numel() for p in model.parameters()))
    energy_params = sum(p.numel() for p in graff_energy(D).parameters())
    assert counts == {P * D + D + D * K + K + energy_params}


def two_communities(seed=0):
    """20 nodes: two rings of 10 with chords, joined by two edges; features = class mean + noise."""
    edges = []
    for offset in (0, 10):
        for i in range(10):
            edges.append((offset + i, offset + (i + 1) % 10))
            edges.append((offset + i, offset + (i + 3) % 10))
    edges += [(0, 10), (5, 15)]
    edge_index = torch.tensor(edges).T
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    labels = torch.cat([torch.zeros(10, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[1.0, -0.5, 0.0, 0.3], [-1.0, 0.5, 0.0, -0.3]], dtype=DTYPE)
    x = means[labels] + 0.8 * torch.randn(20, 4, generator=g, dtype=DTYPE)
    return Graph.from_edge_index(edge_index, 20, dtype=DTYPE), x, labels


def test_adam_reduces_loss_on_two_communities():
    graph, x, labels = two_communities()
    model = ContinuousGNN(4, 8, 2, graff_energy(8, seed=0, scale=0.3), t_end=1.0,
                          solver={"method": "euler", "step_size": 0.25}).double()
    randomize_(model.encoder, 1, 0.3)
    randomize_(model.decoder, 2, 0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    energy_before = {name: p.detach().clone() for name, p in model.energy.named_parameters()}
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x, graph), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = F.cross_entropy(model(x, graph), labels)
        accuracy = (model(x, graph).argmax(1) == labels).double().mean()
    assert float(final) < 0.5 * losses[0], losses
    assert accuracy >= 0.9
    # The energy's parameters are trained too.
    assert any(not torch.equal(p, energy_before[name]) for name, p in model.energy.named_parameters())


def test_model_validation():
    energy = graff_energy(D)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        ContinuousGNN(P, D, K, energy, dropout=1.0)
    with pytest.raises(ValueError, match="input_dropout must lie"):
        ContinuousGNN(P, D, K, energy, input_dropout=-0.1)
    with pytest.raises(ValueError, match="unknown encoder 'gcn'"):
        ContinuousGNN(P, D, K, energy, encoder="gcn")
    with pytest.raises(ValueError, match="unknown decoder 'gcn'; choose 'linear' or 'mlp'"):
        ContinuousGNN(P, D, K, energy, decoder="gcn")
    with pytest.raises(ValueError, match="t_end must be positive"):
        ContinuousGNN(P, D, K, energy, t_end=0.0)
    model = ContinuousGNN(P, D, K, energy)
    assert model.solver == cg.FixedGrid("euler", step_size=1.0) and model.adjoint is None and model.t_end == 1.0


def test_model_checks_sizes_schedule_and_solver_when_built():
    energy = graff_energy(D)
    with pytest.raises(ValueError, match=f"the energy has {D} channels but hidden=8"):
        ContinuousGNN(P, 8, K, energy)
    for name, sizes in (("in_channels", (-1, D, K)), ("out_channels", (P, D, 0)), ("hidden", (P, 2.0, K))):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
            ContinuousGNN(*sizes, energy)
    with pytest.raises(ValueError, match="t_end must be positive"):
        ContinuousGNN(P, D, K, energy, t_end=float("inf"))
    schedule = cg.EnergySchedule([graff_energy(D), graff_energy(D, seed=1)], t_end=5.0)
    with pytest.raises(ValueError, match="the EnergySchedule spans \\[0, 5.0\\] but t_end=1.0"):
        ContinuousGNN(P, D, K, schedule, t_end=1.0)
    ContinuousGNN(P, D, K, schedule, t_end=5.0)
    with pytest.raises(ValueError, match="unknown solver argument\\(s\\) \\['t_end', 'tol'\\]"):
        ContinuousGNN(P, D, K, energy, solver={"method": "dopri5", "tol": 1e-3, "t_end": -3})


def test_solve_overrides_take_a_solver_dict_as_the_constructor_does():
    # The constructor took {"method": "rk4", "step_size": 0.5}; solve and forward_with_solution refused it, and
    # their message suggested keywords that they refuse too.
    from continuous_gnn import Adjoint, FixedGrid
    from continuous_gnn.energies import GRAFFEnergy

    model = ContinuousGNN(5, 4, 2, GRAFFEnergy(4), adjoint=True).double()
    x, edges = torch.randn(6, 5, dtype=torch.float64), torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 5]])
    edges = torch.cat([edges, edges.flip(0)], 1)
    by_dict = model.forward_with_solution(x, edges, solver={"method": "rk4", "step_size": 0.5})[1]
    by_object = model.forward_with_solution(x, edges, solver=FixedGrid("rk4", step_size=0.5))[1]
    assert torch.equal(by_dict.final, by_object.final) and by_dict.stats.nfe_forward == 8
    assert by_dict.stats.adjoint  # the model's adjoint is kept unless the dict gives one
    direct = model.forward_with_solution(x, edges, solver={"method": "euler", "step_size": 0.5, "adjoint": False})[1]
    assert not direct.stats.adjoint
    with pytest.raises(TypeError, match="either in the solver dict or as adjoint"):
        model.solve(x, edges, solver={"method": "euler", "step_size": 0.5, "adjoint": True}, adjoint=Adjoint())
    # adjoint_* keys with adjoint=True given beside the dict, as the constructor takes them
    _, keyed = model.solve(x, edges, solver={"method": "rk4", "step_size": 0.5, "adjoint_method": "euler"},
                           adjoint=True)
    assert keyed.stats.adjoint
    # An Adjoint object beside a dict keeps its own settings (the constructor dropped seminorm=True)
    seminorm = ContinuousGNN(5, 4, 2, GRAFFEnergy(4), solver={"method": "dopri5"}, adjoint=Adjoint(seminorm=True))
    assert seminorm.adjoint == Adjoint(seminorm=True)
    with pytest.raises(ValueError, match="unknown solver argument"):
        model.solve(x, edges, solver={"methd": "euler"})
