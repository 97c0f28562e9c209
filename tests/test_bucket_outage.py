"""An outage is not a death: a bucket that answers nothing for longer than the lease ends no machine and reruns no row.

The rule (``World.silent_for``, fed by the dispatcher's probe in ``burst.control.bucket_watch``)
is checked on its own, the probe on a folder bucket that stops being one, and a whole
campaign: EC2 on moto, machines as real sshd on 127.0.0.1, and moto's S3 behind the loopback
fault proxy, which answers every S3 request of the dispatcher and the machines with 503 for
two and a half leases while the rows run. Locally (a folder bucket replaced by a file), an
outage longer than --save-patience ends the run with exit status 1 and the same command resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest

from burst import protocol
from burst.control.bucket_watch import BucketUnreachable, BucketWatch
from burst.control.decide import Policy, World, decide
from burst.errors import BurstError
from burst.node.bucket_view import BucketView, HeldClaim
from burst.records import Claim, InstanceInfo, Job, WorkerRecord
from burst.storage.localdir import LocalDirStorage
from burst.storage.s3 import S3Storage
from tests.awsfaults import Fault, FaultProxy, FaultRule, aws_faults  # noqa: F401  (aws_faults: fixture)
from tests.conftest import REPO, status_report, statuses, wait_until
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, instances_of, make_nodes, write_jobs  # noqa: F401  (fixture)

LEASE = 4.0  # heartbeat 1 s


def world(now: float, probes: list[float], failed_before: set[float] = frozenset(), last_write: float = 0.0) -> World:
    """A world at ``now`` whose dispatcher probed at ``probes`` (each in ``failed_before`` came after failed ones),
    holding one claim (j0 on i-1) and i-1's worker record, both last written at ``last_write``."""
    watched, total = [], 0.0
    for index, probe in enumerate(probes):
        if index and probe not in failed_before:
            total += min(probe - probes[index - 1], LEASE / 2)
        watched.append((probe, total))
    claim = HeldClaim(Claim(tag="j0", attempt=1, machine="i-1", slot=0), etag="e", modified=last_write)
    bucket = BucketView(now, claims={"j0": claim},
                        workers={"i-1": (WorkerRecord(id="i-1", instance_type="t3.micro", slots=1), last_write)})
    return World([Job(tag="j0", instance_type="t3.micro", command="true", line=2)], bucket,
                 [InstanceInfo(id="i-1", job="j", instance_type="t3.micro", state="running")],
                 watched=tuple(watched), max_gap=LEASE / 2)


POLICY = Policy(machines={"t3.micro": 1}, slots=1, heartbeat=1.0, retries=2, may_launch=True)


def test_silence_counts_only_while_the_probes_found_the_bucket_up():
    every_second = [float(t) for t in range(11)]
    # the bucket went down after the probe at 10 s and was back for the probe at 40 s: 30 s of silence, none counted
    after_outage = every_second + [40.0, 41.0, 42.0]
    actions = decide(world(42.0, after_outage, {40.0}, last_write=9.0), POLICY)
    assert not actions.requeue and not actions.end, "an outage is not a death"
    # a worker that stays silent once the bucket is back is dead: judged a lease after the bucket's return
    later = after_outage + [43.0, 44.0, 45.0, 46.0]
    actions = decide(world(46.0, later, {40.0}, last_write=9.0), POLICY)
    assert [r.tag for r in actions.requeue] == ["j0"] and "missed its heartbeats for 7 s (lease 4 s)" in actions.requeue[0].reason
    assert [e.id for e in actions.end] == ["i-1"] and "stopped heartbeating 7 s ago" in actions.end[0].reason
    # heartbeats that stopped while the bucket was up: judged as before
    actions = decide(world(10.0, every_second, last_write=3.0), POLICY)
    assert [r.tag for r in actions.requeue] == ["j0"] and [e.id for e in actions.end] == ["i-1"]


def test_a_long_gap_between_two_probes_counts_half_a_lease_at_most():
    # a round whose own requests retried through an outage: its probes succeeded, 20 s apart
    actions = decide(world(22.0, [0.0, 1.0, 2.0, 22.0], last_write=2.0), POLICY)
    assert not actions.requeue and not actions.end
    # a new run judges no silence before it has watched a lease: its first round ends nothing
    assert not decide(world(100.0, [100.0], last_write=0.0), POLICY)


def test_the_probe_says_when_the_bucket_takes_no_writes_and_counts_no_time_across_it(tmp_path):
    folder = tmp_path / "bucket"
    folder.mkdir()
    watch = BucketWatch(LocalDirStorage(folder.as_uri()), lease=LEASE)
    first = watch.probe()
    assert len(first) == 1 and "probed" in json.loads((folder / protocol.PROBE_KEY).read_text())
    away = folder.with_name("away")
    folder.rename(away)
    folder.write_text("not a folder")  # every read and write fails, as in an outage (root ignores permissions)
    with pytest.raises(BucketUnreachable, match=f"the bucket {folder.as_uri()} is unreachable"):
        watch.probe()
    folder.unlink()
    away.rename(folder)
    watched = watch.probe()
    assert watched[-1][1] == first[0][1] == 0.0, "the time across a failed probe is not watched"
    assert watched[-1][0] >= first[0][0]


def test_a_probe_the_bucket_refuses_is_one_message_at_once_not_an_outage(aws_faults):  # noqa: F811
    boto3.client("s3").create_bucket(Bucket="refused")
    aws_faults.add(Fault(403, "AccessDenied", "Access Denied", "s3").on("PutObject"))
    watch = BucketWatch(S3Storage("s3://refused"), lease=LEASE)
    with pytest.raises(BurstError) as refused:
        watch.probe()
    assert not isinstance(refused.value, BucketUnreachable), "a refusal is no outage: waiting cannot fix it"
    assert str(refused.value).startswith("the bucket s3://refused refuses the dispatcher's write of state/dispatcher.json "
                                         "(AccessDenied: ") and "permissions` prints" in str(refused.value)
    assert watch.down_since is None, "no outage began"


def run_bucket(job: str, home) -> str:
    return json.loads((home / "campaigns" / f"{job}.json").read_text())["bucket_url"][len("s3://"):]


def test_an_outage_longer_than_the_lease_ends_nothing_and_reruns_nothing(tmp_path, moto_ami, moto_server, make_nodes):  # noqa: F811
    proxy = FaultProxy(moto_server).start()  # S3 only, for the dispatcher and the machines; EC2 stays up
    try:
        job = "outage"
        heartbeat, outage = 1.5, 15.0  # a lease of 6 s; 2.5 leases of outage
        jobfile, install = write_jobs(tmp_path, [("t3.micro", f"sleep {outage + 6:g}; bash bench.sh {n}") for n in range(2)])
        nodes = make_nodes(job, AWS_ENDPOINT_URL_S3=proxy.url)
        dispatcher = subprocess.Popen(
            [sys.executable, DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--wait", "--install", str(install),
             "--machines", "2", "--heartbeat", str(heartbeat), "--no-calibrate", *nodes.args()],
            cwd=REPO, env={**os.environ, "AWS_ENDPOINT_URL_S3": proxy.url}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            home = tmp_path / "burst-home"
            wait_until(lambda: (home / "campaigns" / f"{job}.json").is_file(), timeout=120, what="the campaign record")
            s3 = boto3.client("s3")  # straight to moto: the test looks past the outage
            bucket = run_bucket(job, home)
            wait_until(lambda: len([o for o in s3.list_objects_v2(Bucket=bucket, Prefix=protocol.CLAIMS_PREFIX)
                                    .get("Contents", []) if o["Key"].endswith(".json")]) == 2,
                       timeout=120, what="both rows running")
            machines_down = proxy.add(FaultRule(action="*", status=503, code="ServiceUnavailable", service="s3",
                                                message="Service is unable to handle request.", user_agent="burst-worker"))
            dispatcher_down = proxy.add(FaultRule(action="*", status=503, code="ServiceUnavailable", service="s3",
                                                  message="Service is unable to handle request."))
            time.sleep(outage)  # the outage's length, not an assertion
            proxy.clear()
            out, err = dispatcher.communicate(timeout=180)
        finally:
            if dispatcher.poll() is None:
                dispatcher.kill()
                dispatcher.communicate()
        assert nodes.error is None, nodes.error
        said = out + err
        assert dispatcher.returncode == 0, said
        assert proxy.fired(machines_down) and proxy.fired(dispatcher_down), "both sides met the outage"
        assert said.count(f"the bucket s3://{bucket} is unreachable (ServiceUnavailable: Service is unable") == 1, said
        assert said.count(f"the bucket s3://{bucket} is reachable again after") == 1, said
        assert "heartbeat" not in said.replace("whole lease to renew its heartbeats", "") and "runs again" not in said, said
        assert "Traceback" not in said, said
        rows = statuses(job)
        assert {(row["state"], row["attempt"]) for row in rows.values()} == {("done", 1)}, rows
        assert len(instances_of(job)) == 2, "no machine was replaced"
        machines = status_report(job)["machines"]
        assert all(m["state"] != protocol.ENDED for m in machines), machines  # each ended itself, done
    finally:
        proxy.stop()


def test_an_outage_beyond_save_patience_ends_the_run_and_the_same_command_resumes(tmp_path, burst_home):
    from tests.conftest import run_script, write_campaign
    from tests.test_pools_local import DISPATCHER as LOCAL_DISPATCHER
    from tests.test_pools_local import finish, ran, start_dispatcher

    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"sleep 8; echo $TAG >> {log}")] * 2)
    args = ["local", "down", str(jobfile), "-c", "-d", "--wait", "--install", str(install), "--machines", "2",
            "--heartbeat", "1", "--save-patience", "3"]
    bucket = burst_home / "buckets" / "down"
    away = bucket.with_name("down.away")
    dispatcher = start_dispatcher(*args)
    try:
        wait_until(lambda: len(list(bucket.glob("state/claims/*.json"))) == 2, timeout=60, what="both rows running")
        bucket.rename(away)
        bucket.write_text("the bucket is unavailable")  # every read and write fails (root ignores permissions)
        out, err = finish(dispatcher, timeout=60)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
        if bucket.is_file():
            bucket.unlink()
            away.rename(bucket)
    said = out + err
    assert dispatcher.returncode == 1, said
    assert said.count(f"the bucket {bucket.as_uri()} is unreachable") == 2, said  # said when it began, and at the end
    assert "(--save-patience 3 s); no machine was ended by this run. Run the same command again" in said, said
    assert "Traceback" not in said and "heartbeat" not in said, said
    assert not [p for p in bucket.glob("state/machines/*.json") if json.loads(p.read_text())["state"] == protocol.ENDED]

    again = run_script(LOCAL_DISPATCHER, *args)  # the bucket is back: the same command finishes the campaign
    assert again.returncode == 0, again.stdout + again.stderr
    assert {row["state"] for row in statuses("down").values()} == {"done"}
    assert sorted(ran(log)) == ["down0", "down1"], "each row's result once (an attempt given up wrote none)"
    worker_logs = [path.read_text() for path in burst_home.glob("instances/*/burst/down/*/logs/worker.log")]
    outage_said = [text.count("writing the worker record failed") for text in worker_logs]
    assert max(outage_said) == 1 and sum(outage_said) <= len(worker_logs), \
        f"each worker says once that its record cannot be written, not at every heartbeat: {outage_said}"
