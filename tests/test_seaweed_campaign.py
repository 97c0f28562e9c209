"""A whole EC2 campaign whose bucket is on SeaweedFS: EC2 and IAM on moto, S3 on ``weed``.

The user sets ``AWS_ENDPOINT_URL_S3`` to the store, as for any S3-compatible store
(docs/aws.md). The machines (sshd nodes on 127.0.0.1, whose own environment names
only moto, the stand-in for AWS) are told the dispatcher's store in ``node.json``
and write their rows' results and logs there; moto's S3 never sees the job.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid

import boto3

from burst.control.runtime import PINS, ensure_runtime
from burst.providers.base import burst_home
from tests.conftest import REPO, run_script, status_report
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.node_identity import own_file
from tests.seaweed import seaweed_server
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, instances_of, make_nodes, write_jobs  # noqa: F401  (fixture)


def test_campaign_on_ec2_with_its_bucket_on_seaweedfs(tmp_path, moto_ami, make_nodes, monkeypatch, moto_server):  # noqa: F811
    weed = seaweed_server()
    job = "weede2e"
    moto_s3 = boto3.client("s3")  # the test's administrator, on moto
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", weed.url)  # the user's store; EC2 and IAM stay on moto
    rows = [("t3.micro", f"bash bench.sh {n}") for n in range(3)]
    jobfile, install = write_jobs(tmp_path, rows)
    nodes = make_nodes(job)

    result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--wait", "--no-calibrate",
                        "--install", str(install), *nodes.args(), timeout=120)
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the S3 store at {weed.url} does not implement blocking public access" in result.stdout, result.stdout
    assert "3 rows" in result.stdout and "3 done" in result.stdout, result.stdout

    machines = instances_of(job)
    assert len(machines) == 3 and {m["State"]["Name"] for m in machines} == {"terminated"}, "EC2 is moto's"
    report = status_report(job)
    assert {row["tag"]: row["state"] for row in report["rows"]} == {f"{job}{n}": "done" for n in range(3)}

    # the bucket is on SeaweedFS, with the rows' records, outputs and logs; moto's S3 holds nothing of the job
    weed_s3 = boto3.client("s3", endpoint_url=weed.url)
    weed_s3.head_bucket(Bucket=job)  # (weed lists a bucket only to the key that made it)
    keys = [o["Key"] for page in weed_s3.get_paginator("list_objects_v2").paginate(Bucket=job) for o in page.get("Contents", [])]
    for n in range(3):
        assert f"state/ended/{job}{n}.json" in keys, keys
    assert any(k.startswith("state/machines/") for k in keys), keys
    assert moto_s3.list_buckets()["Buckets"] == [], "moto's S3 holds no bucket"

    out = tmp_path / "out"
    fetched = run_script(str(REPO / "get_s3_files.py"), job, str(out), "--merge")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    with open(out / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert sorted((r["tag"], r["param"], r["value"]) for r in merged) == [(f"{job}{n}", str(n), str(n * n)) for n in range(3)]
    assert (out / f"{job}2" / "attempts" / "1" / "logs" / "stdout.log").read_text() == f"squared 2 on {job}2\n"
    assert (out / f"{job}2" / "attempts" / "1" / "logs" / "stderr.log").read_text() == "", "an empty log, saved before the result"
    for machine in machines:
        assert "install on" in own_file(out, machine["InstanceId"], "install.log").read_text()


AFTER_AN_EMPTY_LOG = r"""
import sys, tempfile
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[2]]  # the nodes' runtime, then this checkout's burst
import botocore
from burst.storage import open_storage
storage = open_storage(sys.argv[3], region="us-east-1", endpoint_url=sys.argv[4])
folder = Path(tempfile.mkdtemp())
(folder / "stderr.log").write_bytes(b"")
(folder / "out.csv").write_text("param,value\n2,4\n")
storage.upload_file(folder / "stderr.log", "row/attempts/1/logs/stderr.log")
storage.upload_file(folder / "out.csv", "row/attempts/1/results/out.csv")
print(botocore.__version__, storage.read_text("row/attempts/1/results/out.csv").splitlines()[1])
"""


def test_the_nodes_runtime_saves_a_result_right_after_an_empty_log(monkeypatch, tmp_path):
    """SeaweedFS answers an empty PutObject without "100 Continue": the botocore the machines run
    (burst.control.runtime) then misread the next answer on that connection and waited out its
    two-minute read timeout for every row's result (the campaign above hung). burst sends no Expect."""
    weed = seaweed_server()
    bucket = f"burst-weed-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=weed.url, region_name="us-east-1", aws_access_key_id="a",
                 aws_secret_access_key="b").create_bucket(Bucket=bucket)
    runtime = ensure_runtime(burst_home())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "node", "AWS_SECRET_ACCESS_KEY": "node",
           "TMPDIR": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", AFTER_AN_EMPTY_LOG, str(runtime), str(REPO), f"s3://{bucket}", weed.url],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [PINS["botocore"], "2,4"], "the nodes' own botocore saved the result"
