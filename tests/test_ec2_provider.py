"""EC2Provider and aws_setup against moto in server mode (real HTTP, standard AWS_ENDPOINT_URL)."""

from __future__ import annotations

import base64
import http.server
import json
import re
import stat
import subprocess
import threading
from pathlib import Path

import boto3
import pytest

from burst.errors import UserError
from burst.node.config import NodeConfig
from burst.node.ending import terminate_self
from burst.providers import ProviderOptions, aws_firewall, aws_setup, make_provider
from burst.providers import ec2 as ec2_module
from burst.providers.base import LaunchSpec
from burst.providers.ec2 import EC2Provider, user_data
from burst.records import Job
from tests.awsfaults import REQUEST_LIMIT_EXCEEDED, aws_faults  # noqa: F401  (fixture)
from tests.motoserver import find_ami, moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory, write_ssh_config  # noqa: F401  (fixture)

JOB = "paj17"


@pytest.fixture
def options(tmp_path: Path) -> ProviderOptions:
    return ProviderOptions(
        region="us-east-1",
        ssh_cidr="127.0.0.1/32",
        key_dir=str(tmp_path / "keys"),
        max_hours=2.5,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "burst-home"




def no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected retry (would sleep {seconds} s)")


def new_provider(image: str, options: ProviderOptions, home: Path, job: str = JOB) -> EC2Provider:
    provider = EC2Provider(job, image, options, home)
    provider.sleep = no_sleep
    provider.poll_seconds = 0.2
    return provider


@pytest.fixture
def provider(moto_ami: str, options: ProviderOptions, home: Path) -> EC2Provider:  # noqa: F811
    provider = new_provider(moto_ami, options, home)
    yield provider
    provider.close()


def count_calls(client, operation: str) -> list[dict]:
    """The API parameters of every ``operation`` call the client makes (botocore retries are not calls)."""
    calls: list[dict] = []
    client.meta.events.register(
        f"before-parameter-build.ec2.{operation}", lambda params, **kwargs: calls.append(dict(params))
    )
    return calls


def jobs_of(*types: str) -> list[Job]:
    return [Job(tag=f"{JOB}{i}", instance_type=t, command="true", line=i + 2) for i, t in enumerate(types)]


def tags_of(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def describe(ids: list[str]) -> dict[str, dict]:
    found = {}
    for reservation in boto3.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]:
        for instance in reservation["Instances"]:
            found[instance["InstanceId"]] = instance
    return found


def bucket_names() -> list[str]:
    return [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]


def group_named(name: str) -> list[dict]:
    return boto3.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])[
        "SecurityGroups"
    ]


# -- construction ------------------------------------------------------------


def test_make_provider_gives_ec2(moto_server, options, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setenv("BURST_HOME", str(tmp_path / "bh"))
    provider = make_provider("ami-12345678", JOB, options)
    assert isinstance(provider, EC2Provider) and provider.name == "ec2"
    assert provider.bucket_url == "s3://paj17"
    assert provider.storage_options() == {"region": "us-east-1", "profile": None}
    # the S3 store is not AWS here (moto): the nodes are told the dispatcher's, as a user's AWS_ENDPOINT_URL_S3 would be
    assert provider.node_options() == {"region": "us-east-1", "s3_endpoint": moto_server}
    assert provider.known_hosts == tmp_path / "bh" / "campaigns" / "paj17.known_hosts"
    options.bucket = "my-results"
    assert make_provider("ami-12345678", JOB, options).bucket_url == "s3://my-results"


def test_region_defaults_from_config_else_us_east_1(moto_server, options, home, monkeypatch):  # noqa: F811
    options.region = None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert EC2Provider(JOB, "ami-1", options, home).node_options()["region"] == "eu-west-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert EC2Provider(JOB, "ami-1", options, home).node_options()["region"] == "us-east-1"


def test_nodes_are_told_the_s3_store_only_when_it_is_not_aws(options, home, monkeypatch):
    """AWS's own S3 endpoint is the nodes' default (their region's): node.json names none; any other store it names."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "none"))
    options.region = "eu-west-1"
    assert EC2Provider(JOB, "ami-1", options, home).node_options() == {"region": "eu-west-1"}
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.org:8333")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://ec2.example.org")  # the S3 variable wins, as boto3 has it
    assert EC2Provider(JOB, "ami-1", options, home).node_options() == {
        "region": "eu-west-1", "s3_endpoint": "https://s3.example.org:8333"}


def test_unknown_profile_is_a_user_error(moto_server, options, home):  # noqa: F811
    options.profile = "no-such-profile"
    with pytest.raises(UserError, match="no-such-profile.*--profile"):
        EC2Provider(JOB, "ami-1", options, home)


# -- prepare -----------------------------------------------------------------


def test_prepare_creates_key_group_role_and_bucket(provider, options, tmp_path):
    provider.prepare()
    res = provider.resources

    pem = tmp_path / "keys" / "paj17.pem"
    assert res.key_file == pem and res.key_name == "burst-paj17"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(pem.parent.stat().st_mode) == 0o700
    assert pem.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(pem)], capture_output=True, text=True, check=True).stdout
    ec2 = boto3.client("ec2")
    pair = ec2.describe_key_pairs(KeyNames=["burst-paj17"], IncludePublicKey=True)["KeyPairs"][0]
    assert public.split()[:2] == pair["PublicKey"].split()[:2]

    (group,) = group_named("burst-paj17")
    assert group["GroupId"] == res.security_group_id
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    assert group["VpcId"] == default_vpc
    (rule,) = group["IpPermissions"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 22, 22)
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["127.0.0.1/32"]
    assert not rule.get("Ipv6Ranges") and not rule.get("UserIdGroupPairs")

    iam = boto3.client("iam")
    role = iam.get_role(RoleName="burst-paj17-node")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    policy = iam.get_role_policy(RoleName="burst-paj17-node", PolicyName=aws_setup.NODE_POLICY_NAME)["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:DeleteObject",
        "ec2:TerminateInstances",
    }
    assert policy == aws_setup.node_policy("paj17", "paj17"), "the one definition, written as it is"
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["ListJobBucket"] == "arn:aws:s3:::paj17"
    assert resources["ReadJobObjects"] == "arn:aws:s3:::paj17/*"
    assert resources["WriteWhatAWorkerWrites"] == [  # not campaign.json, nor the dispatcher's machine records
        "arn:aws:s3:::paj17/state/claims/*", "arn:aws:s3:::paj17/state/ended/*", "arn:aws:s3:::paj17/paj17*/attempts/*",
        "arn:aws:s3:::paj17/state/machines/${aws:userid}/worker.json", "arn:aws:s3:::paj17/machines/${aws:userid}/worker.log",
        "arn:aws:s3:::paj17/machines/${aws:userid}/install.log"]
    assert resources["ForgetReleasedMarkers"] == "arn:aws:s3:::paj17/state/claims/*.released"
    terminate = next(s for s in policy["Statement"] if s["Action"] == "ec2:TerminateInstances")
    assert terminate["Condition"] == {"StringEquals": {"ec2:ResourceTag/job": "paj17"}}
    profile = iam.get_instance_profile(InstanceProfileName="burst-paj17-node")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["burst-paj17-node"]
    assert res.instance_profile_arn == profile["Arn"]

    assert bucket_names() == ["paj17"]
    block = boto3.client("s3").get_public_access_block(Bucket="paj17")["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4


def test_prepare_is_idempotent_and_follows_the_callers_address(provider, options, home, moto_ami):  # noqa: F811
    provider.prepare()
    first = provider.resources
    pem_bytes = first.key_file.read_bytes()

    again = new_provider(moto_ami, options, home)
    again.prepare()
    assert again.resources.security_group_id == first.security_group_id
    assert again.resources.instance_profile_arn == first.instance_profile_arn
    assert first.key_file.read_bytes() == pem_bytes
    assert len(boto3.client("ec2").describe_key_pairs()["KeyPairs"]) == 1
    (group,) = group_named("burst-paj17")
    assert len(group["IpPermissions"]) == 1
    profile = boto3.client("iam").get_instance_profile(InstanceProfileName="burst-paj17-node")["InstanceProfile"]
    assert len(profile["Roles"]) == 1
    assert bucket_names() == ["paj17"]

    options.ssh_cidr = "198.51.100.23"  # the user moved: the old address loses access
    new_provider(moto_ami, options, home).prepare()
    (group,) = group_named("burst-paj17")
    (rule,) = group["IpPermissions"]
    assert [r["CidrIp"] for r in rule["IpRanges"]] == ["198.51.100.23/32"]


def test_key_file_without_key_pair_is_refused_before_anything_is_created(provider, tmp_path):
    pem = tmp_path / "keys" / "paj17.pem"
    pem.parent.mkdir()
    pem.write_text("a key from some other time\n")
    with pytest.raises(UserError) as raised:
        provider.prepare()
    message = str(raised.value)
    assert str(pem) in message and "burst-paj17" in message and "--region" in message and "mv " in message
    assert bucket_names() == [] and group_named("burst-paj17") == []
    assert boto3.client("ec2").describe_key_pairs()["KeyPairs"] == []
    assert pem.read_text() == "a key from some other time\n"


def test_key_pair_without_key_file_is_refused(provider, options, home, moto_ami):  # noqa: F811
    provider.prepare()
    provider.resources.key_file.unlink()
    with pytest.raises(UserError) as raised:
        new_provider(moto_ami, options, home).prepare()
    message = str(raised.value)
    assert "aws ec2 delete-key-pair --key-name burst-paj17 --region us-east-1" in message
    assert "Restore the file" in message and "paj17.pem" in message


def test_key_pair_deleted_in_aws_leaves_a_stale_file(provider, options, home, moto_ami):  # noqa: F811
    provider.prepare()
    boto3.client("ec2").delete_key_pair(KeyName="burst-paj17")
    with pytest.raises(UserError, match="exists but the key pair burst-paj17 is not in us-east-1"):
        new_provider(moto_ami, options, home).prepare()


def test_key_file_of_another_pair_is_refused(provider, options, home, moto_ami):  # noqa: F811
    provider.prepare()
    pem = provider.resources.key_file
    other = boto3.client("ec2").create_key_pair(KeyName="someone-else", KeyType="ed25519")["KeyMaterial"]
    pem.write_text(other)
    with pytest.raises(UserError, match="does not belong to the key pair burst-paj17"):
        new_provider(moto_ami, options, home).prepare()


def test_missing_credentials_are_a_user_error(moto_server, options, home, monkeypatch):  # noqa: F811
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = new_provider("ami-12345678", options, home)
    for step in (provider.prepare, lambda: provider.validate(jobs_of("t3.micro"))):
        with pytest.raises(UserError) as raised:
            step()
        message = str(raised.value)
        assert "No usable AWS credentials" in message
        assert "aws configure" in message and "aws sso login" in message and "--profile" in message
    assert not Path(options.key_dir).exists()


def test_ssh_cidr_is_validated():
    assert aws_setup.validate_cidr("203.0.113.7") == "203.0.113.7/32"
    assert aws_setup.validate_cidr(" 10.1.2.3/16 ") == "10.1.0.0/16"
    assert aws_setup.validate_cidr("2001:db8::1") == "2001:db8::1/128"
    with pytest.raises(UserError, match="whole internet"):
        aws_setup.validate_cidr("0.0.0.0/0")
    with pytest.raises(UserError, match="not an IP address"):
        aws_setup.validate_cidr("my-laptop")
    for wide in ("0.0.0.0/1", "128.0.0.0/1", "10.0.0.0/15", "::/1", "2001:db8::/47"):
        with pytest.raises(UserError, match="every peer opens 0.0.0.0/0, burst does not.*--allow-wide-ssh"):
            aws_setup.validate_cidr(wide)
        assert aws_setup.validate_cidr(wide, allow_wide=True)
    with pytest.raises(UserError, match="whole internet"):
        aws_setup.validate_cidr("::/0", allow_wide=True)


class _CheckIp(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"203.0.113.7\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def checkip_url():
    server = http.server.HTTPServer(("127.0.0.1", 0), _CheckIp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_callers_address_from_checkip_when_no_ssh_cidr(provider, options, checkip_url, monkeypatch):
    monkeypatch.setattr(aws_firewall, "CHECKIP_URL", checkip_url)
    options.ssh_cidr = None
    provider.prepare()
    (group,) = group_named("burst-paj17")
    assert [r["CidrIp"] for r in group["IpPermissions"][0]["IpRanges"]] == ["203.0.113.7/32"]


def test_unknown_callers_address_asks_for_ssh_cidr(provider, options, monkeypatch):
    # Port 9 of 127.0.0.1: nothing listens, the connection is refused at once.
    with pytest.raises(UserError, match="--ssh-cidr"):
        aws_setup.caller_cidr(None, url="http://127.0.0.1:9/", timeout=2)
    monkeypatch.setattr(aws_firewall, "CHECKIP_URL", "http://127.0.0.1:9/")
    options.ssh_cidr = None
    with pytest.raises(UserError, match="--ssh-cidr"):
        provider.prepare()
    assert bucket_names() == []


def test_bucket_outside_us_east_1(moto_server, options, home):  # noqa: F811
    options.region = "eu-west-1"
    options.bucket = "paj17-results"
    provider = new_provider("ami-12345678", options, home)
    provider.prepare()
    s3 = boto3.client("s3", region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket="paj17-results")["LocationConstraint"] == "eu-west-1"
    assert provider.bucket_url == "s3://paj17-results"
    assert provider.storage_options()["region"] == "eu-west-1"


def test_long_job_name_fits_iam(moto_server, options, home):  # noqa: F811
    job = "a" * 63
    provider = new_provider("ami-12345678", options, home, job=job)
    provider.prepare()
    name = provider.resources.instance_profile_name
    assert len(name) <= 64 and name.startswith("burst-aaaa")
    assert name == aws_setup.node_role_name(job) != aws_setup.node_role_name("a" * 62 + "b")


# -- validate ----------------------------------------------------------------


def test_validate_accepts_known_ami_and_types(provider):
    runs = count_calls(provider.ec2, "RunInstances")
    provider.validate(jobs_of("t3.micro", "c5.large", "t3.micro"))
    assert runs == []


def test_validate_rejects_unknown_ami_before_launching(moto_server, options, home):  # noqa: F811
    provider = new_provider("ami-0123456789abcdef0", options, home)
    runs = count_calls(provider.ec2, "RunInstances")
    with pytest.raises(UserError, match="AMI ami-0123456789abcdef0 does not exist in us-east-1.*--region"):
        provider.validate(jobs_of("t3.micro"))
    with pytest.raises(UserError, match="AMI not-an-ami does not exist"):
        new_provider("not-an-ami", options, home).validate(jobs_of("t3.micro"))
    assert runs == [] and bucket_names() == []


def test_validate_rejects_unknown_types_with_their_lines(provider):
    runs = count_calls(provider.ec2, "RunInstances")
    with pytest.raises(UserError) as raised:
        provider.validate(jobs_of("t3.micro", "m9.huge", "t3.mciro", "m9.huge"))
    message = str(raised.value)
    assert "'m9.huge' (lines 3, 5)" in message and "'t3.mciro' (line 4)" in message
    assert "t3.micro'" not in message.replace("'t3.mciro'", "")
    assert runs == [] and bucket_names() == []


def test_validate_rejects_architecture_mismatch(moto_server, options, home):  # noqa: F811
    provider = new_provider(find_ami("arm64"), options, home)
    with pytest.raises(UserError, match=r"built for arm64.*t3.micro \(line 2\)"):
        provider.validate(jobs_of("t3.micro", "t4g.micro"))


# -- launch, wait, list, terminate -------------------------------------------


def test_launch_three_machines_asks_min_count_1_and_again_for_the_rest_tagged_at_launch(provider, moto_ami):
    provider.prepare()
    runs = count_calls(provider.ec2, "RunInstances")
    create_tags = count_calls(provider.ec2, "CreateTags")

    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 3)

    assert len(ids) == 3 == len(set(ids))
    # MinCount 1: EC2 starts what it has (all 3 in one call on AWS); moto starts MinCount, so the rest is asked at once
    assert [(r["MinCount"], r["MaxCount"]) for r in runs] == [(1, 3), (1, 2), (1, 1)]
    assert create_tags == [], "every tag comes with RunInstances: no machine is ever untagged"
    instances = describe(ids)
    assert set(instances) == set(ids)
    for instance_id in ids:
        instance = instances[instance_id]
        assert tags_of(instance) == {"job": JOB, "burst": "1", "Name": JOB}
        assert instance["InstanceType"] == "t3.micro" and instance["ImageId"] == moto_ami
        assert instance["KeyName"] == "burst-paj17"
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [provider.resources.security_group_id]
    volumes = boto3.client("ec2").describe_volumes(Filters=[{"Name": "tag:job", "Values": [JOB]}])["Volumes"]
    assert sorted(a["InstanceId"] for v in volumes for a in v["Attachments"]) == sorted(ids)
    assert all(tags_of(v)["burst"] == "1" for v in volumes)
    # moto checks that the profile exists but associates it with the first instance only
    assert runs[0]["IamInstanceProfile"] == {"Arn": provider.resources.instance_profile_arn}
    assert instances[ids[0]]["IamInstanceProfile"]["Arn"] == provider.resources.instance_profile_arn
    ec2 = boto3.client("ec2")
    for instance_id in ids:
        behaviour = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
        assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"
        script = base64.b64decode(
            ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
        ).decode()
        assert script.startswith("#!/bin/bash\n")
        assert "shutdown -h +150 " in script  # 2.5 hours
    assert provider.launched == ids


def test_user_data_watchdog_minutes():
    assert "shutdown -h +1440 " in user_data("j", 24)
    assert "shutdown -h +1 " in user_data("j", 0.001)
    with pytest.raises(UserError):
        user_data("j", 0)


def test_launch_above_the_per_call_limit_is_chunked(provider, moto_ami, monkeypatch):
    monkeypatch.setattr(ec2_module, "MAX_PER_RUN", 2)
    provider.prepare()
    runs = count_calls(provider.ec2, "RunInstances")
    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 5)
    assert [(r["MinCount"], r["MaxCount"]) for r in runs] == [(1, 2), (1, 1), (1, 2), (1, 1), (1, 1)]  # chunks of 2, 2, 1
    assert len(ids) == 5 == len(set(ids))
    assert all(tags_of(instance)["job"] == JOB for instance in describe(ids).values())
    assert provider.launched == ids
    assert provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 0) == []
    assert len(runs) == 5


def test_launch_prepares_when_not_prepared(provider, moto_ami):
    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    assert provider.resources is not None and len(ids) == 1


def test_wait_ready_describes_all_at_once(provider, moto_ami):
    provider.prepare()
    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 2)
    describes = count_calls(provider.ec2, "DescribeInstances")
    infos = provider.wait_ready(ids)
    assert [info.id for info in infos] == ids
    assert len(describes) <= 3  # waiter polls (all ids each) and one final describe
    assert all(set(call.get("InstanceIds", [])) == set(ids) for call in describes)
    for info in infos:
        assert info.state == "running" and info.job == JOB and info.instance_type == "t3.micro"
        assert info.host and info.host == info.details["public_ip"]
        assert info.details["image_id"] == moto_ami
        assert info.details["lifecycle"] == "on-demand"
        assert info.details["availability_zone"].startswith("us-east-1")
        assert info.details["public_dns"] and info.details["private_ip"] and info.details["launch_time"]
    assert provider.wait_ready([]) == []


def test_list_by_tags_and_terminate(provider, options, home, moto_ami):  # noqa: F811
    provider.prepare()
    ours = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 2)
    ours += provider.launch(LaunchSpec(JOB, "c5.large", moto_ami), 1)
    other = new_provider(moto_ami, options, home, job="other1")
    other.prepare()
    theirs = other.launch(LaunchSpec("other1", "t3.micro", moto_ami), 1)

    listed = provider.list({"job": JOB})
    assert sorted(info.id for info in listed) == sorted(ours)
    # by instance type, then id: c5.large first
    assert [(info.instance_type, info.id) for info in listed] == [("c5.large", ours[2])] + sorted(
        ("t3.micro", i) for i in ours[:2])
    assert all(info.job == JOB and info.state in ("pending", "running") for info in listed)
    # every given tag must match
    assert sorted(info.id for info in provider.list({"job": JOB, "Name": JOB})) == sorted(ours)
    assert provider.list({"job": JOB, "Name": "other1"}) == []

    terminations = count_calls(provider.ec2, "TerminateInstances")
    provider.terminate([])
    assert terminations == []
    provider.terminate(ours[:2])
    assert len(terminations) == 1
    assert [info.id for info in provider.list({"job": JOB})] == [ours[2]]
    # ids already gone (or never there) do not stop the others
    provider.terminate([ours[0], "i-0123456789abcdef0", ours[2]])
    assert provider.list({"job": JOB}) == []
    assert [info.id for info in provider.list({"job": "other1"})] == theirs
    assert provider.launched == []


def test_terminate_in_batches(provider, moto_ami, monkeypatch):
    monkeypatch.setattr(ec2_module, "TERMINATE_BATCH", 2)
    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 3)
    terminations = count_calls(provider.ec2, "TerminateInstances")
    provider.terminate(ids)
    assert [len(call["InstanceIds"]) for call in terminations] == [2, 1]
    assert provider.list({"job": JOB}) == []


def test_terminate_self_ends_the_node_as_the_burst_worker(aws_faults, backoffs, provider, moto_ami):  # noqa: F811
    """The worker's own TerminateInstances carries "burst-worker" in its User-Agent and is retried."""
    (instance_id,) = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    (other_id,) = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    # Only a request whose User-Agent names the worker matches; it is throttled once.
    throttled = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("TerminateInstances", times=1, user_agent="burst-worker"))
    config = NodeConfig(
        provider="ec2",
        job=JOB,
        instance_id=instance_id,
        instance_type="t3.micro",
        bucket_url=provider.bucket_url,
        results=[],
        provider_options=provider.node_options(),
    )
    aws_faults.reset_log()
    terminate_self(config)
    assert aws_faults.fired(throttled) == 1, "the worker's call did not say it is the burst-worker"
    assert aws_faults.count("TerminateInstances", service="ec2") == 2 and len(backoffs) == 1
    state = describe([instance_id])[instance_id]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    assert [info.id for info in provider.list({"job": JOB})] == [other_id], "it ends its own machine only"
    # the dispatcher's client is no burst-worker: the rule (were it left) would not match it
    again = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("TerminateInstances", user_agent="burst-worker"))
    provider.terminate([other_id])
    assert aws_faults.fired(again) == 0 and aws_faults.count("TerminateInstances", service="ec2") == 3
    assert provider.list({"job": JOB}) == []


# -- transport and teardown --------------------------------------------------


def test_transport_logs_in_with_the_job_key(provider, options, moto_ami, home, tmp_path, sshd_factory):  # noqa: F811
    """The key moto made (as AWS would) opens a real sshd; host keys go to the campaign's file."""
    provider.prepare()
    (instance_id,) = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    (info,) = provider.wait_ready([instance_id])
    server = sshd_factory()
    public = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(provider.key_file)], capture_output=True, text=True, check=True
    ).stdout
    server.authorize(public)
    # The instance id leads to the local sshd, as an SSM-style ssh config would; no IdentityFile:
    # the job's key file must be the one used.
    options.ssh_config = str(write_ssh_config(tmp_path / "ssh_config", {"i-*": {"HostName": server.host, "Port": server.port, "User": server.user}}))
    transport = provider.transport(info)
    try:
        assert transport.run("echo hello").out.strip() == "hello"
        assert instance_id in transport.where
    finally:
        transport.close()
    known = home / "campaigns" / "paj17.known_hosts"
    assert known.read_text().splitlines() == [f"{instance_id} {server.host_public_key}"]  # by machine, not address


def test_teardown_removes_all_but_the_bucket(provider, moto_ami, home):
    provider.prepare()
    ids = provider.launch(LaunchSpec(JOB, "t3.micro", moto_ami), 1)
    provider.terminate(ids)
    home.joinpath("campaigns").mkdir(parents=True)
    provider.known_hosts.write_text("")
    key_file = provider.key_file

    removed = provider.teardown()

    assert len(removed) == 6, removed
    assert group_named("burst-paj17") == []
    assert boto3.client("ec2").describe_key_pairs()["KeyPairs"] == []
    iam = boto3.client("iam")
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    assert iam.list_roles()["Roles"] == []
    assert not key_file.exists() and not provider.known_hosts.exists()
    assert bucket_names() == ["paj17"]
    assert provider.teardown() == []  # nothing left: fine
    assert aws_setup.teardown(JOB, provider.options) == []


def test_nothing_here_reads_instance_metadata_or_shuts_down():
    """The link-local metadata address is only the spot watch's default; the only shutdown is in user-data."""
    package = Path(ec2_module.__file__).parents[1]
    sources = {path.relative_to(package).as_posix(): path.read_text() for path in package.rglob("*.py")}
    metadata = {name for name, text in sources.items() if "169.254.169.254" in text}
    assert metadata == {"node/spot_notice.py"}
    assert [line.strip() for line in sources["node/spot_notice.py"].splitlines() if "169.254.169.254" in line] == [
        'DEFAULT_ENDPOINT = "http://169.254.169.254/"']
    shutdowns = [(name, line.strip()) for name, text in sources.items() for line in text.splitlines()
                 if re.search(r"\b(shutdown|poweroff|reboot|halt)\s+(-|now|\+)|[\"'](shutdown|poweroff|reboot|halt)[\"']", line)]
    assert [(name, line[:21]) for name, line in shutdowns] == [("providers/ec2_userdata.py", 'f"shutdown -h +{minut')]
