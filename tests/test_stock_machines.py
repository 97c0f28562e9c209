"""Campaigns on stock machines: a Debian 12 userland (python3 3.11, boto3 1.26) and one whose python3 is a bare 3.9.

EC2 is moto (over HTTP); every instance it launches is reached, through
``--ssh-config``, at a stock machine of ``tests/stock.py``: the userland's own
Debian sshd in a chroot, logging in as ``admin``. Nothing of this checkout's
virtualenv is on such a machine: the worker runs on the machine's own python3,
with the runtime the bundle brought (botocore with conditional writes), never
with Debian's botocore 1.29 (which has none) nor with nothing at all (3.9).
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from tests.conftest import REPO, StartsWhenTheKeyExists, run_script, status_report
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.node_identity import CredentialServer, own_file
from tests.sshd import write_ssh_config
from tests.stock import LOGIN_USER, StockMachine, debian_userland, mounts_below, python39_layer

DISPATCHER = str(REPO / "dispatcher.py")
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StockNodes(StartsWhenTheKeyExists):
    """One stock machine standing in for every instance, started once the job's key pair exists."""

    def __init__(self, tmp_path, home, layers, endpoint, job):
        # each machine's credentials: a session of a role holding exactly the node role's policy (moto enforces IAM),
        # asked for by the machine's own python3 (tests/node_identity.py)
        self.credentials = CredentialServer(job)
        upper = tmp_path / "machine" / "upper"  # StockMachine's top layer: the file is the machine's own
        self.machine = StockMachine(tmp_path / "machine", layers, env={
            "PATH": DEBIAN_PATH, "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
            **self.credentials.config(upper / "etc" / "burst-test", python="python3", inside="/etc/burst-test"),
            "AWS_EC2_METADATA_DISABLED": "true",  # never the link-local metadata address
        })
        self.ssh_config = write_ssh_config(tmp_path / "ssh_config", {"*": {
            "HostName": "127.0.0.1", "Port": self.machine.port, "User": LOGIN_USER,
        }})
        self.node_root = f".burst-test-nodes-{uuid.uuid4().hex[:12]}"
        self.start_when_the_key_exists(home / ".ssh" / f"{job}.pem", self.machine)

    def args(self) -> list[str]:
        return ["--ssh-config", str(self.ssh_config), "--ssh-cidr", "127.0.0.1/32", "--node-root", self.node_root, "--yes"]

    def folder(self, job: str, instance_id: str):
        return self.machine.path(f"/home/{LOGIN_USER}/{self.node_root}/{job}/{instance_id}")


@pytest.fixture
def stock_nodes(tmp_path, isolated_home, moto_server):  # noqa: F811
    made: list[StockNodes] = []

    def make(layers, job: str) -> StockNodes:
        nodes = StockNodes(tmp_path, isolated_home, layers, moto_server, job)
        made.append(nodes)
        return nodes

    yield make
    for nodes in made:
        nodes.thread.join(timeout=130)
        nodes.machine.stop()
        nodes.credentials.close()
    assert not mounts_below(tmp_path), "a machine's mounts live only in its own mount namespace"


def instances_of(job: str) -> list[dict]:
    reservations = boto3.client("ec2").describe_instances(Filters=[{"Name": "tag:job", "Values": [job]}])["Reservations"]
    return [instance for reservation in reservations for instance in reservation["Instances"]]


VARIANTS = {
    # name: (layers, python3 --version as the machine says it, what its own site-packages hold)
    "debian12": (lambda: [debian_userland()], "Python 3.11", "python3-boto3 1.26 (botocore 1.29: no conditional writes)"),
    "python39": (lambda: [python39_layer(), debian_userland()], "Python 3.9", "nothing"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_campaign_on_stock_machines_finishes_every_row_and_ends_every_machine(tmp_path, moto_ami, stock_nodes,
                                                                               variant):  # noqa: F811
    layers, python_says, _ = VARIANTS[variant]
    job = f"stock{variant.replace('debian', 'deb')}"[:20]
    rows = [("t3.micro", f"python3 -c 'import sys; print(sys.version_info[:2], {n} * {n})'") for n in range(4)]
    jobfile = tmp_path / "jobs.csv"
    jobfile.write_text("instance_type,command\n" + "".join(f'{t},"{c}"\n' for t, c in rows))
    (tmp_path / "jobs").mkdir()
    install = tmp_path / "INSTALL.sh"
    install.write_text("#!/bin/bash\necho \"install on $INSTANCE_ID as $(id -un)\"\n")
    nodes = stock_nodes(layers(), job)

    result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--wait", "--machines", "2",
                        "--install", str(install), *nodes.args(), timeout=600)
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr + nodes.machine.log()

    machines = instances_of(job)
    assert machines and {m["State"]["Name"] for m in machines} == {"terminated"}, "every machine is ended"
    report = status_report(job)
    assert {row["state"] for row in report["rows"]} == {"done"} and len(report["rows"]) == 4
    assert all(machine["live"] is False for machine in report["machines"])

    out = tmp_path / "out"
    fetched = run_script(str(REPO / "get_s3_files.py"), job, str(out))
    assert fetched.returncode == 0, fetched.stderr
    version = "(3, 9)" if variant == "python39" else "(3, 11)"
    for n in range(4):
        assert (out / f"{job}{n}" / "attempts" / "1" / "logs" / "stdout.log").read_text() == f"{version} {n * n}\n"
    for machine in machines:
        instance_id = machine["InstanceId"]
        install_log = own_file(out, instance_id, "install.log").read_text()
        assert f"bootstrap: nothing to install: the worker runs on /usr/bin/python3 ({python_says}" in install_log, install_log
        assert f"install on {instance_id} as {LOGIN_USER}" in install_log
        worker_log = (nodes.folder(job, instance_id) / "logs" / "worker.log").read_text()
        assert f"worker: Python {python_says[7:]}" in worker_log and "with its own runtime" in worker_log, worker_log
        assert json.loads(own_file(out, instance_id, "worker.json").read_text())["state"] == "finished"
