"""``python -m hbtrio``: the ``hbtrio`` command line."""

from __future__ import annotations

import sys

from hbtrio.cli import main

if __name__ == "__main__":
    sys.exit(main())
