r"""Figures of depth studies, drawn from the tidy records of :mod:`continuous_gnn.studies`.

Every function takes records (a list of flat dicts) and an output path, writes one PNG atomically (temporary
file, then :func:`os.replace`) and returns the path. Figures are drawn on a bare
:class:`matplotlib.figure.Figure` with the Agg canvas: no pyplot, no global backend switch, no window.
matplotlib is imported only when a figure is drawn (``pip install continuous_gnn[plot]``).

=====================================  ======================================================================
function                               shows
=====================================  ======================================================================
:func:`plot_rq_vs_time`                Rayleigh quotient against :math:`t`, one line per τ (LFD: → 0,
                                       HFD: → :math:`\rho_\Delta`)
:func:`plot_accuracy_vs_depth`         accuracy of the decoded state against :math:`t` or steps
:func:`plot_w_spectrum`                histogram of the eigenvalues of :math:`W` (sign = attraction/repulsion)
:func:`plot_accuracy_vs_homophily`     test accuracy against homophily, one line per W family
=====================================  ======================================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_open

__all__ = ["plot_rq_vs_time", "plot_accuracy_vs_depth", "plot_w_spectrum", "plot_accuracy_vs_homophily"]

Records = Sequence[Mapping[str, Any]]
_DPI = 90


def _figure(nrows: int = 1, ncols: int = 1, *, width: float = 3.4, height: float = 2.7):
    """A bare figure with an Agg canvas and its axes (always a flat list)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "continuous_gnn.studies.plots needs matplotlib; install it with `pip install matplotlib` "
            "(or the extra: `pip install continuous_gnn[plot]`)"
        ) from err
    figure = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    return figure, [ax for row in axes for ax in row]


def _save(figure, path: str | os.PathLike[str], dpi: int) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as fh:
        figure.savefig(fh, format="png", dpi=dpi)
    return path


def _check(records: Records, needed: Sequence[str], what: str) -> list[Mapping[str, Any]]:
    records = list(records)
    if not records:
        raise ValueError(f"{what}: no records to plot")
    missing = [k for k in needed if k not in records[0]]
    if missing:
        raise ValueError(f"{what}: records lack the column(s) {missing}; got {sorted(records[0])}")
    return records


def _values(records: Records, key: str | None) -> list[Any]:
    """Distinct values of ``key`` in order of first appearance (``[None]`` when ``key`` is ``None``)."""
    if key is None:
        return [None]
    seen: dict[Any, None] = {}
    for r in records:
        seen.setdefault(r.get(key), None)
    return list(seen)


def _fmt(key: str, value: Any) -> str:
    if key == "step_size":
        return "adaptive" if value is None else f"τ={value:g}"
    if isinstance(value, float):
        return f"{key}={value:g}"
    return str(value)


def _panels(records: Records, panel: str | None, hue: str | None, x: str, y: str, *, width: float = 3.4,
            height: float = 2.7):
    """Group records into panels and lines; yields the figure and, per panel, (axes, title, lines)."""
    panel_values = _values(records, panel)
    ncols = min(len(panel_values), 4)
    nrows = math.ceil(len(panel_values) / ncols)
    if ncols == 1:  # room for a title and a legend
        width, height = max(width, 5.0), max(height, 3.2)
    figure, axes = _figure(nrows, ncols, width=width, height=height)
    for ax in axes[len(panel_values):]:
        ax.set_visible(False)
    # A second line key separates solvers when the hue is not the solver itself.
    methods = _values(records, "method") if "method" in records[0] and hue != "method" else [None]
    groups = []
    for ax, pv in zip(axes, panel_values):
        in_panel = [r for r in records if panel is None or r.get(panel) == pv]
        lines = []
        for hv in _values(in_panel, hue):
            for method in methods:
                rows = [r for r in in_panel if (hue is None or r.get(hue) == hv)
                        and (method is None or r.get("method") == method)]
                rows = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
                if not rows:
                    continue
                rows.sort(key=lambda r: r[x])
                label = " ".join(p for p in (None if hue is None else _fmt(hue, hv),
                                             method if len(methods) > 1 else None) if p)
                lines.append((label or None, [r[x] for r in rows], [r[y] for r in rows]))
        groups.append((ax, None if panel is None else _fmt(panel, pv), lines))
    return figure, groups


def plot_rq_vs_time(records: Records, path: str | os.PathLike[str], *, x: str = "t", hue: str | None = "step_size",
                    panel: str | None = "w_family", rho: float | Mapping[Any, float] | None = None,
                    logy: bool = True, mark_times: Sequence[float] = (), title: str | None = None,
                    dpi: int = _DPI) -> Path:
    r"""Rayleigh quotient :math:`\mathrm{RQ}(F(t))` against :math:`t` (or against the number of steps).

    One panel per value of ``panel`` (default: W family), one line per value of ``hue`` (default: step size;
    solvers get separate lines when several are present). RQ :math:`\to 0` is low-frequency dominance
    (over-smoothing), RQ :math:`\to \rho_\Delta` high-frequency dominance (over-sharpening).

    Args:
        records: :func:`~continuous_gnn.studies.trajectory_records` rows (columns ``t``, ``rayleigh``).
        path: output PNG.
        x (str): ``"t"`` or ``"steps"`` (default: ``"t"``).
        hue (str, optional): column that separates lines (default: ``"step_size"``).
        panel (str, optional): column that separates panels (default: ``"w_family"``).
        rho (float or Mapping, optional): draw :math:`\rho_\Delta` as a dashed line; a mapping gives one
            value per panel.
        logy (bool): logarithmic RQ axis, values floored at 1e-8 (default: ``True``).
        mark_times (sequence of float): dotted vertical lines (e.g. the training time).
        title (str, optional): figure title.
        dpi (int): resolution (default: ``90``).

    Returns:
        Path: ``path``.
    """
    if x not in ("t", "steps"):
        raise ValueError(f"x must be 't' or 'steps', got {x!r}")
    records = _check(records, (x, "rayleigh"), "plot_rq_vs_time")
    figure, groups = _panels(records, panel, hue, x, "rayleigh")
    floor = 1e-8
    panel_values = _values(records, panel)
    for (ax, name, lines), pv in zip(groups, panel_values):
        level = rho.get(pv) if isinstance(rho, Mapping) else rho
        for label, xs, ys in lines:
            ys = [max(v, floor) if logy and v == v else v for v in ys]
            ax.plot(xs, ys, label=label, lw=1.4)
        if level is not None:
            ax.axhline(level, color="0.4", ls="--", lw=0.9, label=f"ρ_Δ={level:.3g}")
        for t in mark_times:
            ax.axvline(t, color="0.6", ls=":", lw=0.9)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("t" if x == "t" else "steps")
        ax.set_ylabel("RQ(F(t))")
        if name:
            ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        if any(label for label, _, _ in lines) or level is not None:
            ax.legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path, dpi)


def plot_accuracy_vs_depth(records: Records, path: str | os.PathLike[str], *, x: str = "t", split: str = "test",
                           hue: str | None = "step_size", panel: str | None = "w_family",
                           mark_times: Sequence[float] = (), title: str | None = None, dpi: int = _DPI) -> Path:
    """Accuracy of the decoder applied to :math:`F(t)`, against depth.

    Args:
        records: :func:`~continuous_gnn.studies.trajectory_records` rows.
        path: output PNG.
        x (str): ``"t"`` (time) or ``"steps"`` (number of fixed-grid steps) (default: ``"t"``).
        split (str): ``"train"``, ``"val"`` or ``"test"`` (default: ``"test"``).
        hue, panel, mark_times, title, dpi: as in :func:`plot_rq_vs_time`.

    Returns:
        Path: ``path``.
    """
    if x not in ("t", "steps"):
        raise ValueError(f"x must be 't' or 'steps', got {x!r}")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    column = f"acc_{split}"
    records = _check(records, (x, column), "plot_accuracy_vs_depth")
    figure, groups = _panels(records, panel, hue, x, column)
    for ax, name, lines in groups:
        for label, xs, ys in lines:
            ax.plot(xs, ys, label=label, lw=1.4)
        for t in mark_times:
            ax.axvline(t, color="0.6", ls=":", lw=0.9)
        ax.set_xlabel("t" if x == "t" else "steps")
        ax.set_ylabel(f"{split} accuracy")
        ax.set_ylim(-0.02, 1.02)
        if name:
            ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        if any(label for label, _, _ in lines):
            ax.legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path, dpi)


def plot_w_spectrum(records: Records, path: str | os.PathLike[str], *, bins: int = 24, title: str | None = None,
                    dpi: int = _DPI) -> Path:
    r"""Histogram of the eigenvalues of :math:`W`, one panel per ``label``.

    Positive eigenvalues attract neighbours (smoothing), negative ones repel them (sharpening); each panel
    states the negative mass :math:`\sum_k \max(-\lambda_k, 0)/\sum_k|\lambda_k|`.

    Args:
        records: :func:`~continuous_gnn.studies.w_spectrum_records` rows (columns ``label``, ``eigenvalue``).
        path: output PNG.
        bins (int): histogram bins (default: ``24``).
        title (str, optional): figure title.
        dpi (int): resolution (default: ``90``).
    """
    records = _check(records, ("label", "eigenvalue"), "plot_w_spectrum")
    labels = _values(records, "label")
    ncols = min(len(labels), 4)
    figure, axes = _figure(math.ceil(len(labels) / ncols), ncols, width=3.0, height=2.4)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    for ax, label in zip(axes, labels):
        values = [float(r["eigenvalue"]) for r in records if r["label"] == label]
        total = sum(abs(v) for v in values)
        negative = sum(-v for v in values if v < 0) / total if total > 0 else 0.0
        ax.hist(values, bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(0.0, color="k", lw=0.8)
        ax.set_title(f"{label}  (neg. mass {negative:.2f})", fontsize=9)
        ax.set_xlabel("eigenvalue of W")
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path, dpi)


def plot_accuracy_vs_homophily(records: Records, path: str | os.PathLike[str], *, x: str = "homophily",
                               title: str | None = None, dpi: int = _DPI) -> Path:
    """Test accuracy against homophily, one line per W family (mean ± population std over seeds).

    Args:
        records: :func:`~continuous_gnn.studies.homophily_sweep` rows.
        path: output PNG.
        x (str): ``"homophily"`` (target) or ``"edge_homophily"`` (measured) (default: ``"homophily"``).
        title (str, optional): figure title.
        dpi (int): resolution (default: ``90``).
    """
    records = _check(records, (x, "w_family", "acc_test"), "plot_accuracy_vs_homophily")
    figure, (ax,) = _figure(1, 1, width=4.6, height=3.2)
    for family in _values(records, "w_family"):
        by_x: dict[float, list[float]] = {}
        for r in records:
            if r["w_family"] == family:
                by_x.setdefault(float(r[x]), []).append(float(r["acc_test"]))
        xs = sorted(by_x)
        means = [sum(by_x[v]) / len(by_x[v]) for v in xs]
        stds = [math.sqrt(sum((a - m) ** 2 for a in by_x[v]) / len(by_x[v])) for v, m in zip(xs, means)]
        ax.plot(xs, means, marker="o", ms=3, lw=1.4, label=str(family))
        ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.15)
    ax.set_xlabel("edge homophily" + (" (target)" if x == "homophily" else " (measured)"))
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(figure, path, dpi)
