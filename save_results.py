#!/usr/bin/env python3
"""Node worker entry point: ``save_results.py work`` claims and runs rows until none are left.

The dispatcher unpacks this file and the ``burst`` package into ``<machine dir>/agent/``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from burst.worker import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
