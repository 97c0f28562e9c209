"""A whole EC2 campaign: instances in moto (over HTTP), nodes reached over real SSH.

The "nodes" are real OpenSSH sshd processes on 127.0.0.1. ``--ssh-config`` maps
every instance onto them; their ``SetEnv`` hands the agent moto's endpoint and
fake credentials, which on EC2 come from the instance profile. The agents upload
to moto's S3 and terminate their instances through moto's EC2 API.
"""

from __future__ import annotations

import csv
import subprocess
import threading

import boto3
import pytest

from tests.conftest import REPO, run_script, statuses, wait_until
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import SSHServer, node_env, sshd_factory, write_ssh_config  # noqa: F401  (fixtures)

DISPATCHER = str(REPO / "dispatcher.py")


def public_key_of(pem) -> str:
    return subprocess.run(["ssh-keygen", "-y", "-f", str(pem)], capture_output=True, text=True, check=True).stdout


class Nodes:
    """One sshd standing in for every instance, started once the job's key pair exists."""

    def __init__(self, tmp_path, home, factory, endpoint, job):
        self.server: SSHServer = factory(start=False, env=node_env(
            AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="node-testing", AWS_SECRET_ACCESS_KEY="node-testing",
            AWS_EC2_METADATA_DISABLED="true",
        ))
        self.ssh_config = write_ssh_config(tmp_path / "ssh_config", {"*": {
            "HostName": "127.0.0.1", "Port": self.server.port, "User": self.server.user,
        }})
        self.pem = home / ".ssh" / f"{job}.pem"
        self.node_root = tmp_path / "nodes"
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start_when_the_key_exists, daemon=True)
        self.thread.start()

    def _start_when_the_key_exists(self):
        """sshd answers only after the dispatcher created the key pair: it must retry until then."""
        try:
            wait_until(lambda: self.pem.exists() and self.pem.stat().st_size > 0, timeout=120, what="the job's key file")
            self.server.authorize(public_key_of(self.pem))
            self.server.start()
        except BaseException as error:  # reported by the test
            self.error = error

    def args(self) -> list[str]:
        return ["--ssh-config", str(self.ssh_config), "--ssh-cidr", "127.0.0.1/32", "--node-root", str(self.node_root)]


def instances_of(job: str) -> list[dict]:
    ec2 = boto3.client("ec2")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:job", "Values": [job]}])["Reservations"]
    return [dict(instance, Reservation=r["ReservationId"]) for r in reservations for instance in r["Instances"]]


def write_jobs(tmp_path, rows, install="#!/bin/bash\necho \"install on $TAG ($BURST_PROVIDER)\"\n"):
    jobfile = tmp_path / "ec2jobs.csv"
    with open(jobfile, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instance_type", "command"])
        writer.writerows(rows)
    code = tmp_path / "ec2jobs"
    code.mkdir()
    (code / "bench.sh").write_text(
        "#!/bin/bash\nmkdir -p results\nprintf 'param,value\\n%s,%s\\n' \"$1\" \"$(( $1 * $1 ))\" > results/out.csv\n"
        "echo \"squared $1 on $TAG\"\n"
    )
    install_file = tmp_path / "INSTALL.sh"
    install_file.write_text(install)
    return jobfile, install_file


def test_campaign_on_ec2_end_to_end(tmp_path, isolated_home, moto_server, moto_ami, sshd_factory):
    job = "ec2e2e"
    rows = [("t3.micro", f"bash bench.sh {n}") for n in range(3)] + [("c5.large", f"bash bench.sh {n}") for n in range(3, 6)]
    jobfile, install = write_jobs(tmp_path, rows)
    nodes = Nodes(tmp_path, isolated_home, sshd_factory, moto_server, job)

    result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--wait", "--install", str(install), *nodes.args())
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 / 6 ready" in result.stdout

    machines = instances_of(job)
    assert len(machines) == 6
    assert len({m["Reservation"] for m in machines}) == 2, "one RunInstances per instance type"
    assert {m["State"]["Name"] for m in machines} == {"terminated"}, "every agent ended its machine"
    assert oct(nodes.pem.stat().st_mode & 0o777) == "0o600"

    states = statuses(job)
    assert {s["state"] for s in states.values()} == {"done"}
    first = states[f"{job}0"]
    assert first["instance"]["availability_zone"].startswith("us-east-1")
    assert first["instance"]["image_id"] == moto_ami and first["instance"]["lifecycle"] == "on-demand"

    out = tmp_path / "out"
    fetched = run_script(str(REPO / "get_s3_files.py"), job, str(out), "--merge")
    assert fetched.returncode == 0, fetched.stderr
    with open(out / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert sorted((r["tag"], r["instance_type"], r["param"], r["value"]) for r in merged) == sorted(
        (f"{job}{n}", rows[n][0], str(n), str(n * n)) for n in range(6)
    )
    assert {r["instance_availability_zone"][:9] for r in merged} == {"us-east-1"}
    assert (out / f"{job}4" / "logs" / "stdout.log").read_text() == f"squared 4 on {job}4\n"
    assert "install on ec2e2e4 (ec2)" in (out / f"{job}4" / "logs" / "install.log").read_text()

    again = run_script(str(REPO / "get_s3_files.py"), job, str(out))
    assert again.returncode == 0 and "downloaded 0 file(s)" in again.stdout


def test_install_failure_on_one_host_and_a_rerun_launch_nothing_twice(tmp_path, isolated_home, moto_server, moto_ami, sshd_factory):
    job = "ec2fail"
    install = '#!/bin/bash\nif [ "$TAG" = ec2fail1 ]; then echo "no compiler here" >&2; exit 4; fi\necho fine\n'
    jobfile, install_file = write_jobs(tmp_path, [("t3.micro", "sleep 300")] * 3, install=install)
    nodes = Nodes(tmp_path, isolated_home, sshd_factory, moto_server, job)
    args = [DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--install", str(install_file), *nodes.args()]

    first = run_script(*args)
    assert nodes.error is None, nodes.error
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 / 3 ready, 1 failed" in first.stdout
    states = wait_until(lambda: (s := statuses(job)) and s[f"{job}0"]["state"] == "running" and s[f"{job}2"]["state"] == "running" and s,
                        what="two commands running")
    assert states[f"{job}1"]["state"] == "failed" and "no compiler here" in states[f"{job}1"]["note"]

    second = run_script(*args)  # the same -c -d again
    assert second.returncode == 0, second.stderr
    machines = instances_of(job)
    live = [m for m in machines if m["State"]["Name"] != "terminated"]
    assert len(live) == 2, "no second machine for a tag with a live one"
    # the failed tag was retried: a new machine, which fails its install again and is ended
    assert len(machines) == 4
    assert "started 0 command(s); 2 already started before" in second.stdout

    ended = run_script("-m", "burst", "terminate", job)
    assert ended.returncode == 0 and "terminated 2 machine(s)" in ended.stdout
    assert {m["State"]["Name"] for m in instances_of(job)} == {"terminated"}
    assert {s["state"] for s in statuses(job).values()} == {"interrupted", "failed"}


@pytest.mark.parametrize("image,rows,expected", [
    ("ami-00000000000000000", [("t3.micro", "true")], "ami-00000000000000000"),
    (None, [("t3.micro", "true"), ("x9.gigantic", "true")], "x9.gigantic"),
])
def test_unknown_ami_or_instance_type_is_refused_before_anything_is_launched(tmp_path, moto_server, moto_ami, image, rows, expected):
    jobfile, install = write_jobs(tmp_path, rows)
    result = run_script(DISPATCHER, image or moto_ami, "ec2bad", str(jobfile), "-c", "-d", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32")
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert instances_of("ec2bad") == []
    assert boto3.client("s3").list_buckets()["Buckets"] == [], "nothing is created for a refused campaign"


@pytest.mark.parametrize("case", ["no credentials", "open ssh range", "not an address"])
def test_credential_and_address_mistakes_are_exit_2_and_create_nothing(tmp_path, moto_server, moto_ami, monkeypatch, case):
    jobfile, install = write_jobs(tmp_path, [("t3.micro", "true")])
    cidr = {"no credentials": "127.0.0.1/32", "open ssh range": "0.0.0.0/0", "not an address": "my-laptop"}[case]
    if case == "no credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = run_script(DISPATCHER, moto_ami, "ec2creds", str(jobfile), "-c", "-d", "--install", str(install), "--ssh-cidr", cidr)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    expected = {"no credentials": "aws configure", "open ssh range": "0.0.0.0/0", "not an address": "my-laptop"}[case]
    assert expected in result.stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert instances_of("ec2creds") == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert boto3.client("ec2").describe_key_pairs()["KeyPairs"] == []
