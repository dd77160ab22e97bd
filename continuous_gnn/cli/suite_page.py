"""The page ``continuous-gnn suite`` writes: our numbers beside the suite's anchors, times, and every run.

The page is generated: change the suite file or this module, not the page.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from ..benchmarks.suite import Anchor, Suite
from ..training import population_mean_std, still_improving
from ..training.history import late_splits
from .reproduce_page import provenance

__all__ = ["RunSummary", "by_command", "covered_seconds", "render", "run_intervals", "wall_span"]


@dataclass
class RunSummary:
    """One (model, dataset, seed) run of a suite; metrics in %, means over its splits."""

    model: str
    dataset: str
    seed: int
    status: str  # "ok", "unavailable", "failed"
    metric: str = "accuracy"
    test: float = math.nan
    val: float = math.nan
    split_tests: list[float] = field(default_factory=list)
    split_vals: list[float] = field(default_factory=list)
    best_epochs: list[int] = field(default_factory=list)
    epochs: int = 0
    wall_time: float = 0.0
    epoch_time: float = 0.0
    record: str = ""
    reason: str = ""
    started: str = ""  # ISO time the run started, from its record
    command: str = ""  # the command that trained it, from its record
    eval_times: list[float] = field(default_factory=list)  # chosen at each split's best epoch (eval_time_multiple)

    @classmethod
    def from_record(cls, model: str, record: dict[str, Any], path: str) -> RunSummary:
        splits = record["splits"]
        aggregate = record["aggregate"]
        # The run's means from the same percentages the pooled rows average, so that a one-run row and its
        # run's line show one number (100 * the record's mean can round the other way at x.xx5).
        tests = [100 * s["test_metric"] for s in splits]
        vals = [100 * s["val_metric"] for s in splits]
        return cls(model=model, dataset=record["config"]["dataset"], seed=record["config"]["seed"], status="ok",
                   metric=aggregate["metric"], test=population_mean_std(tests)[0], val=population_mean_std(vals)[0],
                   split_tests=tests, split_vals=vals,
                   best_epochs=[s["best_epoch"] for s in splits],
                   eval_times=[s["eval_time"][s["best_epoch"] - 1] for s in splits if s.get("eval_time")],
                   epochs=record["config"]["epochs"],
                   wall_time=aggregate["wall_time"], epoch_time=aggregate["epoch_time_mean"], record=path,
                   started=record.get("date", ""), command=record.get("command", ""))

    @classmethod
    def unavailable(cls, model: str, dataset: str, seed: int, reason: str) -> RunSummary:
        return cls(model=model, dataset=dataset, seed=seed, status="unavailable", reason=reason)

    @classmethod
    def failed(cls, model: str, dataset: str, seed: int, reason: str) -> RunSummary:
        return cls(model=model, dataset=dataset, seed=seed, status="failed", reason=reason)


def _pooled(runs: list[RunSummary]) -> tuple[float, float, float, int]:
    """Test mean, test population std and validation mean over every split of every run, and the run count."""
    tests = [t for r in runs for t in r.split_tests]
    vals = [v for r in runs for v in r.split_vals]
    mean, std = population_mean_std(tests)
    return mean, std, population_mean_std(vals)[0], len(tests)


def _fmt(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _anchor_text(anchors: list[Anchor]) -> str:
    return "; ".join(f"{_fmt(a.mean, a.std)} ({a.source})" for a in anchors) or "–"


def _metric_words(suite: Suite, ok: list[RunSummary]) -> str:
    """The metric the tables hold: its name, or each metric with its datasets when they differ."""
    metrics = list(dict.fromkeys(r.metric for r in ok))
    if len(metrics) <= 1:
        return metrics[0] if metrics else "metric"
    on = {m: [d for d in suite.datasets if any(r.dataset == d and r.metric == m for r in ok)] for m in metrics}
    return "metric (" + "; ".join(f"{m} on {', '.join(datasets)}" for m, datasets in on.items()) + ")"


def _still_improving(ok: list[RunSummary]) -> list[str]:
    """The (model, dataset) pairs still improving when training stopped, over the splits of all their runs."""
    pooled: dict[tuple[str, str], tuple[list[int], int]] = {}
    for run in ok:
        pooled.setdefault((run.model, run.dataset), ([], run.epochs))[0].extend(run.best_epochs)
    return [f"{model} on {dataset} ({late_splits(best, epochs)} of {len(best)} splits)"
            for (model, dataset), (best, epochs) in pooled.items() if still_improving(best, epochs)]


def by_command(runs: list[RunSummary]) -> dict[str, list[RunSummary]]:
    """Finished runs grouped by the command that trained them ("" where the record has none)."""
    groups: dict[str, list[RunSummary]] = {}
    for run in runs:
        groups.setdefault(run.command, []).append(run)
    return groups


def run_intervals(runs: list[RunSummary]) -> list[tuple[dt.datetime, dt.datetime]] | None:
    """Each run's start and end, or ``None`` when a record lacks its start."""
    if not runs or not all(r.started for r in runs):
        return None
    starts = [dt.datetime.fromisoformat(r.started) for r in runs]
    return [(start, start + dt.timedelta(seconds=r.wall_time)) for start, r in zip(starts, runs)]


def covered_seconds(intervals: list[tuple[dt.datetime, dt.datetime]]) -> float:
    """Seconds during which at least one of the intervals was open: runs side by side (``--jobs``) count once, and
    the time between runs (another day's command with the same flags, say) not at all."""
    total, covered_until = 0.0, None
    for start, end in sorted(intervals):
        if covered_until is not None:
            start = max(start, covered_until)
        if end > start:
            total += (end - start).total_seconds()
        covered_until = end if covered_until is None else max(covered_until, end)
    return total


def wall_span(runs: list[RunSummary]) -> float | None:
    """Seconds during which at least one of the runs was training (:func:`covered_seconds`), or ``None`` when a
    record lacks its start.

    Runs trained side by side (``--jobs``) span less than their summed run times."""
    intervals = run_intervals(runs)
    return None if intervals is None else covered_seconds(intervals)


def _by_command_rows(ok: list[RunSummary]) -> list[str]:
    """One row per command that trained some of the runs: its summed run time and its :func:`wall_span`; a
    resumed suite has one row per command that added runs."""
    rows = []
    for command, runs in by_command(ok).items():
        span = wall_span(runs)
        spanned = "–" if span is None else f"{span / 60:.1f} min"
        summed = sum(r.wall_time for r in runs) / 60
        label = f"`{command}`" if command else "(not recorded)"
        rows.append(f"| {label} | {len(runs)} | {summed:.1f} min | {spanned} |")
    return rows


def _chosen_times(suite: Suite, ok: list[RunSummary]) -> list[str]:
    """The table of integration times chosen on validation at the best epochs, for the rows whose evaluation
    chose one (``eval_time_multiple``); no lines when none did."""
    rows = []
    for dataset in suite.datasets:
        for model in suite.models:
            times = [t for r in ok if r.model == model.label and r.dataset == dataset for t in r.eval_times]
            if times:
                mean, std = population_mean_std(times)
                rows.append(f"| {dataset} | {model.label} | {_fmt(mean, std)} | {min(times):.2f} | {max(times):.2f} |")
    if not rows:
        return []
    return ["", "The integration time that evaluation chose on validation at the best epoch (`eval_time_multiple`: "
            "the prediction after every solver step up to that multiple of T, the step of best validation metric "
            "kept), over every split of every seed:", "", "| dataset | model | time, mean ± std | least | most |",
            "|---|---|---|---|---|", *rows]


def render(suite: Suite, runs: list[RunSummary], *, command: str, started: str, total: float, partial: bool,
           out_dir: str) -> str:
    ok = [r for r in runs if r.status == "ok"]
    metric = _metric_words(suite, ok)
    lines = [f"# {suite.title}", ""]
    lines.append(provenance(started, command, total))
    lines.append(f"Records: `{out_dir}`. Rerun: `{command}` (with `--out-dir {out_dir}` it resumes and skips the "
                 "finished runs).")
    if partial:
        lines.append("")
        lines.append("**Partial run** (a selection of models, datasets, seeds, splits or epochs): not the suite's "
                     "result.")
    own = [f"{m.label}: {', '.join(map(str, m.seeds))}" for m in suite.models if m.seeds is not None]
    seeds = ", ".join(map(str, suite.seeds)) + (f"; {'; '.join(own)}" if own else "")
    lines += ["", f"Test {metric} in %, mean ± population std (ddof = 0) over every split of every seed "
                  f"({seeds}); the test metric is read at the epoch of best validation metric and chooses "
                  "nothing.", ""]
    lines.append("| dataset | model | ours | runs | validation | anchor | target | gap |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for dataset in suite.datasets:
        for model in suite.models:
            if dataset not in model.datasets:
                continue
            these = [r for r in runs if r.model == model.label and r.dataset == dataset]
            anchors = [a for a in suite.anchors if a.model == model.label and a.dataset == dataset]
            targets = [a for a in anchors if a.bar is not None]
            good = [r for r in these if r.status == "ok"]
            if not good:
                status = these[0].status if these else "not run"
                lines.append(f"| {dataset} | {model.label} | {status} | – | – | {_anchor_text(anchors)} | – | – |")
                continue
            mean, std, val, count = _pooled(good)
            # A row with several targets (a goal and a stretch goal, say) gets a gap to each, in the suite's order.
            target = "; ".join(f"{a.bar:.2f} ({a.target})" for a in targets) or "–"
            gap = "; ".join(f"{mean - a.bar:+.2f} {'✓' if mean >= a.bar else '✗'}" for a in targets) or "–"
            lines.append(f"| {dataset} | {model.label} | {_fmt(mean, std)} | {count} | {val:.2f} | "
                         f"{_anchor_text(anchors)} | {target} | {gap} |")
    late = _still_improving(ok)
    if late:
        lines += ["", "Still improving when training stopped (the best validation epoch in the last tenth of the "
                  "epochs on at least half of the splits): " + "; ".join(late) + ". More epochs may gain there; "
                  "the epoch count is a hyperparameter, so it changes only through a validation-only search."]
    labels = {m.label for m in suite.models}
    others = [a for a in suite.anchors if a.model not in labels]
    if others:
        lines += ["", "Published anchors of other models (not run here):", "",
                  "| dataset | model | reported | source |", "|---|---|---|---|"]
        lines += [f"| {a.dataset} | {a.model} | {_fmt(a.mean, a.std)} | {a.source} |" for a in others]
    lines += _chosen_times(suite, ok)
    if suite.notes:
        lines += [""] + [note for text in suite.notes for note in (text, "")][:-1]
    lines += ["", "## Time", "", "| dataset | model | wall time | ms per epoch |", "|---|---|---|---|"]
    for dataset in suite.datasets:
        for model in suite.models:
            good = [r for r in ok if r.model == model.label and r.dataset == dataset]
            if good:
                wall = sum(r.wall_time for r in good)
                per_epoch = 1000 * sum(r.epoch_time for r in good) / len(good)
                lines.append(f"| {dataset} | {model.label} | {wall / 60:.1f} min | {per_epoch:.1f} |")
    lines += ["", "The runs by the command that trained them: their run times summed, and the wall time during which at "
              "least one of them was training (runs side by side counted once; the data loading before a run's start "
              "and the time between runs, such as between two sessions that ran the same command, not included).",
              "", "| command | runs | run time, summed | wall time, some run training |", "|---|---|---|---|"]
    lines += _by_command_rows(ok)
    lines += ["", "## Runs", "", "| model | dataset | seed | test | validation | best epochs (of) | record |",
              "|---|---|---|---|---|---|---|"]
    for r in runs:
        if r.status == "ok":
            lines.append(f"| {r.model} | {r.dataset} | {r.seed} | {r.test:.2f} | {r.val:.2f} | "
                         f"{', '.join(map(str, r.best_epochs))} ({r.epochs}) | `{r.record}` |")
        else:
            lines.append(f"| {r.model} | {r.dataset} | {r.seed} | {r.status} | – | {r.reason.split('. ')[0]} | – |")
    return "\n".join(lines) + "\n"
