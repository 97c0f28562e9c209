"""Where machines go on EC2: --subnet, no default VPC, --public-ip/--no-public-ip, --instance-profile (moto, IAM enforced)."""

from __future__ import annotations

from pathlib import Path

import pytest

from burst.cli.console import run_entry
from burst.cli.run import main as dispatcher_main
from burst.errors import UserError
from burst.providers import ProviderOptions
from burst.providers.base import LaunchSpec
from burst.providers.ec2 import EC2Provider
from burst.records import Job
from burst.transport.ssh_target import SSHError
from tests.awsfaults import UNSUPPORTED_IN_ZONE, aws_faults  # noqa: F401  (fixture)
from tests.conftest import write_campaign
from tests.motoserver import admin, moto_ami, moto_server  # noqa: F401  (fixtures)

JOB = "netjob"


def ec2():
    return admin().session().client("ec2")


def own_vpc() -> tuple[str, list[str]]:
    """A VPC of the user's with two subnets (us-east-1a, us-east-1b) that give no public address."""
    client = ec2()
    vpc = client.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [client.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{n}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"]["SubnetId"]
               for n, zone in enumerate("ab")]
    return vpc, subnets


def provider_with(tmp_path: Path, image: str, **options) -> EC2Provider:
    provider = EC2Provider(JOB, image, ProviderOptions(ssh_cidr="127.0.0.1/32", key_dir=str(tmp_path / "keys"), **options),
                           tmp_path / "burst-home")
    provider.said = []
    provider.report = provider.said.append
    provider.sleep = lambda seconds: None
    provider.poll_seconds = 0.2
    return provider


def instance(instance_id: str) -> dict:
    (reservation,) = ec2().describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservation["Instances"][0]


def remove_default_vpc() -> None:
    client = ec2()
    for vpc in client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]:
        for subnet in client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
            client.delete_subnet(SubnetId=subnet["SubnetId"])
        client.delete_vpc(VpcId=vpc["VpcId"])


def test_no_default_vpc_and_no_subnet_is_one_message_and_nothing_is_made(tmp_path, moto_ami, capsys):  # noqa: F811
    remove_default_vpc()
    jobfile, install = write_campaign(tmp_path / JOB, [("t3.micro", "true")])
    code = run_entry(dispatcher_main, [moto_ami, JOB, str(jobfile), "-c", "-d", "--no-calibrate", "--install", str(install),
                                       "--ssh-cidr", "203.0.113.7/32", "--yes"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "has no default VPC, and no --subnet was given" in err
    assert "--subnet subnet-" in err and "aws ec2 create-default-vpc --region us-east-1" in err
    s3, iam = admin().session().client("s3"), admin().session().client("iam")
    assert s3.list_buckets()["Buckets"] == []
    assert ec2().describe_key_pairs()["KeyPairs"] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
    assert ec2().describe_instances()["Reservations"] == []


def test_subnets_given_are_tried_in_order_and_hold_the_group(tmp_path, moto_ami, aws_faults):  # noqa: F811
    vpc, (subnet_a, subnet_b) = own_vpc()
    provider = provider_with(tmp_path, moto_ami, subnets=[subnet_b, subnet_a], public_ip=True)
    provider.validate([Job(tag=f"{JOB}0", instance_type="t3.micro", command="true", line=2)])
    assert provider.plan_notes()[:1] == [
        f"machines go into {vpc} (--subnet): subnets {subnet_b} (us-east-1b), {subnet_a} (us-east-1a), tried in this "
        f"order; a public IPv4 address each (--public-ip)"]
    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 2)
    assert {instance(i)["SubnetId"] for i in ids} == {subnet_b}
    (group,) = ec2().describe_security_groups(GroupIds=[provider.resources.security_group_id])["SecurityGroups"]
    assert group["VpcId"] == vpc
    rule = aws_faults.add(UNSUPPORTED_IN_ZONE.on("RunInstances", times=1))  # us-east-1b lacks the type: 1a then
    (other,) = provider.launch(LaunchSpec(JOB, "c5.large", moto_ami), 1)
    assert aws_faults.fired(rule) == 1 and instance(other)["SubnetId"] == subnet_a
    provider.close()


@pytest.mark.parametrize("which, expected", [
    ("two-vpcs", "the subnets must be of one VPC"),
    ("unknown", "--subnet: "),
    ("same-zone", "give one subnet per Availability Zone"),
])
def test_bad_subnets_are_refused_before_anything_is_made(tmp_path, moto_ami, which, expected):  # noqa: F811
    _, (subnet_a, _) = own_vpc()
    other_vpc = ec2().create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    other = ec2().create_subnet(VpcId=other_vpc, CidrBlock="10.30.1.0/24", AvailabilityZone="us-east-1c")["Subnet"]["SubnetId"]
    twin = ec2().create_subnet(VpcId=other_vpc, CidrBlock="10.30.2.0/24", AvailabilityZone="us-east-1c")["Subnet"]["SubnetId"]
    subnets = {"two-vpcs": [subnet_a, other], "unknown": ["subnet-0123456789abcdef0"], "same-zone": [other, twin]}[which]
    provider = provider_with(tmp_path, moto_ami, subnets=subnets)
    with pytest.raises(UserError) as refused:
        provider.validate([Job(tag=f"{JOB}0", instance_type="t3.micro", command="true", line=2)])
    assert expected in str(refused.value)
    assert ec2().describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"burst-{JOB}"]}])["SecurityGroups"] == []
    provider.close()


def test_a_machine_without_a_public_address_fails_at_once_saying_why(tmp_path, moto_ami):  # noqa: F811
    _, (subnet_a, _) = own_vpc()
    provider = provider_with(tmp_path, moto_ami, subnets=[subnet_a], public_ip=False)
    (machine_id,) = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    (info,) = provider.wait_ready([machine_id])
    assert not instance(machine_id).get("PublicIpAddress")
    assert provider._target(info).hostname == info.details["private_ip"]  # --no-public-ip: the private one is meant
    provider.options.public_ip = None  # the subnet's default, and it gives none: nothing could reach it
    with pytest.raises(SSHError) as refused:
        provider.transport(info, connect_timeout=600)  # at once, not after 600 s of tries
    assert f"machine {machine_id} has no public IPv4 address" in str(refused.value)
    assert "--public-ip" in str(refused.value) and "ProxyJump" in str(refused.value)
    provider.close()


def test_an_instance_profile_of_ones_own_is_used_and_no_role_is_made(tmp_path, moto_ami):  # noqa: F811
    iam = admin().session().client("iam")
    iam.create_role(RoleName="lab-nodes", AssumeRolePolicyDocument="{}")
    arn = iam.create_instance_profile(InstanceProfileName="lab-nodes")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName="lab-nodes", RoleName="lab-nodes")
    provider = provider_with(tmp_path, moto_ami, instance_profile="lab-nodes")
    (machine_id,) = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    assert instance(machine_id)["IamInstanceProfile"]["Arn"] == arn
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["lab-nodes"]
    provider.close()
    missing = provider_with(tmp_path, moto_ami, instance_profile="no-such-profile")
    with pytest.raises(UserError) as refused:
        missing.prepare()
    assert "--instance-profile no-such-profile: the account has no instance profile of that name" in str(refused.value)
    missing.close()
