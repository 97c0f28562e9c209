"""How long burst itself takes: a local campaign of N no-op jobs, create + dispatch + wait.

    .venv/bin/python bench/local_campaign.py [N ...]      (default: 1 8 32)

Everything measured is burst's own overhead (copying the agent and code, INSTALL.sh
polling, agents saving and ending sandboxes): the commands are `true`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_campaign(rows: int) -> float:
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        jobfile = temp / "bench.csv"
        jobfile.write_text("instance_type,command\n" + "t3.micro,true\n" * rows)
        install = temp / "INSTALL.sh"
        install.write_text("#!/bin/bash\n")
        env = dict(os.environ, BURST_HOME=str(temp / "home"))
        start = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "dispatcher.py"), "local", "bench", str(jobfile), "-c", "-d",
                        "--wait", "--install", str(install), "--results", "none"],
                       check=True, env=env, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1, 8, 32]
    print(f"{'jobs':>5} {'seconds':>8} {'per job':>8}")
    for rows in sizes:
        seconds = run_campaign(rows)
        print(f"{rows:>5} {seconds:>8.2f} {seconds / rows:>8.3f}")


if __name__ == "__main__":
    main()
