"""Solver benchmark: accuracy, NFE, time and memory of every torchdiffeq method, direct vs adjoint backprop.

    flock /tmp/continuous_gnn_heavy.lock python experiments/solver_benchmark.py [flags]    # = continuous-gnn solvers

The benchmark lives in the package, so that an installed wheel runs it too and its worker processes import its
functions like any module: the command, its protocol and its page in :mod:`continuous_gnn.cli.solvers` and
:mod:`continuous_gnn.cli.solvers_page`, the measured worker in :mod:`continuous_gnn.benchmarks.solvers`. This
script runs the same command as ``continuous-gnn solvers``, which ``docs/solvers.md`` records as its rerun command
(``continuous-gnn solvers --help`` lists the flags).
"""

import sys

from continuous_gnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["solvers", *sys.argv[1:]]))
