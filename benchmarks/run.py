"""Thin entry point of hbtrio's latency suite: ``python benchmarks/run.py [--quick]``.

The suite itself ships inside the package (``hbtrio.bench``) so that
``hbtrio bench`` works from an installed wheel; this script only forwards to it.
See ``docs/benchmarks.md`` for the method.
"""

from __future__ import annotations

import sys

from hbtrio.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
