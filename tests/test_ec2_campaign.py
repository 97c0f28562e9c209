"""A whole EC2 campaign: instances in moto (over HTTP), nodes reached over real SSH.

The "nodes" are real OpenSSH sshd processes on 127.0.0.1. ``--ssh-config`` maps
every instance onto them; their ``SetEnv`` hands the agent moto's endpoint and
credentials with exactly the node role's policy, which on EC2 come from the instance
profile (moto enforces IAM: the dispatcher signs with the policy `burst permissions` prints). The agents upload
to moto's S3 and terminate their instances through moto's EC2 API.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import uuid
from pathlib import Path

import boto3
import pytest

from burst.providers.aws_names import node_role_name
from tests.conftest import REPO, StartsWhenTheKeyExists, run_script, status_report, statuses, wait_until
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.node_identity import CredentialServer, own_file
from tests.sshd import SSHServer, node_env, sshd_factory, write_ssh_config  # noqa: F401  (fixtures)

DISPATCHER = str(REPO / "dispatcher.py")


class Nodes(StartsWhenTheKeyExists):
    """One sshd standing in for every instance, started once the job's key pair exists."""

    def __init__(self, tmp_path, home, factory, endpoint, job, metadata_url: str | None = None,
                 bucket: str | None = None, **env: str):
        # the instance metadata: a loopback IMDSv2 server, or none at all; never the link-local address
        metadata = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_url} if metadata_url else {"AWS_EC2_METADATA_DISABLED": "true"}
        # on EC2 the node signs with its instance profile: here each machine as a session of a role of its own
        # holding exactly the node role's policy (tests/node_identity.py)
        self.credentials = CredentialServer(job, bucket)
        self.server: SSHServer = factory(start=False, env=node_env(
            AWS_ENDPOINT_URL=endpoint, **self.credentials.config(tmp_path / f"node-aws-{job}"), **metadata, **env,
        ))
        self.ssh_config = write_ssh_config(tmp_path / "ssh_config", {"*": {
            "HostName": "127.0.0.1", "Port": self.server.port, "User": self.server.user,
        }})
        # --node-root is a folder inside the login home (burst refuses any other): one of the test's own there
        self.node_root = self.server.home / f".burst-test-nodes-{uuid.uuid4().hex[:12]}"
        self.start_when_the_key_exists(home / ".ssh" / f"{job}.pem", self.server)

    def args(self) -> list[str]:
        return ["--ssh-config", str(self.ssh_config), "--ssh-cidr", "127.0.0.1/32", "--node-root", self.node_root.name, "--yes"]

    def power_off(self, job: str, instance_ids: list[str]) -> int:
        """What terminating these instances does to their processes, which moto cannot do: SIGKILL them.

        Returns how many processes there were.
        """
        return self._kill([self.node_root / job / instance_id for instance_id in instance_ids])

    def power_off_all(self) -> int:
        """End every process any machine of the test started, and remove their folders (nothing outlives the test)."""
        count = self._kill([self.node_root])
        shutil.rmtree(self.node_root, ignore_errors=True)
        self.credentials.close()
        return count

    def _kill(self, folders: list[Path]) -> int:
        """SIGKILL, by pid, the processes of these machine folders (setup, worker, commands).

        A machine's processes carry ``BURST_NODE_DIR=<its folder>`` in their environment
        (the worker also names it after ``--node-dir``); nothing else is touched.
        """
        wanted = [str(folder) for folder in folders]
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue  # gone already, or not ours to read
            folders_named = [item.split(b"=", 1)[1] for item in environ if item.startswith(b"BURST_NODE_DIR=")]
            folders_named += [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == b"--node-dir"]
            for named in folders_named:
                named = named.decode(errors="replace")
                if any(named == folder or named.startswith(folder + "/") for folder in wanted):
                    pids.append(int(entry.name))
                    break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)


@pytest.fixture
def make_nodes(tmp_path, isolated_home, sshd_factory, moto_server):  # noqa: F811
    """``make_nodes(job)`` -> :class:`Nodes`; at teardown every process of their machines is ended."""
    made: list[Nodes] = []

    def make(job: str, metadata_url: str | None = None, **env: str) -> Nodes:
        nodes = Nodes(tmp_path, isolated_home, sshd_factory, moto_server, job, metadata_url, **env)
        made.append(nodes)
        return nodes

    yield make
    for nodes in made:
        nodes.power_off_all()


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
        "echo \"squared $1 on $TAG\"\n[ -z \"${FOO+set}\" ] || echo \"FOO=$FOO\" >&2\n"
    )
    install_file = tmp_path / "INSTALL.sh"
    install_file.write_text(install)
    return jobfile, install_file


INSTALL_ECHO = '#!/bin/bash\necho "install on $INSTANCE_ID ($INSTANCE_TYPE, $BURST_PROVIDER) for $JOB tag=[${TAG:-}]"\n'


def test_campaign_on_ec2_end_to_end(tmp_path, moto_ami, make_nodes):  # noqa: F811
    job = "ec2e2e"
    rows = [("t3.micro", f"bash bench.sh {n}") for n in range(3)] + [("c5.large", f"bash bench.sh {n}") for n in range(3, 6)]
    jobfile, install = write_jobs(tmp_path, rows, install=INSTALL_ECHO + 'echo "env FOO=[$FOO]"\n')
    nodes = make_nodes(job)

    result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait", "--install", str(install),
                        "--env", "FOO=bar baz", *nodes.args())
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started 3 machine(s) of type t3.micro" in result.stdout, result.stdout
    assert "started 3 machine(s) of type c5.large" in result.stdout, result.stdout

    machines = instances_of(job)
    assert len(machines) == 6, "EC2's default pool: one machine per row"
    by_reservation: dict[str, set[str]] = {}
    for machine in machines:
        by_reservation.setdefault(machine["Reservation"], set()).add(machine["InstanceType"])
    # one type per RunInstances, all of a type in one round ("started 3"); MinCount 1 and moto starts MinCount:
    # each call started one machine, and the rest was asked for at once (ec2_launch)
    assert sorted(map(sorted, by_reservation.values())) == [["c5.large"]] * 3 + [["t3.micro"]] * 3
    assert {m["State"]["Name"] for m in machines} == {"terminated"}, "every machine is ended when --wait returns"
    assert all("tag" not in {t["Key"] for t in m["Tags"]} for m in machines), "machines carry the job's tags only"
    assert oct(nodes.pem.stat().st_mode & 0o777) == "0o600"
    types = {m["InstanceId"]: m["InstanceType"] for m in machines}
    # every machine had its own folder on the (shared) node, named by its instance id
    assert sorted(p.name for p in (nodes.node_root / job).iterdir()) == sorted(types)
    # the node role's id, for a machine that cannot ask STS what its aws:userid is (burst.node.identity)
    role_id = boto3.client("iam").get_role(RoleName=node_role_name(job))["Role"]["RoleId"]
    for instance_id in types:
        node = json.loads((nodes.node_root / job / instance_id / "node.json").read_text())
        assert node["provider_options"]["node_role_id"] == role_id

    report = status_report(job)
    states = {row["tag"]: row for row in report["rows"]}
    assert {s["state"] for s in states.values()} == {"done"} and len(states) == 6
    for n, (instance_type, _) in enumerate(rows):
        row = states[f"{job}{n}"]
        assert row["attempt"] == 1 and row["exit_code"] == 0 and row["slot"] == 0
        assert types[row["instance_id"]] == instance_type == row["instance_type"], "a row runs on a machine of its type"
        assert row["instance"]["id"] == row["instance_id"]
    first = states[f"{job}0"]
    assert first["instance"]["availability_zone"].startswith("us-east-1")
    assert first["instance"]["image_id"] == moto_ami and first["instance"]["lifecycle"] == "on-demand"
    pool = {m["id"]: m for m in report["machines"]}
    assert set(pool) == set(types)
    for instance_id, machine in pool.items():
        assert machine["instance_type"] == types[instance_id] and machine["live"] is False
        assert machine["score_off"] is None, "--no-calibrate: no machine is scored"
        assert machine["state"] == "worker finished" and machine["note"] == "", "each worker ended its own machine"
    logs = run_script("-m", "burst", "logs", job, f"{job}4")  # its machine's logs, from the worker's own folder
    machine4 = states[f"{job}4"]["instance_id"]
    assert logs.returncode == 0 and f"install on {machine4} (" in logs.stdout, logs.stdout + logs.stderr
    assert "(no install.log)" not in logs.stdout and "(no worker.log)" not in logs.stdout, logs.stdout
    ran = sorted(r for m in pool.values() for r in m["rows"])
    assert ran == sorted(f"{job}{n}#1" for n in range(6)), "every row ran once, on one machine"
    for machine in pool.values():
        assert all(states[r.split("#")[0]]["instance_id"] == machine["id"] for r in machine["rows"])

    out = tmp_path / "out"
    fetched = run_script(str(REPO / "get_s3_files.py"), job, str(out), "--merge")
    assert fetched.returncode == 0, fetched.stderr
    with open(out / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert sorted((r["tag"], r["instance_type"], r["param"], r["value"]) for r in merged) == sorted(
        (f"{job}{n}", rows[n][0], str(n), str(n * n)) for n in range(6)
    )
    assert {r["instance_availability_zone"][:9] for r in merged} == {"us-east-1"}
    assert (out / f"{job}4" / "attempts" / "1" / "logs" / "stdout.log").read_text() == f"squared 4 on {job}4\n"
    assert (out / f"{job}4" / "attempts" / "1" / "logs" / "stderr.log").read_text() == "FOO=bar baz\n", "--env reaches the command"
    for instance_id, instance_type in types.items():
        log = own_file(out, instance_id, "install.log").read_text()  # saved by its worker (burst.node.identity)
        assert f"install on {instance_id} ({instance_type}, ec2) for {job} tag=[]" in log, log
        assert "env FOO=[bar baz]" in log, "--env reaches INSTALL.sh"
        assert (out / "state" / "machines" / f"{instance_id}.json").is_file()
        assert json.loads(own_file(out, instance_id, "worker.json").read_text())["state"] == "finished"

    again = run_script(str(REPO / "get_s3_files.py"), job, str(out))
    assert again.returncode == 0 and "downloaded 0 file(s)" in again.stdout


def lines_of(path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_failed_install_is_replaced_terminate_ends_all_and_reruns_launch_nothing_twice(
        tmp_path, moto_ami, make_nodes):  # noqa: F811
    """One machine's INSTALL.sh fails: it is ended with its log kept, and a new machine takes its place.

    The failing install waits until the two other machines have started a row, so
    that the replacement must be launched while every live machine is busy.
    """
    job = "ec2fail"
    started, release, first = tmp_path / "started.txt", tmp_path / "release", tmp_path / "first-install"
    install = (
        "#!/bin/bash\n"
        f"if mkdir {shlex.quote(str(first))} 2>/dev/null; then\n"
        f"  while [ \"$(cat {shlex.quote(str(started))} 2>/dev/null | wc -l)\" -lt 2 ]; do sleep 0.1; done\n"
        "  echo \"no compiler here on $INSTANCE_ID\" >&2; exit 4\n"
        "fi\n"
        "echo fine\n"
    )
    command = (f"echo \"$TAG#$ATTEMPT\" >> {shlex.quote(str(started))}; "
               f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.1; done")
    jobfile, install_file = write_jobs(tmp_path, [("t3.micro", command)] * 3, install=install)
    nodes = make_nodes(job)
    args = [DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--install", str(install_file), "--retries", "1",
            *nodes.args()]
    tags = [f"{job}{n}" for n in range(3)]

    first_run = run_script(*args)
    assert nodes.error is None, nodes.error
    assert first_run.returncode == 0, first_run.stdout + first_run.stderr
    assert "started 3 machine(s) of type t3.micro" in first_run.stdout
    machines = instances_of(job)
    (failed,) = [m["InstanceId"] for m in machines if m["State"]["Name"] in ("shutting-down", "terminated")]
    assert f"machine {failed} (t3.micro): INSTALL.sh exited with status 4" in first_run.stdout, first_run.stdout
    assert f"no compiler here on {failed}" in first_run.stdout
    log = boto3.client("s3").get_object(Bucket=job, Key=f"machines/{failed}/install.log")["Body"].read().decode()
    assert f"no compiler here on {failed}" in log, "the failed machine's install log is kept in the bucket"
    report = status_report(job)
    pool = {m["id"]: m for m in report["machines"]}
    assert pool[failed]["state"] == "install-failed" and not pool[failed]["live"]
    assert f"no compiler here on {failed}" in pool[failed]["note"]
    assert sorted(row["state"] for row in report["rows"]) == ["pending", "running", "running"]

    second_run = run_script(*args)  # the same -c -d again: a machine for the waiting row, nothing else
    assert second_run.returncode == 0, second_run.stdout + second_run.stderr
    assert "started 1 machine(s) of type t3.micro" in second_run.stdout, (
        "the row left without a machine gets a new one, although the live machines are busy: " + second_run.stdout)
    states = wait_until(lambda: (s := statuses(job)) and all(s[t]["state"] == "running" for t in tags) and s,
                        what="every row running")
    assert len({states[t]["instance_id"] for t in tags}) == 3 and failed not in {states[t]["instance_id"] for t in tags}
    assert sorted(lines_of(started)) == sorted(f"{t}#1" for t in tags)

    third_run = run_script(*args)
    assert third_run.returncode == 0, third_run.stdout + third_run.stderr
    assert "machine(s) of type" not in third_run.stdout, "a rerun launches nothing when every row has its machine"
    machines = instances_of(job)
    assert len(machines) == 4
    live = [m["InstanceId"] for m in machines if m["State"]["Name"] not in ("shutting-down", "terminated")]
    assert len(live) == 3

    ended = run_script("-m", "burst", "terminate", job)
    assert ended.returncode == 0 and "terminated 3 machine(s)" in ended.stdout, ended.stdout + ended.stderr
    assert {m["State"]["Name"] for m in instances_of(job)} <= {"shutting-down", "terminated"}
    assert nodes.power_off(job, live) > 0  # their workers and commands end with them
    # their attempts lost their machines: with --retries 1 each row runs once more
    states = statuses(job)
    assert all(states[t]["state"] == "pending" and states[t]["attempt"] == 2 for t in tags), states
    assert all("lost its machine" in states[t]["note"] for t in tags)

    release.touch()
    finished = run_script(*args, "--wait")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "started 3 machine(s) of type t3.micro" in finished.stdout, finished.stdout
    states = statuses(job)
    assert {(states[t]["state"], states[t]["attempt"], states[t]["exit_code"]) for t in tags} == {("done", 2, 0)}
    assert sorted(lines_of(started)) == sorted(f"{t}#{a}" for t in tags for a in (1, 2)), "every attempt ran once"
    machines = instances_of(job)
    assert len(machines) == 7 and {m["State"]["Name"] for m in machines} == {"terminated"}


@pytest.mark.parametrize("image,rows,expected", [
    ("ami-00000000000000000", [("t3.micro", "true")], "ami-00000000000000000"),
    (None, [("t3.micro", "true"), ("x9.gigantic", "true")], "x9.gigantic"),
])
def test_unknown_ami_or_instance_type_is_refused_before_anything_is_launched(tmp_path, moto_server, moto_ami, image, rows, expected):
    jobfile, install = write_jobs(tmp_path, rows)
    result = run_script(DISPATCHER, image or moto_ami, "ec2bad", str(jobfile), "-c", "-d", "--no-calibrate", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32", "--yes")
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
    result = run_script(DISPATCHER, moto_ami, "ec2creds", str(jobfile), "-c", "-d", "--no-calibrate", "--install", str(install), "--ssh-cidr", cidr, "--yes")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    expected = {"no credentials": "aws configure", "open ssh range": "0.0.0.0/0", "not an address": "my-laptop"}[case]
    assert expected in result.stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert instances_of("ec2creds") == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert boto3.client("ec2").describe_key_pairs()["KeyPairs"] == []
