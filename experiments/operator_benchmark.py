"""Cost of one graph propagation ĀX (forward + backward) on a benchmark graph: cached CSR vs PyG message passing.

    python experiments/operator_benchmark.py [--dataset squirrel] [--channels 128] [--repeats 30]

Three ways to compute ĀX with Ā = D̃^{-1/2}(A+I)D̃^{-1/2}, timed in this one process with one torch thread:

- ``csr``: :meth:`continuous_gnn.Graph.propagate`, the CSR matrix built once per graph (what the package does);
- ``message passing``: a PyG ``MessagePassing`` layer (sum aggregation of ``w_ij x_j`` over ``edge_index``)
  with the normalised weights computed once;
- ``message passing + gcn_norm``: the same, renormalising with ``gcn_norm`` at every call, as the official
  GRAFF code does at every function evaluation.

It writes ``docs/operator.md`` (generated; ratios against the CSR baseline of the same run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
from pathlib import Path

import torch
import torch_geometric
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.conv.gcn_conv import gcn_norm

import continuous_gnn
from continuous_gnn import Graph
from continuous_gnn.atomic import atomic_write_text, check_output_file
from continuous_gnn.benchmarks.timing import compare
from continuous_gnn.data import DatasetUnavailableError, canonical_name, default_cache_dir, load_dataset, resolve_data_root

REPO = Path(__file__).resolve().parents[1]
SCRIPT = "python experiments/operator_benchmark.py"


class WeightedSum(MessagePassing):
    """Σ_j w_ij x_j by PyG message passing."""

    def __init__(self) -> None:
        super().__init__(aggr="add")

    def forward(self, x, edge_index, edge_weight):
        return self.propagate(edge_index, x=x, edge_weight=edge_weight)

    def message(self, x_j, edge_weight):
        return edge_weight.view(-1, 1) * x_j


def _forward_backward(fn, x: torch.Tensor):
    """One forward + backward of ``fn(x).square().sum()``."""
    def run() -> None:
        x.grad = None
        fn(x).square().sum().backward()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=SCRIPT, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--dataset", default="squirrel", help="benchmark graph to propagate on (default: squirrel)")
    parser.add_argument("--channels", type=int, default=128, help="columns of X (default: 128)")
    parser.add_argument("--repeats", type=int, default=30,
                        help="timed repeats of each operator; the page reports their median (default: 30)")
    parser.add_argument("--data-root", default=None,
                        help="raw data root (default: $CONTINUOUS_GNN_DATA, else the user cache)")
    parser.add_argument("--out", default=str(REPO / "docs" / "operator.md"),
                        help="markdown page to write (default: docs/operator.md)")
    args = parser.parse_args(argv)
    for flag, value in (("--channels", args.channels), ("--repeats", args.repeats)):
        if value < 1:
            parser.error(f"{flag} must be a positive integer, got {value}")
    try:
        args.dataset = canonical_name(args.dataset)
    except ValueError as err:
        parser.error(f"--dataset: {err}")
    try:
        check_output_file(args.out, "--out")
    except ValueError as err:
        parser.error(str(err))
    root = resolve_data_root(args.data_root, os.environ)
    if not root.is_dir():
        parser.error(f"data root {str(root)!r} is not a folder; pass --data-root or set CONTINUOUS_GNN_DATA to the "
                     "folder of the raw benchmark data")

    torch.set_num_threads(1)
    try:
        dataset = load_dataset(args.dataset, root, cache_dir=default_cache_dir(os.environ))
    except DatasetUnavailableError as err:  # missing raw files, or files that fail their checksums
        parser.error(str(err))
    data = dataset.data
    graph = Graph.from_data(data)
    x = torch.randn(data.num_nodes, args.channels, generator=torch.Generator().manual_seed(0), requires_grad=True)
    layer = WeightedSum()

    def csr(h):
        return graph.propagate(h)

    def message_passing(h):
        return layer(h, graph.edge_index, graph.edge_weight)

    def message_passing_renormalised(h):
        edge_index, edge_weight = gcn_norm(data.edge_index, None, data.num_nodes, add_self_loops=True)
        return layer(h, edge_index, edge_weight)

    reference = csr(x).detach()
    for fn in (message_passing, message_passing_renormalised):
        torch.testing.assert_close(fn(x).detach(), reference, rtol=1e-5, atol=1e-5)

    contestants = {"csr (cached, the package)": csr, "message passing": message_passing,
                   "message passing + gcn_norm per call": message_passing_renormalised}
    comparison = compare({name: _forward_backward(fn, x) for name, fn in contestants.items()},
                         repeats=args.repeats, warmup=3)
    rows = [(timing.name, timing.median) for timing in comparison.timings]
    for name, seconds in rows:
        print(f"{name}: {1000 * seconds:.2f} ms", file=sys.stderr)
    baseline = rows[0][1]

    command = shlex.join([*SCRIPT.split(), *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "<!-- GENERATED by experiments/operator_benchmark.py: do not edit by hand. -->",
        "",
        "# Graph operator: cached CSR against message passing",
        "",
        f"- **Generated:** {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `{command}`",
        f"- **Machine:** {platform.platform()}, {os.cpu_count()} CPUs, 1 torch thread",
        f"- **Versions:** continuous_gnn {continuous_gnn.__version__}, torch {torch.__version__}, "
        f"torch_geometric {torch_geometric.__version__}",
        f"- **Workload:** `ĀX` forward + backward on {args.dataset} ({data.num_nodes} nodes, "
        f"{graph.edge_index.size(1)} non-zeros of Ā with self-loops), {args.channels} channels, float32; "
        f"median of {args.repeats} repeats after 3 warm-ups, the three interleaved round by round. All three give "
        "the same `ĀX` (checked).",
        "",
        "| operator | ms | ratio to CSR |",
        "|---|---:|---:|",
        *[f"| {name} | {1000 * seconds:.2f} | {seconds / baseline:.2f} |" for name, seconds in rows],
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
