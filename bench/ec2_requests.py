"""AWS requests per row of an EC2 campaign: moto (HTTP) behind counting proxies, one sshd for every node.

    .venv/bin/python bench/ec2_requests.py [--rows 30 60] [--types 3] [--machines 4]

Each campaign has N rows of `true` spread evenly over 3 instance types, run with
`dispatcher.py AMI JOB FILE -c -d --wait --machines 4` (so 12 machines). Every
AWS request goes through tests/awsfaults.py's FaultProxy (no faults, counting
only): one proxy for the dispatcher, one for the nodes' agents; each request is
counted as its sender's by its User-Agent (a worker's carries ``burst-worker``).
Prints requests per row by (service, action), dispatcher (D) and nodes (N), for
every N, and how each per-row count changed from the smallest N to the largest
(x: a count growing faster than rows shows up above 1.0). Target: total <= 8
requests per row (issue 19; it was 10). Then, for the largest N, S3 requests per
row by the key they were about (claim, status, logs, machine records).
`--machines 0` runs EC2's default pool instead (one machine per row).
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections import Counter
from urllib.parse import unquote, urlsplit

import proctree
from ec2_harness import REPO, Moto, check, run_campaign

sys.path.insert(0, str(REPO))
from burst.node.worker_basics import WORKER_AGENT  # noqa: E402  (in every AWS request a node's worker makes)
from tests import awsfaults  # noqa: E402

_seen = threading.local()  # the request the proxy's handler thread is classifying


def _classify(method, target, headers, body):
    _seen.path = urlsplit(target).path
    return _original_classify(method, target, headers, body)


_original_classify, awsfaults.classify = awsfaults.classify, _classify


def key_kind(path: str) -> str:
    """An S3 key with tags, ids and numbers replaced: which record a request was for."""
    key = unquote(path).lstrip("/").partition("/")[2]
    if not key:
        return "(bucket)"
    key = re.sub(r"^(state/)?machines/([A-Z0-9]+:)?i-[0-9a-f]+", r"\1machines/ID", key)  # a machine's folder
    key = re.sub(r"^(state/(claims|ended)/)[a-z]+\d+(?=\.)", r"\1TAG", key)
    key = re.sub(r"^[a-z]+\d+(?=/)", "TAG", key)
    return re.sub(r"/attempts/\d+/", "/attempts/N/", key)


class CountingProxy(awsfaults.FaultProxy):
    """FaultProxy that counts each request as the dispatcher's (D) or a node's (N), by its User-Agent, and
    keeps, for S3, which key each was about. (By proxy it could not be told: a node is handed the
    dispatcher's S3 endpoint when that is not AWS's, so the nodes' S3 requests come through the
    dispatcher's proxy.)"""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.by_sender: dict[str, Counter] = {"D": Counter(), "N": Counter()}
        self.s3_keys: dict[str, Counter] = {"D": Counter(), "N": Counter()}

    def _decide(self, service, action, user_agent, form=None):
        sender = "N" if WORKER_AGENT in user_agent else "D"
        with self._lock:
            self.by_sender[sender][(service, action)] += 1
            if service == "s3":
                self.s3_keys[sender][(action, key_kind(getattr(_seen, "path", "")))] += 1
        return super()._decide(service, action, user_agent, form)


TYPES = ["t3.micro", "c5.large", "m5.large", "c5.xlarge", "t3.small", "m5.xlarge"]
TARGET = 8.0  # issue 19


def campaign(moto: Moto, rows: int, types: int, machines: int) -> dict:
    moto.reset()
    dispatcher, nodes = CountingProxy(moto.url).start(), CountingProxy(moto.url).start()
    try:
        jobs = [(TYPES[i % types], "true") for i in range(rows)]
        outcome = run_campaign(moto, jobs, job=f"requests{rows}", extra=["--machines", str(machines)] if machines else [],
                               dispatcher_endpoint=dispatcher.url, node_endpoint=nodes.url)
        check(outcome, f"{rows} rows")
        return {"seconds": outcome.seconds, "machines": len(outcome.machines), "others": outcome.cpu_others,
                "measured": outcome.measured,
                **{who: dispatcher.by_sender[who] + nodes.by_sender[who] for who in ("D", "N")},
                "keys": {who: dispatcher.s3_keys[who] + nodes.s3_keys[who] for who in ("D", "N")}}
    finally:
        dispatcher.stop()
        nodes.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[30, 60], help="campaign sizes (default 30 60)")
    parser.add_argument("--types", type=int, default=3, choices=range(1, len(TYPES) + 1), help="instance types (default 3)")
    parser.add_argument("--machines", type=int, default=4,
                        help="--machines, per instance type (default 4; 0: EC2's default pool, one machine per row)")
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
    pool = f"--machines {args.machines}" if args.machines else "one machine per row (EC2's default pool)"
    print(f"AWS requests per row: rows of `true` over {args.types} instance types, {pool}; "
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
    print(f"\nS3 requests per row by key ({large} rows; TAG = a row's tag, ID = an instance id)")
    print(f"{'action':<16} {'key':<40} {'D':>6} {'N':>6}")
    keys = runs[large]["keys"]
    for action, kind in sorted(set(keys["D"]) | set(keys["N"]), key=lambda k: -(keys["D"][k] + keys["N"][k])):
        print(f"{action:<16} {kind:<40} {keys['D'][(action, kind)] / large:>6.2f} {keys['N'][(action, kind)] / large:>6.2f}")
    warning = proctree.contention([r["others"] for r in runs.values()], [r["measured"] for r in runs.values()],
                                  "; so is the number of --wait rounds (a DescribeInstances and a listing each)")
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
