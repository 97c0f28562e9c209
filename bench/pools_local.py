"""burst's local pool against GNU parallel: N trivial rows (`true`, one instance type).

    .venv/bin/python bench/pools_local.py [--rows N] [--keep]     (default N = 500)

Times, wall clock of the whole command, each in a fresh BURST_HOME:
  (a) `dispatcher.py local JOB FILE.csv -c -d --wait --machines 2`
  (b) the same with `--machines N` (one sandbox per row)
  (c) `parallel -j2` running the same N commands
and prints burst/parallel ratios against the targets (a) <= 3x, (b) <= 10x.
INSTALL.sh does nothing and the code folder is empty: everything measured is
burst's own overhead. Needs GNU parallel: `apt-get install -y parallel`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import write_campaign  # noqa: E402

TARGETS = {"a": 3.0, "b": 10.0}


def timed(args: list[str], env: dict, what: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise SystemExit(f"{what} exited with status {result.returncode}:\n{tail}")
    return seconds


def burst_run(temp: Path, rows: int, machines: int, label: str) -> tuple[float, dict]:
    folder = temp / label
    jobfile, install = write_campaign(folder, [("t3.micro", "true")] * rows, install="#!/bin/bash\n")
    assert (folder / "jobs").is_dir() and not any((folder / "jobs").iterdir()), "the code folder is empty"
    home = folder / "burst-home"
    env = dict(os.environ, BURST_HOME=str(home), COLUMNS="200")
    seconds = timed([sys.executable, str(REPO / "dispatcher.py"), "local", f"pool{label}", str(jobfile), "-c", "-d",
                     "--wait", "--machines", str(machines), "--install", str(install)], env,
                    f"burst --machines {machines}")
    bucket = home / "buckets" / f"pool{label}"
    done = sum(1 for p in bucket.glob("*/status.json") if '"state": "done"' in p.read_text())
    sandboxes = sum(1 for p in (home / "instances").iterdir() if p.is_dir() and p.name.startswith("i-local-"))
    if done != rows:
        raise SystemExit(f"burst --machines {machines}: {done} of {rows} rows done")
    return seconds, {"sandboxes": sandboxes}


def parallel_run(temp: Path, rows: int) -> float:
    exe = shutil.which("parallel")
    if exe is None:
        raise SystemExit("GNU parallel is not installed: run `apt-get install -y parallel` (Debian/Ubuntu), then again.")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "GNU parallel" not in version:
        raise SystemExit(f"{exe} is not GNU parallel (moreutils?): run `apt-get install -y parallel`.")
    commands = temp / "commands.txt"
    commands.write_text("true\n" * rows)
    return timed(["bash", "-c", f"{exe} --will-cite -j2 < {commands}"], dict(os.environ), "GNU parallel -j2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="rows in the campaign (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="burst-bench-pools-"))
    try:
        reference = parallel_run(temp, args.rows)
        a, a_facts = burst_run(temp, args.rows, 2, "a")
        b, b_facts = burst_run(temp, args.rows, args.rows, "b")
    finally:
        if args.keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    n = args.rows
    print(f"{n} rows of `true`, one instance type, on {os.cpu_count()} CPUs")
    print(f"{'run':<40} {'seconds':>8} {'ms/row':>7} {'x parallel':>10} {'target':>7}  ok")
    print(f"{'(c) GNU parallel -j2':<40} {reference:>8.2f} {1000 * reference / n:>7.1f} {1.0:>10.2f} {'':>7}")
    for key, label, seconds, facts in (("a", "--machines 2", a, a_facts), ("b", f"--machines {n}", b, b_facts)):
        ratio = seconds / reference
        name = f"({key}) burst {label} ({facts['sandboxes']} sandboxes)"
        ok = "yes" if ratio <= TARGETS[key] else "NO"
        print(f"{name:<40} {seconds:>8.2f} {1000 * seconds / n:>7.1f} {ratio:>10.2f} {'<= ' + format(TARGETS[key], 'g') + 'x':>7}  {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
