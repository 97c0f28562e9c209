"""burst at 10,000 rows and more: the per-row cost over a campaign, `status`, and a reconcile round.

    .venv/bin/python bench/scale.py [--rows 10000] [--status-rows 100000] [--round-rows 10000] [--round-machines 200]

Needs GNU parallel (Debian: `apt-get install parallel`). Three measurements, each in one run:

1. ROWS rows of `true`, locally, `dispatcher.py local JOB FILE -c -d --wait --machines 2`,
   against `parallel -j2` on the same commands. From the rows' statuses: the rows/s of the
   first tenth of the rows to end and of the last tenth (the last tenth's should be >= 90 %
   of the first's: a listing must not grow with the rows done), and the totals' ratio
   (target <= 1.5x parallel).
2. `python -m burst status JOB` on a campaign of STATUS_ROWS rows whose bucket holds what
   workers write (burst's own claims and status store): done rows, a few failed, a few
   running on a live sandbox; the ended rows' claims swept, as the reconcile does two
   leases after a row ended. Seconds (target <= 2 s), and the lines it prints: three times, the
   first with nothing kept on this machine, the next with the statuses the first kept
   (``$BURST_HOME/campaigns/JOB.records``).
3. The bucket's half of a reconcile round (``RoundReads.read``: what the dispatcher lists,
   GETs and sweeps) on ROUND_ROWS finished rows and ROUND_MACHINES machines, against moto's
   S3 server on 127.0.0.1: requests (counted on the client) and seconds, the first round
   (nothing cached: everything listed and read, and the claims of rows ended more than
   two leases ago swept; the heartbeat here is 1 s, so the rows put are that old by then)
   and the next two (target: <= 2 s and <= 15 requests).
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from burst import protocol  # noqa: E402
from burst.records import Claim, JobStatus, MachineRecord, WorkerRecord, epoch  # noqa: E402


def environment(home: Path) -> dict[str, str]:
    return {**os.environ, "BURST_HOME": str(home / "burst-home"), "HOME": str(home), "COLUMNS": "80"}


def per_row_cost(rows: int, scratch: Path) -> None:
    if not shutil.which("parallel"):
        raise SystemExit("GNU parallel is missing: apt-get install parallel")
    folder = scratch / "rows"
    (folder / "jobs").mkdir(parents=True)
    jobfile = folder / "jobs.csv"
    jobfile.write_text("instance_type,command\n" + "t3.micro,true\n" * rows)
    (folder / "INSTALL.sh").write_text("#!/bin/bash\ntrue\n")
    (folder / "commands.txt").write_text("true\n" * rows)
    env = environment(folder)

    start = time.perf_counter()
    subprocess.run(["parallel", "-j2"], stdin=open(folder / "commands.txt"), check=True, env=env)
    parallel_seconds = time.perf_counter() - start

    start = time.perf_counter()
    ran = subprocess.run([sys.executable, str(REPO / "dispatcher.py"), "local", "scale", str(jobfile), "-c", "-d",
                          "--wait", "--machines", "2", "--install", str(folder / "INSTALL.sh"), "--yes"],
                         env=env, capture_output=True, text=True)
    burst_seconds = time.perf_counter() - start
    if ran.returncode != 0:
        raise SystemExit(f"burst failed ({ran.returncode}): {ran.stderr[-2000:]}")
    bucket = folder / "burst-home" / "buckets" / "scale"
    statuses = [json.loads(p.read_text()) for p in bucket.glob("state/ended/*.json")]
    starts = sorted(epoch(s["started"]) for s in statuses)
    ends = sorted(epoch(s["ended"]) for s in statuses)
    tenth = len(ends) // 10
    first = tenth / (ends[tenth - 1] - starts[0])
    last = tenth / (ends[-1] - ends[-tenth - 1])
    print(f"{rows} rows of `true`, --machines 2: burst {burst_seconds:.1f} s, parallel -j2 {parallel_seconds:.1f} s: "
          f"{burst_seconds / parallel_seconds:.2f}x (target <= 1.5x)")
    print(f"  rows/s, first tenth {first:.0f}, last tenth {last:.0f}: last/first {last / first:.2f} (target >= 0.90)")
    print(f"  `--wait` printed {len(ran.stdout.splitlines())} lines")


def status_time(rows: int, scratch: Path) -> None:
    """A generated campaign (as workers write it), then `burst status` on it."""
    folder = scratch / "status"
    folder.mkdir()
    env = environment(folder)
    os.environ.update(BURST_HOME=env["BURST_HOME"])
    from burst.control.campaign_record import CampaignRecord
    from burst.node import claims
    from burst.node.status_store import save_status
    from burst.providers import make_provider
    from burst.providers.base import LaunchSpec, ProviderOptions
    from burst.records import Job

    jobs = [Job(tag=f"big{i}", instance_type="t3.micro", command=f"bench {i}", line=i + 2) for i in range(rows)]
    provider = make_provider("local", "big", ProviderOptions())
    provider.prepare()
    record = CampaignRecord(job="big", image="local", bucket_url=provider.bucket_url, jobs=jobs, options=ProviderOptions())
    storage = record.storage(provider)
    record.save(storage)
    machine = provider.launch(LaunchSpec(job="big", instance_type="t3.micro", image="local"), 1)[0]
    began = time.perf_counter()

    def write(i: int) -> None:
        row = jobs[i]
        claims.try_claim(storage, row.tag, machine, i % 2, None, row.instance_type, row.command)
        if i >= rows - 20:
            return  # running
        failed = i % 1000 == 7
        save_status(storage, JobStatus(job="big", tag=row.tag, state="failed" if failed else "done",
                                       instance_type=row.instance_type, command=row.command, instance_id=machine,
                                       attempt=1, slot=i % 2, exit_code=1 if failed else 0, seconds=0.01,
                                       note="command exited with status 1" if failed else "",
                                       warnings=["no output matches 'results/**' in the code folder"]))

    def swept(i: int) -> None:  # what the reconcile's sweep leaves of an ended row: its status alone
        key = protocol.claim_key(jobs[i].tag)
        storage.delete_if_match(key, storage.read_versioned(key)[1])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(rows)))
        list(pool.map(swept, range(rows - 20)))
    print(f"{rows} rows written in {time.perf_counter() - began:.0f} s")
    for which in ("first (nothing kept)", "second (statuses kept by the first)", "third"):
        start = time.perf_counter()
        shown = subprocess.run([sys.executable, "-m", "burst", "status", "big"], env=env, capture_output=True, text=True,
                               cwd=REPO)
        seconds = time.perf_counter() - start
        print(f"  `burst status` on {rows} rows, {which}: {seconds:.1f} s (target <= 2 s), exit "
              f"{shown.returncode}, {len(shown.stdout.splitlines())} lines, load average {os.getloadavg()[0]:.1f}")
    provider.terminate([machine])


def reconcile_round(rows: int, machines: int) -> None:
    """read_bucket against moto's S3 on a bucket of ``rows`` finished rows and ``machines`` machines."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from burst.control.round_reads import RoundReads
    from burst.node.bucket_view import RecordCache
    from burst.storage import open_storage

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=f"http://{host}:{port}")
    client = boto3.client("s3")
    client.create_bucket(Bucket="round")
    now = "2026-01-01T00:00:00.000+00:00"
    claims, objects = [], []  # the claims first: a worker writes a row's status after its claim
    for i in range(rows):
        tag = f"r{i}"
        claims.append((protocol.claim_key(tag), Claim(tag=tag, attempt=1, machine=f"i-{i % machines:04d}", slot=0)))
        objects.append((protocol.status_key(tag), JobStatus(job="round", tag=tag, state="done", attempt=1, exit_code=0)))
        for name in ("stdout.log", "stderr.log"):  # what the old layout listed too
            objects.append((protocol.attempt_logs_prefix(tag, 1) + name, None))
    for m in range(machines):
        objects.append((protocol.machine_key(f"i-{m:04d}"), MachineRecord(id=f"i-{m:04d}", instance_type="t3.micro",
                                                                          state="working", launched=now)))
        objects.append((protocol.worker_key(f"i-{m:04d}"), WorkerRecord(id=f"i-{m:04d}", instance_type="t3.micro", slots=1)))

    def put(item) -> None:
        key, record = item
        body = "log\n" if record is None else json.dumps(record.__dict__)
        client.put_object(Bucket="round", Key=key, Body=body.encode())

    began = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, claims))
        time.sleep(1.0)  # S3 times are whole seconds
        list(pool.map(put, objects))
    print(f"{len(claims) + len(objects)} objects put in {time.perf_counter() - began:.0f} s")
    storage = open_storage("s3://round")
    sent: list[str] = []
    storage.client.meta.events.register("before-send", lambda request, **_: sent.append(request.method))
    tags = {f"r{i}" for i in range(rows)}
    rounds = RoundReads(RecordCache(), tags, heartbeat=1.0, lease=4.0)
    time.sleep(max(0.0, rounds.sweep_after - (time.perf_counter() - began)))  # the rows ended two leases ago
    for name in ("first round (nothing cached; the sweep)", "next round", "the round after"):
        sent.clear()
        start = time.perf_counter()
        view = rounds.read(storage)
        seconds = time.perf_counter() - start
        assert len(view.statuses) == rows and len(view.machines) == machines
        assert all(view.row_state(tag) == protocol.DONE for tag in tags)
        print(f"  reconcile's bucket read, {rows} rows and {machines} machines, {name}: {seconds:.2f} s, "
              f"{len(sent)} requests ({sent.count('GET')} GET/LIST, {sent.count('DELETE')} DELETE; {rounds.swept} "
              f"claims swept so far) (target <= 2 s, <= 15 requests)")
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--status-rows", type=int, default=100000)
    parser.add_argument("--round-rows", type=int, default=10000)
    parser.add_argument("--round-machines", type=int, default=200)
    parser.add_argument("--only", choices=("rows", "status", "round"), help="one measurement only")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="burst-bench-scale-") as scratch:
        if args.only in (None, "rows"):
            per_row_cost(args.rows, Path(scratch))
        if args.only in (None, "status"):
            status_time(args.status_rows, Path(scratch))
        if args.only in (None, "round"):
            reconcile_round(args.round_rows, args.round_machines)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
