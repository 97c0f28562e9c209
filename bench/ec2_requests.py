"""AWS requests per row of an EC2 campaign: moto (HTTP) behind counting proxies, one sshd for every node.

    .venv/bin/python bench/ec2_requests.py [--rows 30 60] [--types 3] [--machines 4]

Each campaign has N rows of `true` spread evenly over 3 instance types, run with
`dispatcher.py AMI JOB FILE -c -d --wait --machines 4` (so 12 machines). Every
AWS request goes through tests/awsfaults.py's FaultProxy (no faults, counting
only): one proxy for the dispatcher, one for the nodes' agents, so each count
says who sent it. Prints requests per row by (service, action), dispatcher (D) and
nodes (N), for every N, and how each per-row count changed from the smallest N to
the largest (x: a count growing faster than rows shows up above 1.0). Target:
total <= 10 requests per row.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import proctree
from ec2_harness import REPO, Moto, check, run_campaign

sys.path.insert(0, str(REPO))
from tests.awsfaults import FaultProxy  # noqa: E402

TYPES = ["t3.micro", "c5.large", "m5.large", "c5.xlarge", "t3.small", "m5.xlarge"]
TARGET = 10.0


def campaign(moto: Moto, rows: int, types: int, machines: int) -> dict:
    moto.reset()
    dispatcher, nodes = FaultProxy(moto.url).start(), FaultProxy(moto.url).start()
    try:
        jobs = [(TYPES[i % types], "true") for i in range(rows)]
        outcome = run_campaign(moto, jobs, job=f"requests{rows}", extra=["--machines", str(machines)],
                               dispatcher_endpoint=dispatcher.url, node_endpoint=nodes.url)
        check(outcome, f"{rows} rows")
        return {"seconds": outcome.seconds, "machines": len(outcome.machines),
                "D": Counter(dispatcher.requests), "N": Counter(nodes.requests)}
    finally:
        dispatcher.stop()
        nodes.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[30, 60], help="campaign sizes (default 30 60)")
    parser.add_argument("--types", type=int, default=3, choices=range(1, len(TYPES) + 1), help="instance types (default 3)")
    parser.add_argument("--machines", type=int, default=4, help="--machines, per instance type (default 4)")
    args = parser.parse_args()
    sizes = sorted(set(args.rows))
    moto = Moto()
    runs = {}
    try:
        for rows in sizes:
            runs[rows] = campaign(moto, rows, args.types, args.machines)
    finally:
        moto.stop()
    small, large = sizes[0], sizes[-1]
    keys = sorted({k for r in runs.values() for who in "DN" for k in r[who]},
                  key=lambda k: -(runs[large]["D"][k] + runs[large]["N"][k]))
    print(f"AWS requests per row: rows of `true` over {args.types} instance types, --machines {args.machines}; "
          f"D = dispatcher, N = nodes' agents")
    head = "".join(f" {f'{n} rows: D':>11} {'N':>6} {'all':>6}" for n in sizes)
    print(f"{'service':<8} {'action':<28}{head} {f'x {small}->{large}':>10}")
    for key in keys:
        cells = ""
        for n in sizes:
            d, nn = runs[n]["D"][key] / n, runs[n]["N"][key] / n
            cells += f" {d:>11.2f} {nn:>6.2f} {d + nn:>6.2f}"
        per = {n: (runs[n]["D"][key] + runs[n]["N"][key]) / n for n in sizes}
        growth = f"{per[large] / per[small]:.2f}" if per[small] else "new"
        print(f"{key[0]:<8} {key[1]:<28}{cells} {growth:>10}")
    totals = {n: (sum(runs[n]["D"].values()) / n, sum(runs[n]["N"].values()) / n) for n in sizes}
    cells = "".join(f" {d:>11.2f} {nn:>6.2f} {d + nn:>6.2f}" for d, nn in totals.values())
    grow = sum(totals[large]) / sum(totals[small])
    print(f"{'TOTAL':<8} {'per row':<28}{cells} {grow:>10.2f}")
    for n in sizes:
        total = sum(totals[n])
        print(f"{n} rows: {sum(runs[n]['D'].values()) + sum(runs[n]['N'].values())} requests, {total:.2f} per row "
              f"(target <= {TARGET:g}: {'yes' if total <= TARGET else 'NO'}), {runs[n]['machines']} machines, "
              f"{runs[n]['seconds']:.1f} s")
    if proctree.busy():
        print(proctree.busy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
