"""Setting up many EC2 hosts at once: 1, 32 and 64 hosts over real SSH (moto + one sshd for every instance).

    .venv/bin/python bench/setup_fanout.py [--hosts 1 32 64] [--sleep 5]

Each campaign has one row (`true`) per host on t3.micro, so EC2's default pool
launches one machine per row; INSTALL.sh is `sleep 5`. Timed: the whole
`dispatcher.py AMI JOB FILE -c -d --wait`, from start until it returns. A setup
that fans out scales flat: target T(32)/T(1) and T(64)/T(1) <= 1.5.
Also shown, from the nodes' own files (seconds after the command started): when
the last INSTALL.sh started, when the last one ended, when the last worker
ended. And CPU seconds of the dispatcher, of the "nodes" (sshd, setup.sh,
INSTALL.sh, agents: on EC2 each host has its own CPUs, here they share this
machine's) and of moto; `floor` = their sum / CPU count, the least wall time
this machine could take for it; `others`: CPU seconds other work on this
machine took meanwhile (it inflates wall times, not CPU ones). sshd runs with
MaxStartups/MaxSessions 200 (see bench/ec2_harness.py).
"""

from __future__ import annotations

import argparse
import os
import sys

import proctree
from ec2_harness import MAX_SESSIONS, MAX_STARTUPS, Moto, check, run_campaign

TARGET = 1.5


def _last(machines: list[dict], name: str, started: float) -> float | None:
    times = [m[name] for m in machines if m[name] is not None]
    return max(times) - started if times else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 32, 64], help="host counts (the first is the baseline)")
    parser.add_argument("--sleep", type=float, default=5.0, help="seconds INSTALL.sh sleeps (default 5)")
    args = parser.parse_args()
    moto = Moto()
    results, notes = [], []
    try:
        for hosts in args.hosts:
            moto.reset()
            outcome = run_campaign(moto, [("t3.micro", "true")] * hosts, job=f"fanout{hosts}",
                                   install=f"#!/bin/bash\nsleep {args.sleep:g}\n")
            check(outcome, f"{hosts} host(s)")
            if len(outcome.machines) != hosts:
                notes.append(f"note: {hosts} host(s): {len(outcome.machines)} machines were set up, not {hosts}")
            results.append((hosts, outcome))
    finally:
        moto.stop()
    base = results[0][1].seconds
    fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
    print(f"INSTALL.sh = sleep {args.sleep:g}; one row (`true`) per host; sshd MaxStartups {MAX_STARTUPS}, "
          f"MaxSessions {MAX_SESSIONS}")
    print(f"{'hosts':>5} {'seconds':>8} {'T/T(1)':>7} {'target':>7} {'ok':>3} | {'last install start':>18} "
          f"{'last install end':>16} {'last worker end':>15} | {'CPU s: dispatcher':>17} {'nodes':>6} {'moto':>6} "
          f"{'floor':>6} {'others':>6}")
    for hosts, outcome in results:
        ratio = outcome.seconds / base
        ok = "" if hosts == results[0][0] else ("yes" if ratio <= TARGET else "NO")
        target = "" if hosts == results[0][0] else f"<= {TARGET:g}"
        m, t0 = outcome.machines, outcome.started
        floor = (outcome.cpu_dispatcher + outcome.cpu_nodes + outcome.cpu_aws) / (os.cpu_count() or 1)
        print(f"{hosts:>5} {outcome.seconds:>8.2f} {ratio:>7.2f} {target:>7} {ok:>3} | "
              f"{fmt(_last(m, 'install.started', t0)):>18} {fmt(_last(m, 'install.exit', t0)):>16} "
              f"{fmt(_last(m, 'worker.exit', t0)):>15} | {outcome.cpu_dispatcher:>17.2f} {outcome.cpu_nodes:>6.2f} "
              f"{outcome.cpu_aws:>6.2f} {floor:>6.2f} {outcome.cpu_others:>6.2f}")
    for note in notes:
        print(note)
    warning = proctree.contention([o.cpu_others for _, o in results], [o.measured for _, o in results],
                                  "; the CPU columns are not")
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
