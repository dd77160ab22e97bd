"""``continuous-gnn bench``: the performance benchmark; writes docs/performance.md.

Sections (``--sections``, default all), each timed in one process with its contestants interleaved
(:mod:`continuous_gnn.benchmarks.timing`), or point by point in processes of their own where memory or the allocator is
measured:

====  ==========================================================================================================
a     a training epoch of the package's GRAFF model against a PyG GCNConv stack, on the benchmark datasets
b     ``integrate`` (Euler) against a hand-written loop of the same update
c     one field evaluation against the sparse and dense products it needs
d     peak memory and time of direct backprop against the adjoint as T grows
e     time and memory of one field evaluation on synthetic graphs of growing size, forward and (up to
      ``--backward-max-nodes``) forward + backward; the fitted exponents
f     section e's largest community graph timed forward + backward (at most 10⁶ nodes), under each allocator
      setting
g     mini-batch training against full batch on tolokers and a 10⁶-node graph; one epoch of a 10⁷-node graph
      (``--large-nodes``), trained and evaluated in batches
h     section e's community graph (10⁵ and 10⁶ nodes) as numbered and relabelled by each node order for
      locality (:mod:`continuous_gnn.node_order`), one field evaluation forward + backward
====  ==========================================================================================================

The full run is sized to finish within about 40 minutes on a quiet 2-core machine; the page records what each
section took. ``--quick`` runs every section at toy sizes with one or two repeats (a check that the benchmark
works: its numbers mean nothing). Progress goes to stderr, one line per measured item.

The allocator is that of the environment, in this process and in every child: the variables that choose it when a
process starts (``GLIBC_TUNABLES``, ``LD_PRELOAD``, ...) or ``CONTINUOUS_GNN_ALLOCATOR=keep``, which this process
applies too (:func:`continuous_gnn.allocator.arrange_from_environment`). The page's command line shows the ones
set, so that it reruns as it ran; section f compares the settings one by one.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from ..allocator import ALLOCATOR_ENV, arrange_from_environment, release_freed_memory
from ..atomic import atomic_write_text, check_output_file
from ..benchmarks.epoch import EpochSettings
from ..benchmarks.locality import LocalitySettings
from ..benchmarks.memory import MemorySettings
from ..benchmarks.minibatch import MinibatchSettings
from ..benchmarks.overhead import OverheadSettings
from ..benchmarks.scaling import ScalingSettings
from ..training.build import SPARSE_FEATURE_DENSITY
from .common import Subcommand, UsageError, at_least, check_distinct_outputs, choices, project_dir

__all__ = ["COMMAND", "SECTIONS", "DATASETS", "plan", "recorded_command"]

SECTIONS = {"a": "model epoch against PyG", "b": "solver overhead", "c": "field against its lower bound",
            "d": "memory: direct backprop against the adjoint", "e": "scaling with the graph",
            "f": "allocators", "g": "mini-batch training", "h": "node order for locality"}
DATASETS = ("cora", "chameleon", "squirrel", "film", "tolokers")
FULL_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (500, 1_000, 2_000)
ALLOCATOR_NODES = 1_000_000
#: Seconds of timed evaluations that each point of sections e and f aims at, counted at the pace of its first
#: evaluation (the slowest, since it page-faults its memory in). On the 10⁶-node graphs a forward + backward
#: evaluation takes about a second, and in otherwise quiet runs some took two to two and a half times as long: the
#: three samples that 2 s gave there let such a one be the median in some runs, which moved the fitted exponent by
#: several tenths. Ten seconds give four to seven samples there, which outvote one such.
SCALING_MIN_SECONDS = 10.0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sections", default=",".join(SECTIONS), metavar="LIST",
                        help="comma-separated sections to run, from " + ", ".join(f"{k} ({v})" for k, v in
                                                                                   SECTIONS.items()))
    parser.add_argument("--quick", action="store_true",
                        help="toy sizes and one or two repeats: checks the benchmark, measures nothing")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--max-nodes", type=at_least(1, int), default=10_000_000, metavar="N",
                        help="largest synthetic graph of sections e and f (section f stops at 10^6 nodes); "
                             "graphs above --backward-max-nodes are timed forward only (a point killed for memory "
                             "is reported as failed) (default: 10000000)")
    parser.add_argument("--backward-max-nodes", type=at_least(1, int), default=1_000_000, metavar="N",
                        help="largest graph of section e whose field evaluation is also timed with its backward "
                             "pass, which holds several more nodes x 64 tensors at once (default: 1000000)")
    parser.add_argument("--large-nodes", type=at_least(0, int), default=10_000_000, metavar="N",
                        help="nodes of section g's graph that trains one epoch on random batches and is evaluated "
                             "in batches; 0 leaves it out (default: 10000000; docs/performance.md gives its memory peak)")
    parser.add_argument("--datasets", default=None, metavar="LIST",
                        help=f"datasets of section a (default: {','.join(DATASETS)}; with --quick: cora)")
    parser.add_argument("--repeats", type=at_least(1, int), default=None,
                        help="timed repeats of sections a-c (default: 10, with --quick 2; section c, whose "
                             "evaluations are short, takes five times as many, except with --quick); sections d-f "
                             "take a third of it, at least 1")
    parser.add_argument("--threads", type=at_least(1, int), default=None,
                        help="torch threads, here and in every child process (default: torch's, all cores)")
    parser.add_argument("--timeout", type=at_least(1, float), default=900.0,
                        help="seconds per child process of sections d-h (default: 900; section g at least 1800)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="raw benchmark data (default: $CONTINUOUS_GNN_DATA, else $XDG_CACHE_HOME or ~/.cache, under "
                             "continuous_gnn/data)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="processing cache (default: ~/.cache/continuous_gnn/processed)")
    parser.add_argument("--out", default=str(project_dir() / "docs" / "performance.md"),
                        help="the page (default: docs/performance.md)")
    parser.add_argument("--json", default=None, help="also write the raw results here")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every setting of one run, resolved from the flags."""

    sections: tuple[str, ...]
    quick: bool
    device: str
    threads: int
    datasets: tuple[str, ...]
    epoch: EpochSettings
    overhead: OverheadSettings
    memory: MemorySettings
    scaling: ScalingSettings
    allocator_nodes: int
    minibatch: MinibatchSettings
    locality: LocalitySettings


def plan(args: argparse.Namespace) -> Plan:
    """The run's settings; raises :class:`UsageError` on a bad flag, before any work."""
    import torch

    sections = tuple(sorted(choices(args.sections, "--sections", list(SECTIONS))))
    if args.device not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA device here; run on a GPU machine or use --device cpu")
    quick = args.quick
    datasets = tuple(choices(args.datasets, "--datasets", DATASETS)) if args.datasets else (
        ("cora",) if quick else DATASETS)
    repeats = args.repeats or (2 if quick else 10)
    few = max(1, repeats // 3)
    sizes = tuple(n for n in (QUICK_SIZES if quick else FULL_SIZES) if n <= args.max_nodes)
    if ("e" in sections or "f" in sections) and not sizes:
        raise UsageError(f"--max-nodes {args.max_nodes} leaves no graph size; the smallest is "
                         f"{(QUICK_SIZES if quick else FULL_SIZES)[0]}")
    # --quick times its largest graph forward only, so that the check covers both kinds of point
    backward_max_nodes = QUICK_SIZES[1] if quick else args.backward_max_nodes
    if sizes and backward_max_nodes < sizes[0]:
        raise UsageError(f"--backward-max-nodes {backward_max_nodes} is below the smallest graph ({sizes[0]} nodes): "
                         "no point would time the backward pass; raise it")
    return Plan(
        sections=sections, quick=quick, device=args.device, threads=args.threads or torch.get_num_threads(),
        datasets=datasets,
        epoch=EpochSettings(repeats=repeats, warmup=1 if quick else 2),
        overhead=OverheadSettings(sizes=QUICK_SIZES[:2] if quick else (3_000, 100_000), repeats=repeats,
                                  field_repeats=repeats if quick else 5 * repeats, warmup=1 if quick else 2),
        memory=MemorySettings(nodes=QUICK_SIZES[0] if quick else 10_000,
                              horizons=(4, 8) if quick else (4, 8, 16, 32, 64), repeats=few, timeout=args.timeout),
        scaling=ScalingSettings(sizes=sizes, repeats=few, min_seconds=0.0 if quick else SCALING_MIN_SECONDS,
                                fit_from=sizes[1 if len(sizes) > 1 else 0] if quick else 100_000, timeout=args.timeout,
                                backward_max_nodes=backward_max_nodes),
        allocator_nodes=max([n for n in sizes if n <= min(ALLOCATOR_NODES, backward_max_nodes)] or [sizes[0]]),
        minibatch=MinibatchSettings(dataset="cora", splits=(0,), synthetic_nodes=(QUICK_SIZES[-1],),
                                    large_nodes=2 * QUICK_SIZES[-1], epochs=2, synthetic_epochs=2,
                                    timeout=args.timeout) if quick else
        MinibatchSettings(dataset="tolokers", splits=(0, 1, 2), synthetic_nodes=(1_000_000,),
                          large_nodes=args.large_nodes or None, epochs=50,
                          synthetic_epochs=3, timeout=max(args.timeout, 1800.0)),
        locality=LocalitySettings(sizes=QUICK_SIZES[-1:], repeats=1, warmup=0) if quick else
        LocalitySettings(sizes=(100_000, 1_000_000), repeats=max(7, few), warmup=1),
    )


def recorded_command(argv: list[str], environ: Mapping[str, str]) -> str:
    """The command line that reruns this benchmark, its allocator variables first (as a shell would take them;
    ``CONTINUOUS_GNN_ALLOCATOR=system``, the benchmark's own default, is left out)."""
    from ..benchmarks.allocators import ALLOCATOR_VARIABLES

    settings = [f"{key}={shlex.quote(environ[key])}" for key in ALLOCATOR_VARIABLES if environ.get(key)
                and not (key == ALLOCATOR_ENV and environ[key].strip().lower() == "system")]
    return " ".join([*settings, "continuous-gnn", *(shlex.quote(a) for a in argv)])


def _load_datasets(args: argparse.Namespace, names: tuple[str, ...]) -> list:
    from ..data import default_cache_dir, load_dataset, resolve_data_root

    root = resolve_data_root(args.data_root, os.environ)
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir(os.environ)
    return [load_dataset(name, root, cache_dir=cache) for name in names]


def _bench(args: argparse.Namespace, argv: list[str]) -> int:
    import torch

    from ..benchmarks import allocators, epoch, locality, memory, minibatch, overhead, scaling
    from ..node_order import NODES_PER_CLUSTER
    from .bench_page import render, versions

    settings = plan(args)
    check_output_file(args.out, "--out")
    check_distinct_outputs(("--out", args.out), ("--json", args.json))
    arrange_from_environment("system")  # CONTINUOUS_GNN_ALLOCATOR=keep applies here as in the children
    if args.json:
        check_output_file(args.json, "--json")
    datasets = _load_datasets(args, settings.datasets) if "a" in settings.sections else []
    if "g" in settings.sections and settings.minibatch.dataset is not None:  # before sections a to f, not after
        from ..data import check_dataset_files, resolve_data_root

        check_dataset_files(settings.minibatch.dataset, resolve_data_root(args.data_root, os.environ))
    torch.set_num_threads(settings.threads)
    started = time.perf_counter()
    record: dict = {"meta": {
        "command": recorded_command(argv, os.environ),
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "quick": settings.quick,
        "device": settings.device, "threads": settings.threads, "versions": versions(),
        "gpu": torch.cuda.get_device_name(0) if settings.device == "cuda" else None,
        "allocator": allocators.describe(os.environ), "sections": list(settings.sections),
        "settings": {name: dataclasses.asdict(getattr(settings, name))
                     for name in ("epoch", "overhead", "memory", "scaling", "minibatch", "locality")},
        "allocator_nodes": settings.allocator_nodes, "durations": {},
    }, "sections": {}}
    results = record["sections"]
    device, threads = settings.device, settings.threads

    def say(section: str, line: str) -> None:
        print(f"[bench {section} {time.perf_counter() - started:6.0f}s] {line}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="continuous_gnn_graphs_") as graphs:
        for section in settings.sections:
            say(section, f"start: {SECTIONS[section]}")
            began = time.perf_counter()
            if section == "a":
                rows = []
                for i, dataset in enumerate(datasets, 1):
                    row = epoch.epoch_comparison(dataset, settings.epoch, device)
                    rows.append(row)
                    say(section, f"{i}/{len(datasets)} {dataset.name}: " + ", ".join(
                        f"{t.name} {1000 * t.median:.1f} ms" for t in row.comparison.timings))
                results["a"] = {"rows": rows, "fused_edge_index": epoch.fused_edge_index(),
                                "sparse_density": SPARSE_FEATURE_DENSITY}
            elif section in ("b", "c"):
                rows = []
                for nodes in settings.overhead.sizes:
                    if section == "b":
                        row = overhead.solver_overhead(nodes, settings.overhead, device)
                        rows.append(row)
                        say(section, f"{nodes} nodes: " + ", ".join(
                            f"{t.name} {1000 * t.median:.2f} ms" for t in row.comparison.timings))
                    else:
                        for row in overhead.field_bound(nodes, settings.overhead, device):
                            rows.append(row)
                            say(section, f"{nodes} nodes, {row.mode}: field/lower bound {row.ratio:.2f}")
                results[section] = {"rows": rows}
            elif section == "d":
                results["d"] = {"points": memory.memory_vs_t(
                    settings.memory, device=device, threads=threads, environ=os.environ, cache_dir=graphs,
                    progress=lambda line: say("d", line))}
            elif section == "e":
                points, exponents = scaling.scaling(settings.scaling, device=device, threads=threads,
                                                    environ=os.environ, cache_dir=graphs,
                                                    progress=lambda line: say("e", line))
                results["e"] = {"points": points, "exponents": exponents}
            elif section == "g":
                from ..data import default_cache_dir, resolve_data_root

                # absolute: the measurements run in a folder of their own
                root = str(resolve_data_root(args.data_root, os.environ).resolve())
                cache = str(Path(args.cache_dir or default_cache_dir(os.environ)).resolve())
                results["g"] = minibatch.minibatch_comparison(
                    settings.minibatch, device=device, threads=threads, environ=os.environ, data_root=root,
                    cache_dir=cache, progress=lambda line: say("g", line))
            elif section == "h":
                rows = locality.locality_rows(settings.locality, device=device, threads=threads, environ=os.environ,
                                              timeout=args.timeout, progress=lambda row: say("h", (
                                                  f"{row.nodes} nodes: FAILED {row.failed}" if row.failed else
                                                  f"{row.nodes} nodes: " + ", ".join(
                                                      f"{t.name} {1000 * t.median:.1f} ms"
                                                      for t in row.comparison.timings))))
                results["h"] = {"rows": rows, "nodes_per_cluster": NODES_PER_CLUSTER,
                                "not_installed": {method: package for method, package in locality.ORDER_PACKAGES.items()
                                                  if method not in locality.available_orders()}}
            elif device == "cpu":
                results["f"] = {"points": scaling.allocator_comparison(
                    settings.scaling, allocators.variants(), nodes=settings.allocator_nodes, kind="sbm",
                    device=device, threads=threads, environ=os.environ, cache_dir=graphs,
                    progress=lambda line: say("f", line)), "jemalloc_found": allocators.jemalloc() is not None}
            else:
                results["f"] = {"points": [], "skipped": "the allocator only matters for CPU tensors"}
            # This process keeps freed memory (when the environment says keep); the measurements of the later
            # sections run in processes of their own and need it more.
            release_freed_memory()
            record["meta"]["durations"][section] = time.perf_counter() - began
            say(section, f"done in {time.perf_counter() - began:.0f} s")
    record["meta"]["total_s"] = time.perf_counter() - started
    record = json.loads(json.dumps(record, default=_plain))
    if args.json:
        atomic_write_text(args.json, json.dumps(record, indent=1))
    atomic_write_text(args.out, render(record))
    print(f"wrote {args.out} in {record['meta']['total_s'] / 60:.1f} min", file=sys.stderr)
    return 0


def _plain(value: object) -> object:
    """JSON form of the result dataclasses (including the computed properties the page reads)."""
    if dataclasses.is_dataclass(value):
        plain = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        for name in ("median", "lower_bound", "ratio"):
            if isinstance(getattr(type(value), name, None), property):
                plain[name] = getattr(value, name)
        return plain
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


COMMAND = Subcommand(
    "bench", "the performance benchmark: epoch against PyG, overheads, memory, scaling; writes docs/performance.md",
    _arguments, _bench,
    description=("The performance benchmark, written to docs/performance.md: (a) a training epoch of the package's "
                 "GRAFF model against a PyG GCNConv stack on the benchmark datasets; (b) integrate against a "
                 "hand-written Euler loop; (c) one field evaluation against the products it needs; (d) peak memory "
                 "and time of direct backprop against the adjoint as T grows; (e) one field evaluation on synthetic "
                 "graphs of growing size (forward, and forward + backward up to --backward-max-nodes), with the fitted "
                 "exponents; (f) section e's largest community graph under "
                 "each allocator setting; (g) mini-batch training against full batch on tolokers and a 10^6-node "
                 "graph, and one epoch of a 10^7-node graph (--large-nodes), trained and evaluated in batches; (h) "
                 "one field evaluation on section e's community graph as numbered and relabelled by each node order "
                 "for locality. The full run is sized to finish within about 40 minutes on a quiet 2-core machine and prints one "
                 "progress line per measured item; the page records what each section took. The allocator is the "
                 "environment's (e.g. CONTINUOUS_GNN_ALLOCATOR=keep), here and in every child; the page's command "
                 "shows it. --quick runs every section at toy sizes (a check, not a measurement)."),
)
