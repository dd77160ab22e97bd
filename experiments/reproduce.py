"""Reproduce the GRAFF node-classification table: GRAFF and GRAFF-NL on every benchmark, all 10 splits.

    python experiments/reproduce.py [flags]        # the same as: continuous-gnn reproduce [flags]

The reproduction lives in the package, so that an installed wheel runs it too: the command and its page in
:mod:`continuous_gnn.cli.reproduce` and :mod:`continuous_gnn.cli.reproduce_page`, the reference numbers and the
validation choice in :mod:`continuous_gnn.benchmarks`. This script is the command ``docs/results.md`` records
for a rerun (``continuous-gnn reproduce --help`` lists the flags).
"""

import sys

from continuous_gnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
