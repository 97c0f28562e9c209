#!/usr/bin/env python3
"""Node agent entry point: ``save_results.py start`` / ``save_results.py finish --exit-code N``.

The dispatcher copies this file and the ``burst`` package to ``<node dir>/agent/``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from burst.agent import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
