#!/usr/bin/env python3
"""The node worker: ``save_results.py work`` claims and runs rows until none are left.

burst writes its own copy of this entry point into each machine's bundle
(``burst.node_scripts.AGENT_ENTRY``), beside the ``burst`` package; this one runs
it from the checkout.
"""

import sys

from burst.worker import main

if __name__ == "__main__":
    sys.exit(main())
