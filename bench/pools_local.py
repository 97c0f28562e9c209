"""burst's local pool against GNU parallel: N trivial rows (`true`, one instance type).

    .venv/bin/python bench/pools_local.py [--rows N] [--keep]     (default N = 500)

Times, wall clock of the whole command, each in a fresh BURST_HOME:
  (a) `dispatcher.py local JOB FILE.csv -c -d --wait --machines 2`
  (b) the same with `--machines N` (one sandbox per row)
  (c) `parallel -j2` running the same N commands
and prints burst/parallel ratios against the targets (a) <= 3x, (b) <= 10x.
INSTALL.sh does nothing and the code folder is empty: everything measured is
burst's own overhead. Also: CPU seconds of the dispatcher and of everything else
it started (sandboxes, workers; see bench/proctree.py), and where the wall time
went (from the rows' status.json: before the first row started, first start to
last end, after the last end). Needs GNU parallel: `apt-get install -y parallel`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import proctree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import write_campaign  # noqa: E402

TARGETS = {"a": 3.0, "b": 10.0}


def measure(args: list[str], env: dict, what: str, log: Path) -> dict:
    before = proctree.children_cpu()
    others = proctree.Others().start()
    started = time.time()
    result = proctree.run(args, env, str(log))
    if result.returncode != 0:
        raise SystemExit(f"{what} exited with status {result.returncode}:\n{result.output[-3000:]}")
    left = proctree.reap(60)
    total = proctree.children_cpu() - before
    return {"wall": result.wall, "cpu_self": result.cpu, "cpu_rest": total - result.cpu, "started": started,
            "ended": started + result.wall, "left": left, "others": others.stop(), "measured": others.wall}


def burst_run(temp: Path, rows: int, machines: int, label: str) -> dict:
    folder = temp / label
    jobfile, install = write_campaign(folder, [("t3.micro", "true")] * rows, install="#!/bin/bash\n")
    assert (folder / "jobs").is_dir() and not any((folder / "jobs").iterdir()), "the code folder is empty"
    home = folder / "burst-home"
    env = dict(os.environ, BURST_HOME=str(home), COLUMNS="200")
    facts = measure([sys.executable, str(REPO / "dispatcher.py"), "local", f"pool{label}", str(jobfile), "-c", "-d",
                     "--wait", "--machines", str(machines), "--install", str(install)], env,
                    f"burst --machines {machines}", folder / "dispatcher.log")
    statuses = [json.loads(p.read_text()) for p in (home / "buckets" / f"pool{label}").glob("state/ended/*.json")]
    done = [s for s in statuses if s["state"] == "done"]
    if len(done) != rows:
        raise SystemExit(f"burst --machines {machines}: {len(done)} of {rows} rows done")
    stamp = lambda text: datetime.fromisoformat(text).timestamp()  # noqa: E731
    first, last = min(stamp(s["started"]) for s in done), max(stamp(s["ended"]) for s in done)
    facts.update(sandboxes=sum(1 for p in (home / "instances").iterdir() if p.name.startswith("i-local-")),
                 before=first - facts["started"], window=last - first, after=facts["ended"] - last)
    return facts


def parallel_run(temp: Path, rows: int) -> dict:
    exe = shutil.which("parallel")
    if exe is None:
        raise SystemExit("GNU parallel is not installed: run `apt-get install -y parallel` (Debian/Ubuntu), then again.")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "GNU parallel" not in version:
        raise SystemExit(f"{exe} is not GNU parallel (moreutils?): run `apt-get install -y parallel`.")
    commands = temp / "commands.txt"
    commands.write_text("true\n" * rows)
    return measure(["bash", "-c", f"{exe} --will-cite -j2 < {commands}"], dict(os.environ), "GNU parallel -j2",
                   temp / "parallel.log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500, help="rows in the campaign (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args()
    if not proctree.become_subreaper():
        print("note: could not become a child subreaper; the 'CPU rest' column misses detached processes")
    temp = Path(tempfile.mkdtemp(prefix="burst-bench-pools-"))
    try:
        reference = parallel_run(temp, args.rows)
        a = burst_run(temp, args.rows, 2, "a")
        b = burst_run(temp, args.rows, args.rows, "b")
    finally:
        if args.keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    n = args.rows
    print(f"{n} rows of `true`, one instance type, {os.cpu_count()} CPUs; CPU s used meanwhile by other work on this "
          f"machine: {reference['others']:.1f} / {a['others']:.1f} / {b['others']:.1f} (c / a / b)")
    print(f"{'run':<42} {'wall s':>7} {'ms/row':>7} {'x par.':>6} {'target':>7} {'ok':>3} | {'CPU s':>6} "
          f"{'CPU rest':>8} {'x par.':>6} | {'to 1st':>6} {'rows':>6} {'after':>6}")
    par_cpu = reference["cpu_self"] + reference["cpu_rest"]
    print(f"{'(c) GNU parallel -j2':<42} {reference['wall']:>7.2f} {1000 * reference['wall'] / n:>7.1f} {1.0:>6.2f} "
          f"{'':>7} {'':>3} | {reference['cpu_self']:>6.2f} {reference['cpu_rest']:>8.2f} {1.0:>6.2f} |")
    for key, label, facts in (("a", "--machines 2", a), ("b", f"--machines {n}", b)):
        ratio = facts["wall"] / reference["wall"]
        name = f"({key}) burst {label} ({facts['sandboxes']} sandboxes)"
        ok = "yes" if ratio <= TARGETS[key] else "NO"
        cpu_ratio = (facts["cpu_self"] + facts["cpu_rest"]) / par_cpu if par_cpu else float("nan")
        print(f"{name:<42} {facts['wall']:>7.2f} {1000 * facts['wall'] / n:>7.1f} {ratio:>6.2f} "
              f"{'<= ' + format(TARGETS[key], 'g') + 'x':>7} {ok:>3} | {facts['cpu_self']:>6.2f} {facts['cpu_rest']:>8.2f} "
              f"{cpu_ratio:>6.2f} | {facts['before']:>6.2f} {facts['window']:>6.2f} {facts['after']:>6.2f}")
    print("CPU s: the command itself (dispatcher, or parallel with its jobs); CPU rest: every other process it left "
          "(sandboxes, setup.sh, workers). to 1st / rows / after: wall seconds until the first row started, from "
          "then to the last row's end, and from that to the command's return.")
    if any(f["left"] for f in (a, b, reference)):
        print("note: some processes were still running 60 s after the command returned; their CPU is not counted")
    runs = (reference, a, b)
    warning = proctree.contention([f["others"] for f in runs], [f["measured"] for f in runs], "; the CPU columns are not")
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
