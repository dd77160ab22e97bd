"""``continuous-gnn study --homophily-sweep``: accuracy against edge homophily on contextual SBMs.

The depth sweep's sibling in the ``study`` command (:mod:`continuous_gnn.cli.study` documents both): one small GRAFF
model per homophily level and W family, trained and tested, each saved as a unit so that a killed sweep resumes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..studies import W_FAMILIES
from .common import PROG, UsageError, choices, floats, number, output_folder

__all__ = ["DEFAULT_FAMILIES", "run_homophily", "unit_found"]

#: The W families of ``--w-families`` when it is not given, in both sweeps.
DEFAULT_FAMILIES = ",".join(W_FAMILIES)


def unit_found(unit: Any, path: Path) -> None:
    """The progress line of a unit that an earlier run of the same study saved."""
    print(f"  {unit.name}: record found in {path}, skipped", flush=True)


def run_homophily(args: argparse.Namespace, argv: list[str]) -> int:
    """``study --homophily-sweep``: accuracy against homophily on contextual SBMs, one model per level and family."""
    from ..energies import W_STYLES
    from ..studies import (
        HOMOPHILY_COLUMNS,
        homophily_min_nodes,
        homophily_units,
        plot_accuracy_vs_homophily,
        run_units,
        write_csv,
    )
    from ..training import check_before_loading, environment
    from ..training.presets import study_config

    levels = floats(args.homophily_sweep, "--homophily-sweep", lambda v: 0.0 <= v <= 1.0,
                    "homophily levels must lie in [0, 1]")
    not_here = {"--checkpoint": args.checkpoint, "--dataset": args.dataset, "--data-root": args.data_root,
                "--homophily": args.homophily, "--split": args.split, "--step-sizes": args.step_sizes,
                "--times": args.times, "--methods": args.methods, "--points": args.points}
    typed = [flag for flag, value in not_here.items() if value is not None]
    if typed:
        raise UsageError(f"{', '.join(typed)} do{'es' if len(typed) == 1 else ''} not apply to --homophily-sweep "
                          "(it trains fresh models on contextual SBMs whose homophily it sets)")
    if args.synthetic is not None and args.synthetic != "sbm":
        raise UsageError(f"--homophily-sweep draws contextual SBMs; --synthetic {args.synthetic} does not apply")
    seed = number(args.seed, "--seed", int, 0, minimum=0)
    nodes = number(args.nodes, "--nodes", int, 500, minimum=10)
    need = homophily_min_nodes(levels)
    if nodes < need:
        raise UsageError(f"--nodes {nodes} is too few for --homophily-sweep {args.homophily_sweep}: its 5-class SBMs "
                          f"with mean degree 8 need at least {need} nodes at these levels (45 nodes reach every level in [0, 1])")
    families = choices(DEFAULT_FAMILIES if args.w_families is None else args.w_families, "--w-families",
                       [w for w in W_STYLES if w != "asymm"])
    defaults = study_config("homophily")
    hidden = number(args.hidden, "--hidden", int, defaults.hidden, minimum=1)
    epochs = number(args.epochs, "--epochs", int, defaults.epochs, minimum=1)
    config = defaults.replace(hidden=hidden, epochs=epochs)
    for family in families:
        check_before_loading(config.replace(w=family))
    out = output_folder(args.out)

    def announce(rows: list[dict[str, Any]]) -> None:
        for record in rows:
            print(f"  h={record['homophily']:<5g} (measured {record['edge_homophily']:.2f}) "
                  f"{record['w_family']:<10} test {100 * record['acc_test']:5.1f}%", flush=True)

    if not args.quiet:
        print(f"{PROG} study: homophily sweep over {len(levels)} level(s) x {len(families)} W famil"
              f"{'y' if len(families) == 1 else 'ies'}, {nodes}-node SBMs, {epochs} epochs")
    units = homophily_units(levels, families, seeds=(seed,), config=config, nodes=nodes)
    records = run_units(units, out / "units", on_computed=None if args.quiet else lambda unit, rows: announce(rows),
                        on_found=None if args.quiet else unit_found)

    csv_path = write_csv([{k: r[k] for k in HOMOPHILY_COLUMNS} for r in records], out / "homophily.csv")
    figure = plot_accuracy_vs_homophily(records, out / "accuracy_vs_homophily.png",
                                        title=f"GRAFF on contextual SBMs ({nodes} nodes)")
    summary = {
        "command": " ".join([PROG, *argv]),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "homophily_levels": levels,
        "w_families": families,
        "seed": seed,
        "nodes": nodes,
        "base_config": config.to_dict(),  # every row replaces w with its family (homophily.csv)
        "rows": len(records),
        "files": [csv_path.name, figure.name],
        **environment(),
    }
    atomic_write_text(out / "homophily.json", json.dumps(summary, indent=1) + "\n")
    if not args.quiet:
        print(f"wrote {csv_path} ({len(records)} rows), {figure}, {out / 'homophily.json'}")
    return 0
