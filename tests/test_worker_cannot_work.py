"""A worker that cannot work says so at once: its rows fail with the reason, its machine ends, its log is kept.

Two workers that no retry can help, on EC2-on-moto machines reached over real SSH:
the bucket refuses the worker's requests (AccessDenied, from the loopback fault
proxy, for the worker's ``burst-worker`` user agent only), and the worker's own
code fails at import (INSTALL.sh plants the error in the bundle's copy).
Neither retries for --save-patience, and no machine of the type is launched again.
"""

from __future__ import annotations

import json
import time

import boto3

from burst import protocol
from burst.records import epoch
from tests.awsfaults import Fault, aws_faults  # noqa: F401  (fixture)
from tests.conftest import run_script, status_report, write_campaign
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.node_identity import worker_record_key
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, Nodes, instances_of

ACCESS_DENIED = Fault(403, "AccessDenied", "Access Denied", "s3")


def bucket_text(bucket: str, key: str) -> str:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def run_campaign(tmp_path, isolated_home, sshd_factory, endpoint, moto_ami, job, install):  # noqa: F811
    jobfile, install_file = write_campaign(tmp_path / job, [("t3.micro", "echo never")] * 4, install=install)
    nodes = Nodes(tmp_path, isolated_home, sshd_factory, endpoint, job)
    started = time.monotonic()
    try:
        result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait", "--machines", "2",
                            "--install", str(install_file), "--save-patience", "600", *nodes.args(), timeout=240)
        assert nodes.error is None, nodes.error
    finally:
        nodes.power_off_all()
    return result, time.monotonic() - started


def test_a_worker_the_bucket_refuses_ends_its_rows_and_its_machine_with_the_reason_at_once(
        tmp_path, isolated_home, sshd_factory, aws_faults, moto_ami):  # noqa: F811
    rule = aws_faults.add(ACCESS_DENIED.on("GetObject", user_agent="burst-worker"))
    result, elapsed = run_campaign(tmp_path, isolated_home, sshd_factory, aws_faults.url, moto_ami, "denied",
                                   "#!/bin/bash\ntrue\n")
    assert result.returncode == 1, result.stdout + result.stderr
    machines = instances_of("denied")
    assert len(machines) == 2, "no machine of the type is launched after a worker that cannot work"
    assert {m["State"]["Name"] for m in machines} == {"terminated"}
    assert aws_faults.fired(rule) == 2, "one refused request per worker: AccessDenied is never retried"
    report = status_report("denied")
    for row in report["rows"]:
        assert row["state"] == "failed"
        assert "cannot work: AccessDenied" in row["note"] and "no more machines of type t3.micro" in row["note"], row
    for machine in machines:
        instance_id = machine["InstanceId"]
        worker = next(m for m in report["machines"] if m["id"] == instance_id)
        # ended by itself (its record says why), or by the reconcile that read that record first
        assert worker["state"] in ("worker failed", "ended") and "AccessDenied" in worker["note"], worker
        keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="denied")["Contents"]]
        log = bucket_text("denied", protocol.saved_machine_log(keys, instance_id, "worker.log"))
        assert "this worker cannot work: AccessDenied" in log, log
        record = bucket_text("denied", worker_record_key(keys, instance_id))  # in its own folder: <role id>:<id>
        assert '"state": "failed"' in record and "AccessDenied" in record
        assert epoch(json.loads(record)["heartbeat"]) - epoch(json.loads(record)["started"]) < 30, \
            "the worker gave up within seconds of its start, not after --save-patience (600 s)"
    assert elapsed < 90, f"the campaign took {elapsed:.0f} s"


def test_a_worker_whose_code_fails_at_import_is_reported_with_its_log_and_its_type_stops(
        tmp_path, isolated_home, sshd_factory, moto_server, moto_ami):  # noqa: F811
    plant = "#!/bin/bash\necho \"raise ImportError('planted by the test')\" >> ../agent/burst/node/claims.py\n"
    result, elapsed = run_campaign(tmp_path, isolated_home, sshd_factory, moto_server, moto_ami, "noimport", plant)
    assert result.returncode == 1, result.stdout + result.stderr
    machines = instances_of("noimport")
    assert len(machines) == 2 and {m["State"]["Name"] for m in machines} == {"terminated"}
    for row in status_report("noimport")["rows"]:
        assert row["state"] == "failed"
        assert "its worker could not work" in row["note"] and "ImportError: planted by the test" in row["note"], row
    for machine in machines:
        log = bucket_text("noimport", f"machines/{machine['InstanceId']}/worker.log")
        assert "ImportError: planted by the test" in log and "worker: cannot work" in log, log
    assert "worker.log as on" in result.stdout and "install.log as on" not in result.stdout, \
        "the second machine's failure points at the first one's worker.log, not at an install.log"
    assert elapsed < 90, f"the campaign took {elapsed:.0f} s"
