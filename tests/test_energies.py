"""Energies: closed-form gradients vs autograd, energy formulas vs dense math, W/Ω parametrisations."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import (
    DTYPE,
    OMEGAS,
    SYMMETRIC_W,
    QuarticEnergy,
    graff_energy,
    hessian_graff,
    random_features,
    random_graph,
    randomize_,
)
from torch import Tensor

import continuous_gnn as cg
from continuous_gnn.diagnostics import dirichlet_energy
from continuous_gnn.energies import (
    OMEGA_STYLES,
    W_STYLES,
    ChannelDirichletEnergy,
    ChannelMixing,
    DirichletEnergy,
    Energy,
    ExternalField,
    GRAFFEnergy,
)

N, D = 9, 4


def autograd_gradient(energy: Energy, x: Tensor, graph, x0) -> Tensor:
    leaf = x.detach().requires_grad_()
    (grad,) = torch.autograd.grad(energy.energy(leaf, graph, x0), leaf)
    return grad


def assert_gradients_agree(energy: Energy, seed: int) -> None:
    graph = random_graph(N, 0.35, seed)
    x = random_features(N, D, seed + 100)
    x0 = random_features(N, D, seed + 200)
    closed = energy.gradient(x, graph, x0)
    by_autograd = autograd_gradient(energy, x, graph, x0)
    base = Energy.gradient(energy, x, graph, x0)  # the base class's autograd path
    scale = by_autograd.abs().max()
    assert scale > 1e-3
    torch.testing.assert_close(closed, by_autograd, rtol=1e-12, atol=1e-12 * scale)
    torch.testing.assert_close(base, by_autograd, rtol=1e-12, atol=1e-12 * scale)


GRAFF_CASES = list(itertools.product(SYMMETRIC_W, OMEGAS, (True, False)))
GRAFF_IDS = [f"{w}-{o}-{'src' if s else 'nosrc'}" for w, o, s in GRAFF_CASES]


@pytest.mark.parametrize("w, omega, source", GRAFF_CASES, ids=GRAFF_IDS)
def test_graff_closed_form_gradient_equals_autograd(w, omega, source):
    seed = GRAFF_CASES.index((w, omega, source))
    energy = graff_energy(D, w=w, omega=omega, source=source, seed=seed)
    if source:
        assert energy.beta is not None and abs(float(energy.beta.detach())) > 1e-3
    assert_gradients_agree(energy, seed)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("w, omega, source", GRAFF_CASES, ids=GRAFF_IDS)
def test_graff_negative_gradient_is_the_gradient_negated_bit_for_bit(w, omega, source, dtype):
    seed = GRAFF_CASES.index((w, omega, source))
    energy = graff_energy(D, w=w, omega=omega, source=source, seed=seed).to(dtype)
    graph = random_graph(N, 0.35, seed).to(dtype=dtype)
    x, x0 = random_features(N, D, seed + 100).to(dtype), random_features(N, D, seed + 200).to(dtype)
    assert torch.equal(energy.negative_gradient(x, graph, x0), -energy.gradient(x, graph, x0))


@pytest.mark.parametrize("w, omega, source", GRAFF_CASES, ids=GRAFF_IDS)
def test_graff_field_backward_and_double_backward_match_finite_differences(w, omega, source):
    # The field's gradients, and their own derivatives (which the Jacobian regulariser differentiates), against
    # finite differences in float64, in every parameter and both states.
    seed = GRAFF_CASES.index((w, omega, source))
    energy = graff_energy(D, w=w, omega=omega, source=source, seed=seed)
    graph = random_graph(N, 0.35, seed)
    x = random_features(N, D, seed + 1).requires_grad_()
    x0 = random_features(N, D, seed + 2).requires_grad_()
    parameters = tuple(p for p in energy.parameters() if p.requires_grad)
    if omega in ("diag", "sum") or source:
        assert parameters

    def field(x: Tensor, x0: Tensor, *_parameters: Tensor) -> Tensor:
        # gradcheck perturbs its inputs in place, so the energy sees the perturbed parameters itself.
        return energy.negative_gradient(x, graph, x0)

    inputs = (x, x0, *parameters)
    assert torch.autograd.gradcheck(field, inputs)
    assert torch.autograd.gradgradcheck(field, inputs)


@pytest.mark.parametrize("w, omega, source", GRAFF_CASES, ids=GRAFF_IDS)
def test_graff_field_and_its_gradients_round_as_the_plain_operations(w, omega, source):
    # The in-place field must round as the formula does, or every published run becomes another draw (a fused
    # multiply-add would not): float32, bit for bit, against ĀXW - XΩ + βX(0) as plain operations.
    seed = GRAFF_CASES.index((w, omega, source))
    energy = graff_energy(D, w=w, omega=omega, source=source, seed=seed).float()
    graph = random_graph(40, 0.2, seed).to(dtype=torch.float32)
    x = random_features(40, D, seed + 1).float().requires_grad_()
    x0 = random_features(40, D, seed + 2).float().requires_grad_()
    upstream = random_features(40, D, seed + 3).float()
    leaves = (x, x0, *(p for p in energy.parameters() if p.requires_grad))

    def plain() -> Tensor:
        velocity = graph.propagate(energy._mix(x))
        if not energy.Omega.is_diagonal:
            velocity = velocity - x @ energy.Omega(x)
        elif (diagonal := energy.Omega.diagonal(x)) is not None:
            velocity = velocity - x * diagonal
        if source:
            velocity = velocity + energy.beta * x0
        return velocity

    results = []
    for field in (plain, lambda: energy.negative_gradient(x, graph, x0)):
        value = field()
        grads = torch.autograd.grad(value, leaves, upstream, allow_unused=True)
        results.append((value.detach(), grads))
    (expected, expected_grads), (value, grads) = results
    assert torch.equal(value, expected)
    for got, want in zip(grads, expected_grads):
        assert (got is None) == (want is None)
        if got is not None:
            assert torch.equal(got, want)


@pytest.mark.parametrize("w, omega, source", GRAFF_CASES, ids=GRAFF_IDS)
def test_graff_field_without_autograd_is_the_same_bit_for_bit_and_leaves_its_inputs(w, omega, source):
    # Without autograd the diagonal terms are formed in the spent XW; nothing else may change.
    seed = GRAFF_CASES.index((w, omega, source))
    energy = graff_energy(D, w=w, omega=omega, source=source, seed=seed).float()
    graph = random_graph(40, 0.2, seed).to(dtype=torch.float32)
    x, x0 = random_features(40, D, seed + 1).float(), random_features(40, D, seed + 2).float()
    x_before, x0_before = x.clone(), x0.clone()
    with_autograd = energy.negative_gradient(x, graph, x0)
    assert with_autograd.requires_grad == any(p.requires_grad for p in energy.parameters())
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            assert torch.equal(energy.negative_gradient(x, graph, x0), with_autograd.detach())
    assert torch.equal(x, x_before) and torch.equal(x0, x0_before)


@pytest.mark.parametrize("w, omega, source", GRAFF_CASES, ids=GRAFF_IDS)
def test_graff_energy_equals_dense_formula(w, omega, source):
    seed = GRAFF_CASES.index((w, omega, source))
    energy = graff_energy(D, w=w, omega=omega, source=source, seed=seed)
    graph = random_graph(N, 0.35, seed)
    x, x0 = random_features(N, D, seed + 1), random_features(N, D, seed + 2)
    a = graph.to_dense()
    with torch.no_grad():
        omega_m, w_m = energy.Omega(x), energy.W()
        expected = 0.5 * torch.trace(x @ omega_m @ x.T) - 0.5 * torch.trace(x.T @ a @ x @ w_m)
        if source:
            expected = expected - energy.beta * (x * x0).sum()
        torch.testing.assert_close(energy.energy(x, graph, x0), expected, rtol=1e-12, atol=1e-12)
        # And the vector field is -FΩ + ĀFW + βF(0).
        velocity = -x @ omega_m + a @ x @ w_m + (energy.beta * x0 if source else 0.0)
        torch.testing.assert_close(-energy.gradient(x, graph, x0), velocity, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_dirichlet_gradients_and_formulas(seed):
    graph = random_graph(N, 0.35, seed)
    x = random_features(N, D, seed)
    lap = torch.eye(N, dtype=DTYPE) - graph.to_dense()
    dirichlet = DirichletEnergy()
    assert_gradients_agree(dirichlet, seed)
    # ½ tr(XᵀΔX) = ¼ Σ_ij ã_ij ‖x_i/√d̃_i − x_j/√d̃_j‖² (ordered pairs, self-loops included).
    a_tilde = graph.to_dense() * torch.sqrt(graph.degree[:, None] * graph.degree[None, :])
    scaled = x / graph.degree.sqrt()[:, None]
    pairwise = 0.25 * (a_tilde * torch.cdist(scaled, scaled) ** 2).sum()
    torch.testing.assert_close(dirichlet.energy(x, graph), 0.5 * torch.trace(x.T @ lap @ x), rtol=1e-12, atol=0)
    torch.testing.assert_close(dirichlet.energy(x, graph), pairwise, rtol=1e-12, atol=0)
    # It vanishes on the kernel √d̃ ⊗ c, not on constants.
    coefficients = torch.randn(1, D, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))
    kernel = graph.degree.sqrt()[:, None] * coefficients
    assert abs(float(dirichlet.energy(kernel, graph))) < 1e-12
    assert float(dirichlet.energy(torch.ones(N, D, dtype=DTYPE), graph)) > 1e-4

    channel = randomize_(ChannelDirichletEnergy(D, init="glorot").double(), seed)
    assert_gradients_agree(channel, seed)
    k = channel.kernel.detach()
    with torch.no_grad():
        expected = 0.5 * torch.trace(x.T @ lap @ x @ k.T @ k)
        torch.testing.assert_close(channel.energy(x, graph), expected, rtol=1e-12, atol=1e-12)
        # Identity metric: the channel energy is the plain Dirichlet energy.
        plain = ChannelDirichletEnergy(D).double()
        torch.testing.assert_close(plain.energy(x, graph), dirichlet.energy(x, graph), rtol=1e-14, atol=0)


def test_energy_subclass_with_only_energy_gets_right_gradient():
    energy = QuarticEnergy(D, seed=1)
    graph = random_graph(N, 0.35, 5)
    x, x0 = random_features(N, D, 1), random_features(N, D, 2)
    expected = energy.reference_gradient(x, graph, x0).detach()
    assert type(energy).gradient is Energy.gradient
    torch.testing.assert_close(energy.gradient(x, graph, x0), expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        no_grad = energy.gradient(x, graph, x0)
    assert not no_grad.requires_grad
    torch.testing.assert_close(no_grad, expected, rtol=1e-12, atol=1e-12)

    class HandDirichlet(Energy):
        def energy(self, x, graph, x0=None):
            return 0.5 * (x * (x - graph.propagate(x))).sum()

    torch.testing.assert_close(HandDirichlet().gradient(x, graph), graph.laplacian(x), rtol=1e-13, atol=1e-13)


def test_autograd_gradient_keeps_the_graph_of_a_tracked_input():
    # The base class must not detach an input that requires grad: dE/dy through x = 2y stays exact.
    energy = QuarticEnergy(D, seed=2, source=False)
    graph = random_graph(N, 0.35, 6)
    y = random_features(N, D, 3).requires_grad_()
    grad = energy.gradient(2 * y, graph)
    assert grad.requires_grad
    probe = random_features(N, D, 4)
    (dy,) = torch.autograd.grad((grad * probe).sum(), y)
    # d/dy <∇E(2y), p> = 2 H(2y) p, with H the Hessian: Δ p KᵀK + 3α (2y)² p.
    with torch.no_grad():
        metric = energy.kernel.T @ energy.kernel
        hvp = graph.laplacian(probe) @ metric + 3 * energy.alpha * (2 * y) ** 2 * probe
    torch.testing.assert_close(dy, 2 * hvp, rtol=1e-12, atol=1e-12)
    # Parameters get gradients through the autograd gradient as well (second-order).
    (d_alpha,) = torch.autograd.grad((energy.gradient(2 * y, graph) * probe).sum(), energy.alpha)
    torch.testing.assert_close(d_alpha, ((2 * y.detach()) ** 3 * probe).sum(), rtol=1e-12, atol=1e-12)


def test_autograd_gradient_when_x_is_the_source_tensor():
    # At the first solver step x *is* the tensor bound as x0. The source -β<x, x0> must be differentiated in x
    # only, not in x0 as well (that doubled the source term in the first step, in grad mode only).
    energy = QuarticEnergy(D, seed=3)
    graph = random_graph(N, 0.35, 7)
    x0 = random_features(N, D, 5).requires_grad_()
    expected = energy.reference_gradient(x0, graph, x0)
    torch.testing.assert_close(energy.gradient(x0, graph, x0), expected, rtol=1e-12, atol=1e-12)
    h0 = 2.0 * x0  # a non-leaf, as an encoder output would be
    torch.testing.assert_close(energy.gradient(h0, graph, h0), energy.reference_gradient(h0, graph, h0),
                               rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(energy.gradient(x0, graph, x0), expected, rtol=1e-12, atol=1e-12)


def test_autograd_gradient_under_inference_mode():
    # enable_grad does not leave inference mode: the gradient was silently zero there, and the flow did not move.
    energy = QuarticEnergy(D, seed=3)
    graph = random_graph(N, 0.35, 7)
    x = random_features(N, D, 8)
    x0 = random_features(N, D, 9)
    expected = energy.reference_gradient(x, graph, x0).detach()
    with torch.inference_mode():
        inferred = energy.gradient(x.clone(), graph, x0.clone())  # inference tensors, as a model's would be
        flow = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x0, 1.0, method="euler", step_size=0.5)
    torch.testing.assert_close(inferred, expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        reference = cg.integrate(cg.GradientFlow(energy).bind(graph, x0), x0, 1.0, method="euler", step_size=0.5)
    torch.testing.assert_close(flow.final, reference.final, rtol=1e-12, atol=1e-12)
    assert not torch.equal(flow.final, x0)
    # A graph made under inference mode cannot be differentiated through: an error that says what to do.
    with torch.inference_mode():
        inference_graph = random_graph(N, 0.35, 7)
        with pytest.raises(RuntimeError, match="QuarticEnergy computes its gradient by autograd.*torch.no_grad"):
            energy.gradient(x, inference_graph, x0)


def test_base_energy_is_abstract():
    with pytest.raises(NotImplementedError, match="must implement energy"):
        Energy().energy(torch.zeros(2, 2), random_graph(2, 0.0, 0))


# --- W and Ω parametrisations ------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", SYMMETRIC_W)
@pytest.mark.parametrize("seed", range(4))
def test_w_is_symmetric(style, seed):
    mixing = randomize_(ChannelMixing(5, style).double(), seed)
    w = mixing().detach()
    assert torch.equal(w, w.T)
    assert mixing.is_symmetric


@pytest.mark.parametrize("seed", range(6))
def test_prod_and_neg_prod_spectra(seed):
    prod = randomize_(ChannelMixing(5, "prod").double(), seed)
    neg = randomize_(ChannelMixing(5, "neg_prod").double(), seed)
    assert torch.linalg.eigvalsh(prod().detach()).min() >= -1e-12
    assert torch.linalg.eigvalsh(neg().detach()).max() <= 1e-12
    torch.testing.assert_close(neg().detach(), -prod().detach(), rtol=0, atol=0)
    # sum can take both signs
    sym = randomize_(ChannelMixing(6, "sum").double(), seed, scale=1.0)
    evals = torch.linalg.eigvalsh(sym().detach())
    assert evals.min() < 0 < evals.max()


@pytest.mark.parametrize("d", [1, 2, 3, 6])
@pytest.mark.parametrize("seed", range(5))
def test_diag_dom_structure_and_gershgorin(d, seed):
    mixing = randomize_(ChannelMixing(d, "diag_dom").double(), seed, scale=1.0)
    w0 = mixing.offdiagonal().detach()
    assert torch.equal(w0, w0.T)
    assert torch.all(w0.diagonal() == 0)
    radii = w0.abs().sum(1)
    w = mixing().detach()
    centers = w.diagonal()
    torch.testing.assert_close(centers, (mixing.q * radii + mixing.r).detach(), rtol=0, atol=1e-15)
    torch.testing.assert_close(w - torch.diag(centers), w0, rtol=0, atol=0)
    for eigenvalue in torch.linalg.eigvalsh(w):
        assert bool(((eigenvalue - centers).abs() <= radii + 1e-12).any()), (eigenvalue, centers, radii)
    if d > 1:
        assert w0.abs().sum() > 0  # the off-diagonal parameters actually enter W


@pytest.mark.parametrize(
    "style, count",
    [("diag_dom", lambda d: d * (d - 1) + 2 * d), ("diag", lambda d: d), ("sum", lambda d: d * d),
     ("prod", lambda d: d * d), ("neg_prod", lambda d: d * d), ("identity", lambda d: 0),
     ("asymm", lambda d: d * d)],
)
@pytest.mark.parametrize("d", [1, 3, 7])
def test_parameter_counts(style, count, d):
    mixing = ChannelMixing(d, style, allow_asymmetric=True)
    assert sum(p.numel() for p in mixing.parameters()) == count(d)
    fixed = ChannelMixing(d, style, learnable=False, allow_asymmetric=True)
    assert sum(p.numel() for p in fixed.parameters()) == 0
    torch.testing.assert_close(fixed().shape, torch.Size([d, d]))


def test_graff_energy_parameter_count():
    d = 5
    energy = GRAFFEnergy(d, w="diag_dom", omega="diag", source=True)
    assert sum(p.numel() for p in energy.parameters()) == d * (d - 1) + 2 * d + d + 1
    energy = GRAFFEnergy(d, w="diag", omega="zero", source=False, w_learnable=False)
    assert sum(p.numel() for p in energy.parameters()) == 0


def test_identity_and_fixed_diag():
    assert torch.equal(ChannelMixing(4, "identity")(), torch.eye(4))
    fixed = ChannelMixing(4, "diag", learnable=False)
    assert torch.equal(fixed(), torch.diag(fixed.w))
    assert fixed.w.abs().max() <= 1.0  # U[-1, 1] initialisation


def test_asymm_requires_opt_in():
    with pytest.raises(ValueError, match="not the gradient of any energy; pass allow_asymmetric=True"):
        ChannelMixing(3, "asymm")
    with pytest.raises(ValueError, match="allow_asymmetric=True"):
        GRAFFEnergy(3, w="asymm")
    energy = GRAFFEnergy(3, w="asymm", allow_asymmetric=True)
    assert energy.is_gradient_flow is False
    assert not energy.W.is_symmetric
    w = energy.W().detach()
    assert not torch.allclose(w, w.T)
    for style in SYMMETRIC_W:
        assert GRAFFEnergy(3, w=style).is_gradient_flow is True
    for energy in (DirichletEnergy(), ChannelDirichletEnergy(3), QuarticEnergy(3)):
        assert energy.is_gradient_flow is True


def test_asymm_field_is_not_the_energy_gradient():
    energy = graff_energy(D, w="asymm", omega="diag", source=True, seed=3, allow_asymmetric=True)
    graph = random_graph(N, 0.35, 1)
    x, x0 = random_features(N, D, 1), random_features(N, D, 2)
    closed = energy.gradient(x, graph, x0)
    w = energy.W().detach()
    expected = x * energy.Omega.omega.detach() - graph.propagate(x @ w) - energy.beta.detach() * x0
    torch.testing.assert_close(closed, expected)
    assert (closed - autograd_gradient(energy, x, graph, x0)).abs().max() > 1e-3


def test_unknown_styles_list_choices():
    with pytest.raises(ValueError, match=r"unknown W style 'banana'; choose one of \('diag_dom'"):
        ChannelMixing(3, "banana")
    with pytest.raises(ValueError, match=r"unknown Omega style 'full'; choose one of \('diag', 'zero', 'const', 'sum'"):
        ExternalField(3, "full")
    with pytest.raises(ValueError, match="positive integer"):
        ChannelMixing(0, "diag")
    with pytest.raises(ValueError, match="unknown init"):
        ChannelDirichletEnergy(3, init="zeros")
    assert set(W_STYLES) == set(SYMMETRIC_W) | {"asymm"}
    assert set(OMEGA_STYLES) == set(OMEGAS) | {"asymm"}


def test_external_field_styles():
    like = torch.zeros(1, dtype=DTYPE)
    assert torch.equal(ExternalField(3, "zero")(like), torch.zeros(3, 3, dtype=DTYPE))
    assert ExternalField(3, "zero").diagonal(like) is None
    assert torch.equal(ExternalField(3, "const", value=0.25)(like), 0.25 * torch.eye(3, dtype=DTYPE))
    diag = ExternalField(3, "diag")
    assert torch.equal(diag(like.float()), torch.diag(diag.omega.detach()))
    assert sum(p.numel() for p in diag.parameters()) == 3
    assert sum(p.numel() for p in ExternalField(3, "const").parameters()) == 0
    full = ExternalField(3, "sum")
    matrix = full(like.float())
    assert torch.equal(matrix, matrix.T) and torch.equal(matrix, 0.5 * (full.m + full.m.T))
    assert full.is_symmetric and not full.is_diagonal
    assert sum(p.numel() for p in full.parameters()) == 9
    with pytest.raises(ValueError, match=r"full matrix, not a diagonal; read it with Omega\(like\)"):
        full.diagonal(like)
    for style in ("diag", "zero", "const"):
        assert ExternalField(3, style).is_diagonal and ExternalField(3, style).is_symmetric


def test_asymmetric_omega_requires_opt_in_and_is_no_gradient_flow():
    with pytest.raises(ValueError, match="omega='asymm' .* pass allow_asymmetric=True .* omega='sum'"):
        ExternalField(3, "asymm")
    with pytest.raises(ValueError, match="allow_asymmetric=True"):
        GRAFFEnergy(3, omega="asymm")
    energy = graff_energy(D, w="sum", omega="asymm", source=True, seed=5, allow_asymmetric=True)
    assert energy.is_gradient_flow is False and not energy.Omega.is_symmetric
    omega = energy.Omega(random_features(1, 1)).detach()
    assert torch.equal(omega, energy.Omega.m.detach()) and not torch.allclose(omega, omega.T)
    graph = random_graph(N, 0.35, 1)
    x, x0 = random_features(N, D, 1), random_features(N, D, 2)
    expected = -x @ omega + graph.propagate(x @ energy.W().detach()) + energy.beta.detach() * x0
    torch.testing.assert_close(energy.negative_gradient(x, graph, x0), expected, rtol=1e-12, atol=1e-12)
    assert (energy.gradient(x, graph, x0) - autograd_gradient(energy, x, graph, x0)).abs().max() > 1e-3


def test_source_needs_x0():
    energy = graff_energy(3, source=True)
    graph = random_graph(4, 0.3, 0)
    with pytest.raises(ValueError, match="needs the initial state: pass x0"):
        energy.gradient(random_features(4, 3), graph)
    with pytest.raises(ValueError, match="pass x0"):
        energy.energy(random_features(4, 3), graph)


@pytest.mark.parametrize("omega", ["diag", "sum"])
def test_hessian_is_kronecker_form(omega):
    # The dense Hessian Ω ⊗ I − W ⊗ Ā (row-major vec) equals the Jacobian of the closed-form gradient.
    energy = graff_energy(3, w="sum", omega=omega, source=True, seed=4)
    graph = random_graph(5, 0.4, 2)
    x0 = random_features(5, 3, 9)
    jac = torch.autograd.functional.jacobian(lambda x: energy.gradient(x, graph, x0), random_features(5, 3, 1))
    torch.testing.assert_close(jac.reshape(15, 15), hessian_graff(energy, graph), rtol=1e-13, atol=1e-13)


JACOBIAN_CASES = [(w, "diag") for w in SYMMETRIC_W] + [("diag_dom", "zero"), ("sum", "const"), ("prod", "sum")]


@pytest.mark.parametrize("w, omega", JACOBIAN_CASES)
def test_symmetric_w_gives_symmetric_jacobian(w, omega):
    n, d = 4, 3
    energy = graff_energy(d, w=w, omega=omega, source=True, seed=7)
    graph = random_graph(n, 0.5, 3)
    x0 = random_features(n, d, 1)
    field = cg.GradientFlow(energy).bind(graph, x0)
    t = torch.tensor(0.0, dtype=DTYPE)
    jac = torch.autograd.functional.jacobian(lambda x: field(t, x), random_features(n, d, 2)).reshape(n * d, n * d)
    assert jac.abs().max() > 1e-3
    torch.testing.assert_close(jac, jac.T, rtol=0, atol=1e-13)
    # With a pointwise σ the field is σ(−∇E): the activation is applied to the gradient-flow field.
    nl = cg.GradientFlow(energy, activation="tanh").bind(graph, x0)
    x = random_features(n, d, 2)
    torch.testing.assert_close(nl(t, x), torch.tanh(field(t, x)), rtol=0, atol=0)


def test_asymmetric_w_gives_asymmetric_jacobian():
    n, d = 4, 3
    energy = graff_energy(d, w="asymm", omega="diag", source=False, seed=7, allow_asymmetric=True)
    graph = random_graph(n, 0.5, 3)
    field = cg.GradientFlow(energy).bind(graph)
    t = torch.tensor(0.0, dtype=DTYPE)
    jac = torch.autograd.functional.jacobian(lambda x: field(t, x), random_features(n, d, 2)).reshape(n * d, n * d)
    assert (jac - jac.T).abs().max() > 1e-2


# --- features that do not fit the energy -----------------------------------------------------------------------------


@pytest.mark.parametrize("w", SYMMETRIC_W)
@pytest.mark.parametrize("call", ["energy", "gradient"])
def test_feature_width_must_match_the_channels(w, call):
    # A diagonal W would broadcast (n, 1) features to (n, d) without this check.
    graph, energy = random_graph(N), graff_energy(D, w=w)
    x = random_features(N, 1)
    with pytest.raises(ValueError, match=f"GRAFFEnergy has {D} channels but x has 1"):
        getattr(energy, call)(x, graph, random_features(N, D))
    with pytest.raises(ValueError, match=f"GRAFFEnergy has {D} channels but x0 has 1"):
        getattr(energy, call)(random_features(N, D), graph, x)


@pytest.mark.parametrize("make", [lambda: graff_energy(D), lambda: DirichletEnergy(),
                                  lambda: ChannelDirichletEnergy(D).double(), lambda: QuarticEnergy(D).double()])
def test_energies_refuse_a_random_walk_operator_when_called_directly(make):
    graph = random_graph(N, normalization="rw")
    with pytest.raises(ValueError, match="needs a symmetric operator"):
        make().gradient(random_features(N, D), graph, random_features(N, D))


def test_dtype_mismatch_names_the_conversion():
    energy = GRAFFEnergy(D)  # float32 parameters
    with pytest.raises(TypeError, match="parameters are torch.float32.*energy.to\\(torch.float64\\)"):
        energy.gradient(random_features(N, D), random_graph(N), random_features(N, D))
    with pytest.raises(TypeError, match="x0 is torch.float32 but x is torch.float64"):
        graff_energy(D).gradient(random_features(N, D), random_graph(N), random_features(N, D).float())


def test_autograd_gradient_of_a_non_scalar_or_constant_energy():
    class Rows(Energy):
        def energy(self, x, graph, x0=None):
            return (x * x).sum(dim=1)

    class Constant(Energy):
        def energy(self, x, graph, x0=None):
            return torch.tensor(3.0, dtype=x.dtype)

    graph, x = random_graph(N), random_features(N, D)
    with pytest.raises(TypeError, match="Rows.energy must return a 0-dim tensor, got \\(9,\\)"):
        Rows().gradient(x, graph)
    with pytest.warns(UserWarning, match="Constant.energy\\(\\) does not depend on x.*no x.detach"):
        assert torch.equal(Constant().gradient(x, graph), torch.zeros_like(x))


def test_an_energy_of_a_detached_x_is_named_not_integrated_silently():
    class Detached(Energy):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(1.0, dtype=DTYPE))

        def energy(self, x, graph, x0=None):
            return self.scale * (x.detach() ** 2).sum()  # depends on a parameter, not on x

    graph, x = random_graph(N), random_features(N, D)
    with pytest.warns(UserWarning, match="Detached.energy\\(\\) does not depend on x"):
        assert torch.equal(Detached().gradient(x, graph), torch.zeros_like(x))


@pytest.mark.parametrize("channels", [0, -1, 2.0, True])
def test_every_energy_checks_its_channels(channels):
    for make in (GRAFFEnergy, ChannelDirichletEnergy, ExternalField):
        with pytest.raises(ValueError, match="channels must be a positive integer"):
            make(channels)


def test_constant_omega_must_be_finite():
    with pytest.raises(ValueError, match="the Omega value must be finite"):
        GRAFFEnergy(D, omega="const", omega_value=float("nan"))


# --- ChannelDirichletEnergy: pairwise form and Prop. 2.4 --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_channel_dirichlet_pairwise_form_equals_the_trace_form(seed):
    # ¼ Σ_ij ã_ij ‖K (∇X)_ij‖² with (∇X)_ij = x_i/√d̃_i − x_j/√d̃_j as a column vector, so the metric is KᵀK.
    graph = random_graph(N, 0.35, seed)
    x = random_features(N, D, seed + 10)
    energy = randomize_(ChannelDirichletEnergy(D, init="glorot").double(), seed)
    k = energy.kernel.detach()
    a_tilde = graph.to_dense() * torch.sqrt(graph.degree[:, None] * graph.degree[None, :])
    scaled = x / graph.degree.sqrt()[:, None]
    diffs = scaled[:, None, :] - scaled[None, :, :]  # (∇X)_ij, shape (n, n, d)
    pairwise = 0.25 * (a_tilde * ((diffs @ k.T) ** 2).sum(-1)).sum()
    with torch.no_grad():
        torch.testing.assert_close(energy.energy(x, graph), pairwise, rtol=1e-12, atol=0)
    # K acting on row vectors (metric KKᵀ) is a different energy for this non-symmetric K.
    row_convention = 0.25 * (a_tilde * ((diffs @ k) ** 2).sum(-1)).sum()
    assert abs(float(row_convention - pairwise)) > 1e-3 * float(pairwise)


@pytest.mark.parametrize("seed", range(3))
def test_channel_dirichlet_flow_with_singular_metric_keeps_the_kernel_part_of_the_energy(seed):
    # Prop. 2.4: E^Dir(X(t)) → E^Dir(X(0) P), P the orthogonal projector onto ker KᵀK (here spanned by a vector
    # that mixes all three channels, so X(0) P is no column selection).
    graph = random_graph(10, 0.3, seed)
    kernel = torch.tensor([[1.0, 1.0, 0.5], [0.0, 0.5, 1.0], [0.0, 0.0, 0.0]], dtype=DTYPE)
    null = torch.tensor([-0.75, 1.0, -0.5], dtype=DTYPE)
    assert torch.equal(kernel @ null, torch.zeros(3, dtype=DTYPE))
    assert torch.linalg.matrix_rank(kernel.T @ kernel) == 2  # so ker KᵀK is spanned by `null` alone
    projector = torch.outer(null, null) / (null @ null)
    energy = ChannelDirichletEnergy(3).double()
    with torch.no_grad():
        energy.kernel.copy_(kernel)
    x0 = random_features(10, 3, seed + 1)
    sol = cg.integrate(cg.GradientFlow(energy).bind(graph), x0, 60.0, method="dopri5", rtol=1e-10, atol=1e-12)
    limit = float(dirichlet_energy(x0 @ projector, graph))
    assert 0.05 * float(dirichlet_energy(x0, graph)) < limit < 0.5 * float(dirichlet_energy(x0, graph))
    assert float(dirichlet_energy(sol.final, graph)) == pytest.approx(limit, rel=1e-6)


def test_fresh_graff_energy_has_zero_beta_and_omega_uniform_on_minus_one_one():
    # GRAFFEnergy: "β is a learned scalar initialised to 0"; ExternalField("diag"): ω ~ U[−1, 1].
    omegas = []
    with torch.random.fork_rng():
        for seed in range(5):
            torch.manual_seed(seed)
            energy = GRAFFEnergy(64)
            assert float(energy.beta.detach()) == 0.0
            omegas.append(energy.Omega.omega.detach())
    omega = torch.cat(omegas)
    assert float(omega.min()) >= -1.0 and float(omega.max()) <= 1.0
    assert float(omega.min()) < -0.95 and float(omega.max()) > 0.95  # it fills the interval
    assert abs(float(omega.mean())) < 0.1


def test_an_energy_with_a_prepare_hook_and_only_energy_runs_on_its_context():
    class Centred(Energy):
        def prepare(self, graph, x0):
            return graph, x0.mean(0)

        def energy(self, x, context, x0=None):
            graph, mean = context
            return 0.5 * (x * graph.laplacian(x)).sum() + ((x - mean) ** 2).sum()

    graph, x0 = random_graph(N), random_features(N, D)
    solution = cg.integrate(cg.GradientFlow(Centred()).bind(graph, x0), x0, 1.0, method="euler", step_size=0.25)
    x = solution.final  # by hand: x ← x − τ (Δx + 2 (x − mean(x0)))
    expected = x0
    for _ in range(4):
        expected = expected - 0.25 * (graph.laplacian(expected) + 2 * (expected - x0.mean(0)))
    torch.testing.assert_close(x, expected, rtol=1e-12, atol=1e-12)
