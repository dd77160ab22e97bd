"""Empirical order of convergence of the fixed-grid solvers on the heat flow Ẋ = −ΔX (exact: matrix_exp).

    python experiments/convergence_order.py

Prints the slope of log error against log step size (τ = 2^-3 … 2^-7, T = 1, float64) on a 30-node random
graph; the fitted slope should match each method's order. tests/test_integrate.py asserts the same on a
smaller graph.
"""

from __future__ import annotations

import math

import torch

import continuous_gnn as cg
from continuous_gnn.energies import DirichletEnergy
from continuous_gnn.ode.methods import FIXED_METHODS


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 30
    upper = torch.triu(torch.rand(n, n, generator=gen) < 0.15, diagonal=1)
    upper[torch.arange(n - 1), torch.arange(1, n)] = True  # a path keeps it connected
    src, dst = upper.nonzero().T
    graph = cg.Graph.from_edge_index(torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1), n,
                                     dtype=torch.float64)
    x0 = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    exact = torch.linalg.matrix_exp(-(torch.eye(n, dtype=torch.float64) - graph.to_dense())) @ x0
    field = cg.GradientFlow(DirichletEnergy()).bind(graph)
    taus = [2.0**-k for k in range(3, 8)]
    print(f"{'method':16s} {'order':>5s} {'slope':>6s}   errors at tau = 1/8 ... 1/128")
    for method, order in FIXED_METHODS.items():
        if method == "fixed_adams":  # an alias of implicit_adams
            continue
        errors = [float((cg.integrate(field, x0, 1.0, method=method, step_size=tau).final - exact).norm())
                  for tau in taus]
        xs = [math.log(t) for t in taus]
        ys = [math.log(e) for e in errors]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
        print(f"{method:16s} {order:5d} {slope:6.2f}   " + " ".join(f"{e:.1e}" for e in errors))


if __name__ == "__main__":
    main()
