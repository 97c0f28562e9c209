"""One clock: the bucket's. libfaketime (Debian's ``faketime``) puts the dispatcher, or every worker, 10 minutes
off; leases are measured on the bucket's clock, so nothing is interrupted and every row runs once.

EC2 on moto, machines as real sshd on 127.0.0.1 (as in test_ec2_campaign); moto's S3 keeps the real time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, statuses
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, instances_of, make_nodes, write_jobs  # noqa: F401  (fixture)

LIBFAKETIME = next((str(p) for p in (Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
                                     Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1")) if p.exists()), None)


def skewed(offset: str, monotonic_too: bool) -> dict[str, str]:
    """The environment that puts a process's wall clock ``offset`` off (``+10m``, ``-10m``).

    Two artefacts of libfaketime, not of burst: with the monotonic clock faked as well, the worker's
    timed waits (``Event.wait``: ``pthread_cond_timedwait``) wait the whole offset; with it left alone,
    the dispatcher's ``time.sleep`` (``clock_nanosleep``) gets EINVAL. A real skewed clock moves the
    wall clock only, which is what both settings give burst to see.
    """
    assert LIBFAKETIME, "libfaketime is missing: scripts/test.sh installs Debian's faketime"
    env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": offset, "FAKETIME_DONT_RESET": "1"}
    return env if monotonic_too else {**env, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def run_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.mark.parametrize("who", ["dispatcher", "workers"])
@pytest.mark.parametrize("offset", ["+10m", "-10m"])
def test_ten_minutes_of_skew_interrupt_nothing(tmp_path, moto_ami, make_nodes, who, offset):  # noqa: F811
    job = "skew"
    # each row outlasts its lease (4 heartbeats of 1 s)
    jobfile, install = write_jobs(tmp_path, [("t3.micro", f"sleep 5; bash bench.sh {n}") for n in range(2)])
    nodes = make_nodes(job, **(skewed(offset, monotonic_too=False) if who == "workers" else {}))
    dispatcher_env = skewed(offset, monotonic_too=True) if who == "dispatcher" else {}
    if who == "workers":  # the nodes' clocks are off: check it reaches them
        (tmp_path / "ec2jobs" / "bench.sh").write_text((tmp_path / "ec2jobs" / "bench.sh").read_text() + "date -u +%s > results/now.txt\n")
    result = run_with(dispatcher_env, DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait",
                      "--install", str(install), "--machines", "2", "--heartbeat", "1", *nodes.args())
    assert nodes.error is None, nodes.error
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "heartbeat" not in said and "runs again" not in said, said
    rows = statuses(job)
    assert {(row["state"], row["attempt"]) for row in rows.values()} == {("done", 1)}, rows
    assert len(instances_of(job)) == 2, "no machine was replaced"

    if who == "workers":  # their clocks were off indeed
        import time

        import boto3

        bucket = json.loads((tmp_path / "burst-home" / "campaigns" / f"{job}.json").read_text())["bucket_url"][5:]
        said_now = boto3.client("s3").get_object(Bucket=bucket, Key=f"{job}0/attempts/1/results/now.txt")["Body"].read()
        assert abs(abs(int(said_now) - time.time()) - 600) < 120, said_now

    shown = run_with(dispatcher_env, "-m", "burst", "status", job)
    if who == "dispatcher":
        way = "ahead of" if offset.startswith("+") else "behind"
        assert re.search(rf"this machine's clock is (599|600|601) s {way} the bucket's", shown.stderr), shown.stderr
