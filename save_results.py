#!/usr/bin/env python3
"""The node worker: ``save_results.py work`` claims and runs rows until none are left.

burst writes its own copy of this entry point into each machine's bundle
(``burst.control.bundle.AGENT_ENTRY``), beside the ``burst`` package; this one runs
it from the checkout.
"""

import sys

from burst.node.worker import main

if __name__ == "__main__":
    sys.exit(main())
