"""AWS faults that moto cannot produce, answered by a loopback proxy in front of it, during a campaign.

The workers on the sshd "nodes" reach AWS through the same proxy (``SetEnv``), so
a rule can fail their calls alone (by their ``burst-worker`` user agent).
"""

from __future__ import annotations

import pytest

from tests.awsfaults import INTERNAL_ERROR, REQUEST_LIMIT_EXCEEDED, SLOW_DOWN, aws_faults  # noqa: F401  (fixture)
from tests.conftest import run_script, status_report, write_campaign
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, Nodes, instances_of


@pytest.fixture
def campaign(tmp_path, isolated_home, aws_faults, moto_ami, sshd_factory):
    """A job file of 4 rows of one type and its nodes, reaching AWS through the fault proxy."""
    def make(job: str, rows: int = 4, command: str = "mkdir -p results; echo $TAG > results/r.txt; sleep 0.5"):
        jobfile, install = write_campaign(tmp_path / job, [("t3.micro", command)] * rows)
        nodes = Nodes(tmp_path, isolated_home, sshd_factory, aws_faults.url, job)
        made.append((nodes, job))
        return [DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--wait", "--install", str(install), *nodes.args()], nodes
    made: list = []
    yield make
    for nodes, job in made:  # what terminating them would do on EC2: no process outlives its test
        nodes.power_off(job, [p.name for p in (nodes.node_root / job).iterdir()] if (nodes.node_root / job).is_dir() else [])


def test_a_worker_whose_terminate_is_throttled_is_ended_by_the_reconcile(campaign, aws_faults):
    aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("TerminateInstances", user_agent="burst-worker"))
    args, nodes = campaign("throttled", rows=2)
    result = run_script(*args, "--machines", "1", "--heartbeat", "2")
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr
    (machine,) = instances_of("throttled")
    assert machine["State"]["Name"] == "terminated", "the reconcile ended what the worker could not"
    (record,) = status_report("throttled")["machines"]
    assert record["state"] == "ended"
    assert "could not end its machine" in record["note"] and "RequestLimitExceeded" in record["note"]
    assert "ended by the reconcile" in result.stdout


def test_s3_errors_mid_run_lose_nothing(campaign, aws_faults):
    args, nodes = campaign("flaky", rows=4)
    aws_faults.add(SLOW_DOWN.on("PutObject", times=6))
    aws_faults.add(INTERNAL_ERROR.on("ListObjectsV2", times=3))
    result = run_script(*args, "--machines", "2")
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr
    rows = status_report("flaky")["rows"]
    assert [r["state"] for r in rows] == ["done"] * 4
    import boto3

    s3 = boto3.client("s3")
    for row in rows:
        body = s3.get_object(Bucket="flaky", Key=f"{row['tag']}/attempts/{row['attempt']}/results/r.txt")["Body"].read().decode()
        assert body == f"{row['tag']}\n"
    assert {m["State"]["Name"] for m in instances_of("flaky")} == {"terminated"}
