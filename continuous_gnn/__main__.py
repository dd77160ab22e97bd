"""``python -m continuous_gnn``: the same command line as ``continuous-gnn``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
