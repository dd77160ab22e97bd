"""The performance benchmark: the timing helper, the exponent fit, the allocator settings, the benchmark graphs,
the isolated measurements, and ``continuous-gnn bench --quick`` end to end (page structure, every number from the
run)."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import random
import re

import pytest
import torch

from continuous_gnn.benchmarks import allocators, epoch, graphs, memory, minibatch, scaling
from continuous_gnn.benchmarks.isolated import run_isolated
from continuous_gnn.benchmarks.scaling import fit_exponent
from continuous_gnn.benchmarks.timing import compare
from continuous_gnn.cli import build_parser, main

# ---------------------------------------------------------------------- timing helper


class FakeClock:
    """A clock that each contestant advances by its own cost, so the timings are known exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def runner(self, log: list, name: str, costs: list[float]):
        def run() -> None:
            log.append(name)
            self.now += costs[len([n for n in log if n == name]) - 1]
        return run


def test_compare_interleaves_in_rotating_order_and_skips_the_warmup():
    clock, log = FakeClock(), []
    costs = {"a": [1.0] * 5, "b": [2.0] * 5, "c": [3.0] * 5}
    result = compare({name: clock.runner(log, name, costs[name]) for name in costs}, repeats=3, warmup=2, clock=clock)
    expected = ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c", "b", "c", "a"]
    assert log == expected and list(result.order) == expected
    assert [len(t.samples) for t in result.timings] == [3, 3, 3]
    assert result.baseline == "a"


def test_compare_reports_medians_and_ratios_to_the_first_contestant():
    clock, log = FakeClock(), []
    costs = {"base": [9.0, 1.0, 5.0, 3.0], "other": [9.0, 4.0, 100.0, 8.0]}  # first run of each is warm-up
    result = compare({name: clock.runner(log, name, c) for name, c in costs.items()}, repeats=3, warmup=1,
                     clock=clock)
    assert result["base"].samples == (1.0, 5.0, 3.0) and result.median("base") == 3.0
    assert result.median("other") == 8.0 and result["other"].minimum == 4.0
    assert result.ratio("other") == pytest.approx(8.0 / 3.0)
    assert result.ratio("base", baseline="other") == pytest.approx(3.0 / 8.0)
    with pytest.raises(KeyError, match="no contestant 'missing'"):
        result.ratio("missing")


def test_compare_synchronizes_around_every_run():
    events = []
    compare({"x": lambda: events.append("run")}, repeats=2, warmup=0, synchronize=lambda: events.append("sync"))
    assert events == ["sync", "run", "sync"] * 2


@pytest.mark.parametrize(("kwargs", "message"), [({"repeats": 0}, "repeats"), ({"repeats": 1, "warmup": -1}, "warmup")])
def test_compare_rejects_bad_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare({"x": lambda: None}, **kwargs)
    with pytest.raises(ValueError, match="at least one contestant"):
        compare({}, repeats=1)


# ---------------------------------------------------------------------- exponent fit


def test_fit_exponent_recovers_a_power_law_and_averages_noise():
    sizes = [1e5, 1e6, 1e7]
    assert fit_exponent(sizes, [3e-9 * n ** 1.29 for n in sizes]) == pytest.approx(1.29)
    # Symmetric noise on the middle point leaves the least-squares slope unchanged.
    assert fit_exponent(sizes, [1e5, 1e6 * 1.5, 1e7]) == pytest.approx(1.0)
    assert fit_exponent([2, 4], [1, 4]) == pytest.approx(2.0)


@pytest.mark.parametrize(("sizes", "times", "message"), [
    ([1e5], [1.0], "two distinct sizes"), ([1e5, 1e5], [1.0, 2.0], "two distinct sizes"),
    ([1e5, 1e6], [0.0, 1.0], "positive"), ([1e5, 1e6], [1.0], "same length")])
def test_fit_exponent_rejects_what_it_cannot_fit(sizes, times, message):
    with pytest.raises(ValueError, match=message):
        fit_exponent(sizes, times)


# ---------------------------------------------------------------------- allocators and graphs


def test_allocator_settings_replace_the_environment_variables():
    environ = {"PATH": "/bin", "LD_PRELOAD": "libtcmalloc.so", "MALLOC_CONF": "x", "OMP_NUM_THREADS": "8"}
    assert "LD_PRELOAD=libtcmalloc.so" in allocators.describe(environ)
    assert allocators.describe({"PATH": "/bin"}).startswith("glibc default")
    env = allocators.child_environment(environ, allocators.GLIBC_TUNED, threads=2)
    assert "LD_PRELOAD" not in env and "MALLOC_CONF" not in env and env["PATH"] == "/bin"
    assert env["GLIBC_TUNABLES"].startswith("glibc.malloc.mmap_threshold=") and env["OMP_NUM_THREADS"] == "2"
    assert allocators.child_environment(environ, None) == environ
    names = [a.name for a in allocators.variants("libjemalloc.so.2")]
    assert names == ["glibc default", "glibc, no mmap/trim", "glibc, kept at run time",
                     "glibc, kept at run time, huge pages", "jemalloc"]
    assert set(allocators.ISSUE_SECONDS) <= set(names)  # the quoted numbers name settings the page lists
    kept = allocators.child_environment(environ, allocators.GLIBC_KEPT)
    assert kept["CONTINUOUS_GNN_ALLOCATOR"] == "keep" and "LD_PRELOAD" not in kept
    huge = allocators.child_environment({**environ, "THP_MEM_ALLOC_ENABLE": "1"}, allocators.GLIBC_KEPT)
    assert "THP_MEM_ALLOC_ENABLE" not in huge  # only the huge-pages row asks for them
    huge = allocators.child_environment(environ, allocators.GLIBC_KEPT_HUGE)
    assert huge["THP_MEM_ALLOC_ENABLE"] == "1" and huge["CONTINUOUS_GNN_ALLOCATOR"] == "keep"


def test_uniform_graph_has_equal_edge_probability_inside_and_across():
    for n in (64, 101, 1000):
        h = graphs.uniform_homophily(n)
        inside = math.comb(-(-n // 2), 2) + math.comb(n // 2, 2)
        across = math.comb(n, 2) - inside
        assert h / inside == pytest.approx((1 - h) / across)


def test_benchmark_graphs_are_undirected_with_the_asked_degree_and_cache(tmp_path):
    from torch_geometric.utils import is_undirected

    for kind in graphs.KINDS:
        cache = tmp_path / f"{kind}.pt"
        edges = graphs.benchmark_edges(kind, 4000, 10.0, cache=str(cache))
        assert is_undirected(edges) and bool((edges[0] != edges[1]).all())
        assert edges.size(1) / 4000 == pytest.approx(10.0, rel=0.1)
        assert torch.equal(graphs.benchmark_edges(kind, 4000, 10.0, cache=str(cache)), edges)
    with pytest.raises(ValueError, match="unknown graph kind"):
        graphs.benchmark_edges("grid", 100, 4.0)
    with pytest.raises(ValueError, match="at least 64 nodes"):
        graphs.benchmark_edges("sbm", 10, 4.0)


def test_community_graph_keeps_most_edges_inside_communities_with_shuffled_ids():
    from continuous_gnn.data import contextual_sbm, edge_homophily

    n = 4000
    edges = graphs.benchmark_edges("sbm", n, 10.0, seed=3)
    labels = contextual_sbm(n, graphs.COMMUNITIES, graphs.INSIDE, 10.0, graphs.COMMUNITIES, seed=3).y
    assert edge_homophily(edges, labels) == pytest.approx(graphs.INSIDE, abs=0.02)
    # Were communities contiguous id ranges, most edges would join ids closer than a community's size.
    close = ((edges[0] - edges[1]).abs() < n // graphs.COMMUNITIES).float().mean()
    assert close < 0.2


def test_measure_peak_sees_a_large_allocation():
    from continuous_gnn.benchmarks.peak import measure_peak

    result, peak = measure_peak(lambda: torch.ones(50_000_000).sum())  # 200 MB, written, then freed
    assert float(result) == 50_000_000
    if peak.method == "VmHWM reset":
        assert 150 * 2**20 < peak.bytes < 400 * 2**20


def test_isolated_measurements_return_results_in_order_and_failures_as_data():
    import os

    seen = []
    spec = dict(degree=6.0, hidden=4, repeats=1, device="cpu", threads=1)
    slow = dict(kind="uniform", nodes=400_000, degree=10.0, hidden=64, repeats=100, device="cpu", threads=1)
    # One server for all three (its start is the slow part): a point, a failing point, a point over its timeout.
    results = run_isolated("continuous_gnn.benchmarks.scaling:scaling_point",
                           [dict(kind="sbm", nodes=400, **spec), dict(kind="grid", nodes=400, **spec), slow],
                           env=allocators.child_environment(os.environ, allocators.GLIBC_TRACKING), timeout=5,
                           on_result=lambda index, result: seen.append(index))
    assert seen == [0, 1, 2]
    assert results[0]["nnz"] == results[0]["edges"] + 400 and results[0]["loaded"] == "glibc"
    assert results[1]["failed"].startswith("ValueError: unknown graph kind")
    assert results[2]["failed"] == "timed out after 5 s"
    with pytest.raises(ValueError, match="continuous_gnn.benchmarks"):
        run_isolated("os:system", [{}], env=os.environ, timeout=1)


@pytest.mark.slow  # 12 s; the isolated runner's default checks stay in test_isolated_measurements_...
def test_a_point_above_the_backward_limit_is_timed_forward_only_and_fitted_apart():
    import os

    settings = scaling.ScalingSettings(sizes=(300, 600, 1200), kinds=("sbm",), degree=6.0, hidden=4, repeats=1,
                                       fit_from=300, backward_max_nodes=600)
    points, exponents = scaling.scaling(settings, device="cpu", threads=1, environ=os.environ)
    both = [p for p in points if math.isfinite(p.median_s)]
    assert [p.nodes for p in both] == [300, 600] and all(p.median_s > p.forward_s > 0 for p in both)
    assert math.isnan(points[2].median_s) and points[2].forward_s > 0 and points[2].peak_bytes >= 0
    assert [p.nodes for p in scaling.fitted_points(points, "sbm", 300, "forward")] == [300, 600, 1200]
    assert exponents["sbm"]["forward"] == pytest.approx(
        fit_exponent([p.nnz for p in points], [p.forward_s for p in points]))
    assert exponents["sbm"]["forward + backward"] == pytest.approx(
        fit_exponent([p.nnz for p in both], [p.median_s for p in both]))
    with pytest.raises(ValueError, match="below the smallest size"):
        scaling.ScalingSettings(sizes=(300, 600), backward_max_nodes=100)


@pytest.mark.slow  # 11 s
def test_a_point_whose_evaluations_are_short_is_timed_until_min_seconds_have_passed():
    import os

    spec = dict(kind="sbm", nodes=400, degree=6.0, hidden=4, repeats=2, device="cpu", threads=1)
    env = allocators.child_environment(os.environ, allocators.GLIBC_TRACKING)
    few, many = run_isolated("continuous_gnn.benchmarks.scaling:scaling_point",
                             [spec, dict(spec, min_seconds=0.2)], env=env, timeout=60)
    # An evaluation of 400 nodes takes well under 10 ms: 2 samples without min_seconds, far more with it.
    assert len(few["samples"]) == few["timed"] == 2
    assert 20 < len(many["samples"]) == many["timed"] <= scaling.MAX_REPEATS
    with pytest.raises(ValueError, match="min_seconds must be finite and >= 0"):
        scaling.ScalingSettings(sizes=(300,), min_seconds=-1.0)


def test_measurements_on_cuda_are_spawned():
    import continuous_gnn.benchmarks.isolated as isolated

    assert isolated.start_method([{"device": "cpu"}, {}]) == "fork"
    assert isolated.start_method([{"device": "cpu"}, {"device": "cuda:1"}]) == "spawn"


@pytest.mark.slow  # a fresh interpreter for the server and another for the measurement: about 15 s
def test_spawned_measurements_work(monkeypatch):
    import os

    import continuous_gnn.benchmarks.isolated as isolated

    # A spawned measurement (what a CUDA run gets) runs in a fresh interpreter with the server's environment.
    monkeypatch.setattr(isolated, "start_method", lambda specs: "spawn")
    spec = dict(kind="sbm", nodes=400, degree=6.0, hidden=4, repeats=1, device="cpu", threads=1)
    [result] = run_isolated("continuous_gnn.benchmarks.scaling:scaling_point", [spec],
                            env=allocators.child_environment(os.environ, allocators.GLIBC_TRACKING), timeout=60)
    assert result["nnz"] == result["edges"] + 400 and result["loaded"] == "glibc"


# ---------------------------------------------------------------------- the command


def _numbers(text: str) -> list[float]:
    return [float(token) for token in re.findall(r"\d+(?:\.\d+)?", text)]


def _unchanged_numbers(first: str, second: str) -> set[float]:
    """The numbers at the same place of two renderings of a page (aligned as sequences of tokens)."""
    tokenize = re.compile(r"\d+(?:\.\d+)?|[^\d\s]+").findall
    a, b = tokenize(first), tokenize(second)
    same = set()
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        same.update(float(token) for token in a[block.a:block.a + block.size] if token[0] in "0123456789")
    return same


def _perturb(value, rng: random.Random):
    """Every measured number changed by its own factor, so ratios between them change too."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value * rng.randint(3, 9) + rng.randint(1, 9)
    if isinstance(value, float):
        return value * rng.uniform(1.3, 3.1) + rng.uniform(0.01, 0.9)
    if isinstance(value, dict):
        return {key: _perturb(item, rng) for key, item in value.items()}
    if isinstance(value, list):
        return [_perturb(item, rng) for item in value]
    return value


_SECTION_LABELS = {
    "a": ("## a. Model epoch against PyG", "| Cora | 2708 |"), "b": ("## b. Solver overhead",),
    "c": ("## c. Field against its lower bound",), "d": ("## d. Memory",), "e": ("## e. Scaling with the graph",),
    "f": ("| setting | environment | loaded |",), "g": ("## g. Mini-batch training against full batch",),
    "h": ("## h. Node order for locality",),
}


# Sections d to h start a fresh interpreter for each point, setting or loader (about 65 s of the 75 s of all eight):
# the default run checks sections a to c, in one process, the slow run the others.
@pytest.mark.data
@pytest.mark.parametrize("sections", ["a,b,c", pytest.param("d,e,h", marks=pytest.mark.slow),
                                      pytest.param("f,g", marks=pytest.mark.slow)])
def test_quick_bench_writes_a_page_whose_numbers_all_come_from_the_run(data_root, data_cache, tmp_path, sections):
    from continuous_gnn.cli.bench_page import render
    from continuous_gnn.cli.solvers_page import machine

    out, record_file = tmp_path / "performance.md", tmp_path / "record.json"
    argv = ["bench", "--quick", "--sections", sections, "--threads", "1", "--data-root", str(data_root),
            "--cache-dir", str(data_cache), "--out", str(out), "--json", str(record_file)]
    assert main(argv) == 0
    page, record = out.read_text(), json.loads(record_file.read_text())
    for section, labels in _SECTION_LABELS.items():
        for label in labels:
            assert (label in page) == (section in sections.split(",")), label
    # Section f's heading and its advice stand on every page, since the advice holds without the measurement.
    assert ("Not run (section f not selected)." in page) == ("f" not in sections)
    for label in ("# Performance", "## f. Allocators", "### What to set", "GENERATED by continuous-gnn bench",
                  "**Quick mode.**", "**Generated:**", "**Command:** `continuous-gnn bench --quick", "**Machine:**",
                  "**Versions:**", "torch_geometric"):
        assert label in page
    assert "failed" not in page.lower()
    assert render(record) == page  # the page is a function of the record alone
    assert "forked from a fresh interpreter" in page and record["meta"]["gpu"] is None
    on_gpu = render({**record, "meta": {**record["meta"], "device": "cuda", "gpu": "Example GPU"}})
    assert "device cuda (Example GPU)" in on_gpu and "spawned from a fresh interpreter" in on_gpu
    assert page.startswith("# Performance\n") and on_gpu.startswith("# Performance on a GPU (cuda)\n")

    # Change every measured number: what stays on the page must be a setting of the run or a quoted constant.
    # Three independent perturbations: a ratio of two changed numbers can round to its old value by chance in
    # one of them, a number typed by hand stays in all.
    constant = None
    for seed in range(3):
        rng = random.Random(seed)
        meta = {**record["meta"], "durations": _perturb(record["meta"]["durations"], rng),
                "total_s": _perturb(record["meta"]["total_s"], rng)}
        changed = render({"meta": meta, "sections": _perturb(record["sections"], rng)})
        unchanged = _unchanged_numbers(page, changed)
        constant = unchanged if constant is None else constant & unchanged
    quoted = " ".join([json.dumps(record["meta"]), machine(), epoch.OFFICIAL_SOURCE, str(epoch.OFFICIAL_EPOCH_MS),
                       allocators.ISSUE_SOURCE, str(allocators.ISSUE_SECONDS), str(memory.TARGET_RATIO),
                       str(scaling.TARGET_EXPONENT), str(scaling.MAX_REPEATS),
                       allocators.GLIBC_TUNED.shell(), allocators.GLIBC_TRACKING.shell(), str(graphs.COMMUNITIES),
                       str(100 * graphs.INSIDE), allocators.jemalloc("libjemalloc.so.2").shell(),
                       str(int(dict(allocators.GLIBC_TRACKING.variables)["MALLOC_MMAP_THRESHOLD_"]) // 1024),
                       str(minibatch.BASE), str([minibatch.SYNTHETIC_CLASSES, minibatch.SYNTHETIC_HOMOPHILY,
                                                 minibatch.SYNTHETIC_FEATURES]), "50/25/25"])
    allowed = set(_numbers(quoted)) | {0.0, 1.0}  # 1.00: a baseline's ratio to itself
    assert constant <= allowed, sorted(constant - allowed)


def test_bench_refuses_bad_flags_before_any_work(capsys):
    assert main(["bench", "--sections", "a,z"]) == 2
    assert "--sections: unknown 'z'" in capsys.readouterr().err
    assert main(["bench", "--sections", "e", "--max-nodes", "10"]) == 2
    assert "--max-nodes 10 leaves no graph size" in capsys.readouterr().err
    assert main(["bench", "--sections", "e", "--backward-max-nodes", "5000"]) == 2
    assert "--backward-max-nodes 5000 is below the smallest graph (10000 nodes)" in capsys.readouterr().err
    assert main(["bench", "--device", "tpu"]) == 2
    assert "--device must be cpu or cuda" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_the_large_minibatch_graph_is_its_own_flag_and_the_command_names_the_allocator():
    from continuous_gnn.cli.bench import plan, recorded_command

    def settings(*flags):
        return plan(build_parser().parse_args(["bench", *flags])).minibatch

    assert settings().large_nodes == 10_000_000
    scaling = plan(build_parser().parse_args(["bench"])).scaling
    assert scaling.sizes[-1] == 10_000_000 and scaling.backward_max_nodes == 1_000_000
    assert settings("--large-nodes", "0").large_nodes is None
    assert settings("--large-nodes", "2000000", "--max-nodes", "100000").large_nodes == 2_000_000
    environ = {"PATH": "/bin", "CONTINUOUS_GNN_ALLOCATOR": "keep", "GLIBC_TUNABLES": "a=1:b=2"}
    assert recorded_command(["bench", "--sections", "g"], environ) == (
        "GLIBC_TUNABLES=a=1:b=2 CONTINUOUS_GNN_ALLOCATOR=keep continuous-gnn bench --sections g")
    assert recorded_command(["bench"], {"PATH": "/bin", "CONTINUOUS_GNN_ALLOCATOR": "system"}) == "continuous-gnn bench"


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"synthetic_epochs": 0}, {"degree": 0.0}, {"splits": ()}])
def test_minibatch_settings_refuse_empty_work(kwargs):
    with pytest.raises(ValueError, match="epochs and synthetic_epochs must be >= 1"):
        minibatch.MinibatchSettings(**kwargs)
    assert minibatch.MinibatchSettings(synthetic_epochs=1).synthetic_epochs == 1


def test_section_c_times_five_times_the_rounds_of_sections_a_and_b():
    from continuous_gnn.benchmarks.overhead import OverheadSettings
    from continuous_gnn.cli.bench import plan

    def overhead(*flags):
        return plan(build_parser().parse_args(["bench", *flags])).overhead

    assert (overhead().repeats, overhead().field_repeats) == (10, 50)
    assert (overhead("--repeats", "4").repeats, overhead("--repeats", "4").field_repeats) == (4, 20)
    assert overhead("--quick").field_repeats == overhead("--quick").repeats == 2
    with pytest.raises(ValueError, match="field_repeats >= 1"):
        OverheadSettings(sizes=(10,), field_repeats=0)


def test_full_scaling_points_time_about_ten_seconds_of_evaluations_and_quick_ones_the_minimum():
    from continuous_gnn.cli.bench import SCALING_MIN_SECONDS, plan

    def scaling_settings(*flags):
        return plan(build_parser().parse_args(["bench", *flags])).scaling

    # A 10⁶-node forward + backward evaluation takes about a second here: ten seconds give it four to seven samples,
    # enough for the median to outvote one that runs twice as long; the quick run measures nothing.
    assert scaling_settings().min_seconds == SCALING_MIN_SECONDS >= 8.0
    assert scaling_settings().repeats == 3
    assert scaling_settings("--quick").min_seconds == 0.0


def test_node_orders_whose_package_is_missing_are_left_out_and_named_on_the_page(monkeypatch):
    # Without pymetis, every size of section h failed, losing the rcm and as-numbered timings with metis's.
    from continuous_gnn.benchmarks import locality
    from continuous_gnn.cli.bench_page import _locality

    monkeypatch.setitem(locality.ORDER_PACKAGES, "metis", "a_package_that_is_not_installed")
    assert locality.available_orders() == ("rcm",)
    settings = locality.LocalitySettings((2000,), repeats=1, warmup=0)
    row = locality.locality_comparison(2000, settings)
    assert [t.name for t in row.comparison.timings] == [locality.BASELINE, "rcm"] and row.failed is None
    section = {"rows": [{"nodes": 2000, "nnz": row.nnz, "failed": None, "build_seconds": row.build_seconds,
                         "comparison": {"timings": [{"name": t.name, "median": t.median}
                                                    for t in row.comparison.timings]}}],
               "nodes_per_cluster": 100, "not_installed": {"metis": "a_package_that_is_not_installed"}}
    meta = {"settings": {"locality": dataclasses.asdict(settings)}}
    page = "\n".join(_locality(section, meta))
    assert "| 2000 | " in page and "| rcm |" in page and "failed" not in page
    assert "`metis` was not run: `a_package_that_is_not_installed` is not installed" in page
