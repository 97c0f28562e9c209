"""cloud_setup.py: a job's AWS resources made, shown and removed without launching anything."""

import boto3

from tests.conftest import REPO, run_script
from tests.motoserver import moto_server  # noqa: F401  (fixture)


def test_cloud_setup_makes_shows_and_tears_down_a_jobs_resources(moto_server, isolated_home):
    made = run_script(str(REPO / "cloud_setup.py"), "setupjob", "--ssh-cidr", "127.0.0.1")
    assert made.returncode == 0, made.stderr
    assert "s3://setupjob" in made.stdout and "SSH from 127.0.0.1/32 only" in made.stdout
    assert (isolated_home / ".ssh" / "setupjob.pem").stat().st_mode & 0o777 == 0o600
    assert boto3.client("ec2").describe_instances()["Reservations"] == []

    again = run_script(str(REPO / "cloud_setup.py"), "setupjob", "--ssh-cidr", "127.0.0.1/32")
    assert again.returncode == 0, "a second run finds what the first made"

    removed = run_script(str(REPO / "cloud_setup.py"), "setupjob", "--teardown")
    assert removed.returncode == 0, removed.stderr
    assert not (isolated_home / ".ssh" / "setupjob.pem").exists()
    assert [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]] == ["setupjob"], "results are kept"


def test_cloud_setup_refuses_an_open_ssh_range_and_a_bad_job_name(moto_server):
    wide = run_script(str(REPO / "cloud_setup.py"), "setupjob", "--ssh-cidr", "0.0.0.0/0")
    assert wide.returncode == 2 and "Traceback" not in wide.stderr
    bad = run_script(str(REPO / "cloud_setup.py"), "Setup_Job")
    assert bad.returncode == 2 and "cannot be a bucket name" in bad.stderr
