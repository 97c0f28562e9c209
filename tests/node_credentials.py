"""``credential_process`` of a test node: its machine's credentials, from the test's server (tests/node_identity.py).

Runs on the node's own python3 (3.9 too), standard library only. The machine is the last
component of ``$BURST_NODE_DIR`` (``.../<job>/<instance id>``), which every process of a
machine carries. Usage: ``node_credentials.py URL``.
"""

import os
import sys
import urllib.request


def main() -> int:
    folder = os.environ.get("BURST_NODE_DIR", "").rstrip("/")
    if not folder:
        sys.stderr.write("node_credentials.py: no BURST_NODE_DIR: not a process of a test machine\n")
        return 1
    with urllib.request.urlopen(f"{sys.argv[1]}/{os.path.basename(folder)}", timeout=60) as answer:
        sys.stdout.write(answer.read().decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
