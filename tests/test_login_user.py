"""Who logs in: the SSH user follows the AMI, and a refused login is a verdict within a minute.

The refused login is a real one: an OpenSSH sshd on 127.0.0.1 (tests/sshd.py) that
has no user ``ubuntu``, for instances of an Amazon Linux AMI in moto.
"""

from __future__ import annotations

import time

import boto3
import pytest

from burst.providers.ami_user import login_user
from tests.conftest import REPO, run_script, statuses
from tests.motoserver import moto_server  # noqa: F401  (fixture)
from tests.sshd import sshd_factory, write_ssh_config  # noqa: F401  (fixture)
from tests.test_ec2_campaign import instances_of, make_nodes, write_jobs  # noqa: F401  (fixture)

DISPATCHER = str(REPO / "dispatcher.py")


@pytest.mark.parametrize("image, user, distribution", [
    ({"Name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240801", "OwnerId": "099720109477"}, "ubuntu", "Ubuntu"),
    ({"Name": "al2023-ami-2023.5.20240805.0-kernel-6.1-x86_64", "OwnerId": "137112412989"}, "ec2-user", "Amazon Linux 2023"),
    ({"Name": "amzn2-ami-kernel-5.10-hvm-2.0.20240719.0-x86_64-gp2"}, "ec2-user", "Amazon Linux"),
    ({"Name": "debian-12-amd64-20240717-1811", "OwnerId": "136693071363"}, "admin", "Debian"),
    ({"Name": "RHEL-9.4.0_HVM-20240605-x86_64-82-Hourly2-GP3"}, "ec2-user", "Red Hat Enterprise Linux"),
    ({"Name": "suse-sles-15-sp6-v20240808-hvm-ssd-x86_64"}, "ec2-user", "SUSE Linux Enterprise"),
    ({"Name": "Rocky-9-EC2-Base-9.4-20240523.0.x86_64"}, "rocky", "Rocky Linux"),
    ({"Name": "CentOS Stream 9 x86_64 20240805"}, "centos", "CentOS"),
    ({"Name": "Fedora-Cloud-Base-AmazonEC2.x86_64-40-1.14"}, "fedora", "Fedora"),
    ({"Name": "golden-image-2024", "OwnerId": "136693071363"}, "admin", "Debian"),  # by its owner
])
def test_the_ssh_user_follows_the_ami(image, user, distribution):
    found = login_user(image)
    assert (found.user, found.distribution, found.note) == (user, distribution, "")


def test_an_unknown_ami_logs_in_as_ec2_user_with_a_note():
    found = login_user({"Name": "golden-image-2024", "OwnerId": "123456789012"})
    assert found.user == "ec2-user"
    assert found.note == ("the SSH user of golden-image-2024 is not known to burst: trying ec2-user "
                          "(pass --user USER if the image logs in as another)")


def amazon_linux_ami() -> str:
    images = boto3.client("ec2").describe_images(
        Owners=["137112412989"], Filters=[{"Name": "name", "Values": ["al2022-ami-*"]},
                                          {"Name": "architecture", "Values": ["x86_64"]}])["Images"]
    assert images, "moto offers an Amazon Linux 2022 AMI"
    return sorted(image["ImageId"] for image in images)[0]


def test_a_login_refused_for_the_wrong_user_is_a_verdict_within_60_s_and_no_more_machines_start(
        tmp_path, moto_server, make_nodes):  # noqa: F811
    job = "wronguser"
    image = amazon_linux_ami()
    jobfile, install = write_jobs(tmp_path, [("t3.micro", f"bash bench.sh {n}") for n in range(4)])
    nodes = make_nodes(job)
    # the config names the address only: the user is burst's to choose (here the wrong one, by --user)
    write_ssh_config(nodes.ssh_config, {"*": {"HostName": "127.0.0.1", "Port": nodes.server.port}})

    started = time.monotonic()
    result = run_script(DISPATCHER, image, job, str(jobfile), "-c", "-d", "--wait", "--machines", "2",
                        "--install", str(install), "--user", "ubuntu", *nodes.args(), timeout=240)
    elapsed = time.monotonic() - started
    assert nodes.error is None, nodes.error
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    verdict = "refused user 'ubuntu' (publickey): this AMI (Amazon Linux 2022) logs in as ec2-user: pass --user ec2-user"
    assert verdict in output, output
    assert elapsed < 60, f"the verdict took {elapsed:.0f} s"
    machines = instances_of(job)
    assert len(machines) == 2, "after the verdict, no more machines of the type are launched"
    assert {m["State"]["Name"] for m in machines} == {"terminated"}
    rows = statuses(job)
    assert {row["state"] for row in rows.values()} == {"failed"}
    assert all(verdict in row["note"] for row in rows.values()), [row["note"] for row in rows.values()]
    assert "Invalid user ubuntu" in nodes.server.log(), "the real sshd refused the user"
