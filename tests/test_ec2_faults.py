"""AWS faults that moto cannot produce, answered by a loopback proxy in front of it: during a campaign, at set-up, at launch.

The workers on the sshd "nodes" reach AWS through the same proxy (``SetEnv``), so
a rule can fail their calls alone (by their ``burst-worker`` user agent).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from burst.cli.console import run_entry
from burst.cli.run import main as dispatcher_main
from burst.errors import BurstError, UserError
from burst.providers import ProviderOptions
from burst.providers.base import LaunchSpec
from burst.providers.ec2 import EC2Provider
from burst.providers.ec2_checks import threads_notes
from burst.providers.ec2_launch import CAPACITY_TRIES, PROFILE_WAIT
from burst.records import Job
from tests.awsfaults import (  # noqa: F401  (aws_faults: fixture)
    INSUFFICIENT_INSTANCE_CAPACITY,
    UNSUPPORTED_IN_ZONE,
    INTERNAL_ERROR,
    REQUEST_LIMIT_EXCEEDED,
    SERVICE_UNAVAILABLE,
    SLOW_DOWN,
    THROTTLING,
    VCPU_LIMIT_EXCEEDED,
    Fault,
    FaultRule,
    aws_faults,
)
from tests.conftest import REPO, run_script, status_report, statuses, wait_until, write_campaign
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
        return [DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait", "--install", str(install), *nodes.args()], nodes
    made: list = []
    yield make
    for nodes, job in made:  # what terminating them would do on EC2: no process outlives its test
        nodes.power_off_all()


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


REQUEST_EXPIRED = Fault(400, "RequestExpired", "Request has expired.", "ec2")  # EC2's answer to expired credentials


def a_row_runs(job: str) -> bool:
    result = run_script("-m", "burst", "status", job, "--json")
    return result.stdout.startswith("{") and any(row["state"] == "running" for row in json.loads(result.stdout)["rows"])


def test_credentials_that_expire_during_wait_stop_at_once_and_the_same_command_resumes(campaign, aws_faults):
    args, nodes = campaign("expiry", rows=3, command="mkdir -p results; echo $TAG > results/r.txt; sleep 4")
    dispatcher = subprocess.Popen([sys.executable, *args, "--machines", "1", "--heartbeat", "2"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: a_row_runs("expiry"), timeout=180, what="a row running")
        rule = aws_faults.add(REQUEST_EXPIRED.on("DescribeInstances"))
        out, err = dispatcher.communicate(timeout=120)  # at once: not after 600 s of failing rounds
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 1, out + err
    assert "Your AWS credentials have expired" in err and "aws sso login" in err and "RequestExpired" in err
    assert "run the same command again to resume" in err and "round failed" not in out
    assert aws_faults.fired(rule) == 1, "never retried: no retry can pass"
    aws_faults.remove(rule)
    (machine,) = instances_of("expiry")
    assert machine["State"]["Name"] == "running", "the machine was left alone"
    result = run_script(*args, "--machines", "1", "--heartbeat", "2")  # renewed: the same command goes on
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s["state"] for s in statuses("expiry").values()} == {"done"}
    assert [s["attempt"] for s in statuses("expiry").values()] == [1, 1, 1], "no row ran twice"


def test_s3_errors_mid_run_lose_nothing(campaign, aws_faults):
    args, nodes = campaign("flaky", rows=4)
    aws_faults.add(SLOW_DOWN.on("PutObject", times=3))  # in a row: backoffs of up to 1, 2, 4 s
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


# -- faults before and during the launch, in one process: botocore's backoff is not waited (``backoffs``) ----------


BUCKET_TAKEN = Fault(409, "BucketAlreadyExists", "The requested bucket name is not available.", "s3")
PROFILE_NOT_YET = Fault(400, "InvalidParameterValue", "Value (burst-prof-node) for parameter iamInstanceProfile.name "
                        "is invalid. Invalid IAM Instance Profile name", "ec2")


@pytest.fixture
def launcher(tmp_path, moto_ami, burst_home):  # noqa: F811
    """An EC2 provider on moto whose waits are recorded, not slept, and whose messages are kept."""
    made = []

    def make(job: str = "prof") -> EC2Provider:
        provider = EC2Provider(job, moto_ami, ProviderOptions(ssh_cidr="127.0.0.1/32", key_dir=str(tmp_path / "keys")), burst_home)
        provider.said, provider.slept = [], []
        provider.report = provider.said.append
        provider.sleep = provider.slept.append
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def states(ids: list[str]) -> set[str]:
    import boto3

    found = boto3.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return {i["State"]["Name"] for r in found for i in r["Instances"]}


def test_waiting_for_capacity_says_so_every_30_s_and_then_launches(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances"))

    def sleep(seconds: float) -> None:  # the 4th try finds capacity: after waits of 15, 30 and 60 s
        provider.slept.append(seconds)
        if sum(provider.slept) >= 105:
            aws_faults.remove(rule)

    provider.sleep = sleep
    ids = provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 4)
    assert len(ids) == 4 and states(ids) == {"running"}
    assert provider.slept == [15, 30, 30, 30]  # never more than 30 s without a word
    zones = "InsufficientInstanceCapacity in 6 zones"  # every default subnet of us-east-1 was asked each time
    assert provider.said == [
        f"waiting for capacity for 4 × c5.large (try 2 of {CAPACITY_TRIES}) in us-east-1: {zones}; next try in 15 s",
        f"waiting for capacity for 4 × c5.large (try 3 of {CAPACITY_TRIES}) in us-east-1: {zones}; next try in 30 s",
        f"waiting for capacity for 4 × c5.large (try 4 of {CAPACITY_TRIES}) in us-east-1: {zones}; next try in 60 s",
        f"waiting for capacity for 4 × c5.large (try 4 of {CAPACITY_TRIES}) in us-east-1: {zones}; next try in 30 s",
    ]


def zones_of(ids: list[str]) -> list[str]:
    import boto3

    found = boto3.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return sorted(i["Placement"]["AvailabilityZone"] for r in found for i in r["Instances"])


def test_a_zone_that_does_not_offer_the_type_is_skipped_for_the_next_one(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(UNSUPPORTED_IN_ZONE.on("RunInstances", times=1))
    ids = provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 3)
    assert aws_faults.fired(rule) == 1
    assert len(ids) == 3 and states(ids) == {"running"}
    assert zones_of(ids) == ["us-east-1b"] * 3
    assert provider.slept == [] and provider.said == []


def run_calls(aws_faults) -> list[tuple[str, str, str]]:
    """``(subnet, MinCount, MaxCount)`` of each RunInstances the proxy saw, botocore's retries of one call once."""
    calls = {p["ClientToken"]: (p.get("SubnetId", ""), p["MinCount"], p["MaxCount"]) for p in aws_faults.params("RunInstances")}
    return list(calls.values())


def test_a_zone_that_runs_short_after_a_partial_fill_leads_to_the_next_zone(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    """us-east-1a starts one machine, then has no more (HTTP 500: botocore's 10 retries first); us-east-1b the rest."""
    provider = launcher()
    provider.prepare()
    first, second = [subnet.id for subnet in provider.subnets()[:2]]
    rule = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances", param=("SubnetId", first), after=1))
    ids = provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 3)
    assert aws_faults.fired(rule) == 11
    assert len(ids) == 3 and states(ids) == {"running"}, "the machines asked for all run"
    assert zones_of(ids) == ["us-east-1a", "us-east-1b", "us-east-1b"]
    # MinCount 1 every time, MaxCount what is still missing (moto starts MinCount: one per call)
    assert run_calls(aws_faults) == [(first, "1", "3"), (first, "1", "2"), (second, "1", "2"), (second, "1", "1")]
    assert provider.said == [] and provider.slept == []


def test_every_zone_short_after_a_partial_fill_keeps_what_started_for_the_rest_next_round(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances", after=1))
    ids = provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 3)
    asked = [subnet for subnet, _, _ in run_calls(aws_faults)]
    assert asked[1:] == [subnet.id for subnet in provider.subnets()], "every zone was asked for the rest, in order"
    assert aws_faults.fired(rule) >= 6
    assert len(ids) == 1 and states(ids) == {"running"} and zones_of(ids) == ["us-east-1a"]
    assert provider.said == ["EC2 started 1 of 3 × c5.large (InsufficientInstanceCapacity in 6 zones): the rest next round"]
    assert provider.slept == [], "no wait: the pool asks for the rest next round"
    assert {call[1] for call in run_calls(aws_faults)} == {"1"}


def test_a_zone_with_no_capacity_at_all_is_skipped_for_the_next_one(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances", times=11))  # the call and botocore's retries
    ids = provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 3)
    assert aws_faults.fired(rule) == 11
    assert len(ids) == 3 and zones_of(ids) == ["us-east-1b"] * 3
    assert provider.slept == [] and provider.said == []


def test_a_quota_error_after_a_partial_fill_keeps_what_started_and_ends_nothing(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(VCPU_LIMIT_EXCEEDED.on("RunInstances", after=1, times=1))
    ids = provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 3)
    assert aws_faults.fired(rule) == 1 and len(ids) == 1 and states(ids) == {"running"}
    (said,) = provider.said
    assert said.startswith("EC2 started 1 of 3 × c5.large; the rest were refused: AWS refused to start 2 × c5.large")
    assert "VcpuLimitExceeded" in said and "Service Quotas" in said
    assert aws_faults.count("TerminateInstances") == 0 and provider.launched == ids


def test_no_capacity_at_last_says_what_runs_and_how_to_go_on(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    (running,) = provider.launch(LaunchSpec("prof", "t3.micro", moto_ami), 1)
    aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances"))
    with pytest.raises(BurstError) as raised:
        provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 4)
    message = str(raised.value)
    assert "AWS has no capacity for 4 × c5.large in us-east-1 now" in message and f"{CAPACITY_TRIES} tries" in message
    assert "none of these 4 was started" in message
    assert "1 machine(s) of the job keep running" in message and "python -m burst terminate prof" in message
    assert "Run the same command later" in message
    assert len(provider.said) == len(provider.slept) and len(provider.said) >= CAPACITY_TRIES - 1
    assert states([running]) == {"running"}, "what runs is said to run, and does"


def test_a_quota_error_ends_no_machine_and_says_what_runs(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    first = provider.launch(LaunchSpec("prof", "t3.micro", moto_ami), 2)
    aws_faults.add(VCPU_LIMIT_EXCEEDED.on("RunInstances", times=1))
    with pytest.raises(UserError) as raised:
        provider.launch(LaunchSpec("prof", "c5.large", moto_ami), 4)
    message = str(raised.value)
    assert "VcpuLimitExceeded" in message and "Service Quotas" in message
    assert "2 machine(s) of the job keep running" in message and "They go on with their rows." in message
    assert "run the same command again" in message
    assert states(first) == {"running"}, "machines running rows are never ended by a quota error"


def test_a_new_instance_profile_is_waited_for_up_to_3_minutes_saying_so(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(PROFILE_NOT_YET.on("RunInstances", times=6))
    (instance_id,) = provider.launch(LaunchSpec("prof", "t3.micro", moto_ami), 1)
    assert aws_faults.fired(rule) == 6 and provider.slept == [2, 4, 8, 15, 15, 15]
    assert provider.said == ["waiting for the new instance profile burst-prof-node to reach EC2 (44 s of up to 180 s)"]
    assert states([instance_id]) == {"running"}


def test_an_instance_profile_never_usable_is_one_message_after_3_minutes(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    aws_faults.add(PROFILE_NOT_YET.on("RunInstances"))
    with pytest.raises(BurstError) as raised:
        provider.launch(LaunchSpec("prof", "t3.micro", moto_ami), 1)
    assert sum(provider.slept) >= PROFILE_WAIT and max(provider.slept) <= 15
    assert "EC2 still refuses the instance profile burst-prof-node after" in str(raised.value)
    assert "Run the same command again in a few minutes" in str(raised.value)
    assert len(provider.said) == int(sum(provider.slept) // 30)  # a word every 30 s of waiting
    assert provider.list({"job": "prof"}) == []


def dispatch(tmp_path, moto_ami, job: str, capsys) -> tuple[int, str]:  # noqa: F811
    jobfile, install = write_campaign(tmp_path / job, [("t3.micro", "true")])
    code = run_entry(dispatcher_main, [moto_ami, job, str(jobfile), "-d", "--no-calibrate", "--install", str(install),
                                       "--ssh-cidr", "203.0.113.7/32", "--machines", "1", "--yes"])
    return code, capsys.readouterr().err


def test_bucket_already_exists_is_a_clear_refusal_before_anything_is_made(aws_faults, tmp_path, moto_ami, capsys, backoffs, burst_home):  # noqa: F811
    aws_faults.add(BUCKET_TAKEN.on("CreateBucket"))
    code, err = dispatch(tmp_path, moto_ami, "taken", capsys)
    assert code == 2 and "The bucket name 'taken' is taken by another AWS account" in err and "--bucket" in err
    assert "Traceback" not in err
    import boto3

    assert boto3.client("ec2").describe_key_pairs()["KeyPairs"] == []
    assert boto3.client("iam").list_roles()["Roles"] == []
    assert not (burst_home / "campaigns" / "taken.lock").exists() and not (burst_home / "campaigns" / "taken.json").exists()


SET_UP_CALLS = [  # every AWS call of the dispatcher before its first launch, answered with its service's throttling/5xx
    ("sts", "GetCallerIdentity", Fault(400, "Throttling", "Rate exceeded", "sts")),
    ("ec2", "DescribeImages", REQUEST_LIMIT_EXCEEDED), ("ec2", "DescribeInstanceTypes", REQUEST_LIMIT_EXCEEDED),
    ("ec2", "DescribeKeyPairs", REQUEST_LIMIT_EXCEEDED), ("ec2", "DescribeVpcs", REQUEST_LIMIT_EXCEEDED),
    ("ec2", "CreateKeyPair", REQUEST_LIMIT_EXCEEDED), ("ec2", "CreateSecurityGroup", REQUEST_LIMIT_EXCEEDED),
    ("ec2", "AuthorizeSecurityGroupIngress", REQUEST_LIMIT_EXCEEDED),
    ("iam", "GetRole", THROTTLING), ("iam", "CreateRole", THROTTLING), ("iam", "PutRolePolicy", THROTTLING),
    ("iam", "CreateInstanceProfile", THROTTLING), ("iam", "AddRoleToInstanceProfile", THROTTLING),
    ("s3", "CreateBucket", SLOW_DOWN), ("s3", "PutBucketTagging", INTERNAL_ERROR),
    ("s3", "PutObject", INTERNAL_ERROR), ("s3", "PutObject", SERVICE_UNAVAILABLE),
]


@pytest.mark.parametrize("service,action,fault", SET_UP_CALLS, ids=[f"{a}-{f.code}" for _, a, f in SET_UP_CALLS])
def test_an_aws_call_that_keeps_failing_is_one_true_message(aws_faults, tmp_path, moto_ami, capsys, backoffs, burst_home,  # noqa: F811
                                                            service, action, fault):
    rule = aws_faults.add(FaultRule(action=action, status=fault.status, code=fault.code, message=fault.message, service=service))
    code, err = dispatch(tmp_path, moto_ami, "flaky", capsys)
    assert aws_faults.fired(rule) > 1, "botocore retried it"
    assert code == 1, err
    assert f"AWS answered {action} with {fault.code} after {aws_faults.fired(rule)} attempts" in err
    assert "No machine of the job is running." in err and "Run the same command again to resume" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3
    assert not (burst_home / "campaigns" / "flaky.lock").exists()
    aws_faults.remove(rule)  # and it resumes: the same command sets everything up
    assert dispatch(tmp_path, moto_ami, "flaky", capsys)[0] == 0


def test_describe_instances_throttled_12_times_is_a_round_retried(aws_faults, tmp_path, moto_ami, capsys, backoffs):  # noqa: F811
    rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeInstances", times=12))
    code, err = dispatch(tmp_path, moto_ami, "busy", capsys)
    assert code == 0 and aws_faults.fired(rule) == 12
    assert "Traceback" not in err


def test_status_while_ec2_keeps_throttling_is_one_message(aws_faults, tmp_path, moto_ami, capsys, backoffs):  # noqa: F811
    from burst.cli.ops import main as ops_main

    assert dispatch(tmp_path, moto_ami, "seen", capsys)[0] == 0
    aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeInstances"))
    code = run_entry(ops_main, ["status", "seen"])
    err = capsys.readouterr().err
    assert code == 1 and "AWS answered DescribeInstances with RequestLimitExceeded after" in err
    assert "run the command again" in err and "Traceback" not in err


def test_run_instances_throttled_to_the_end_says_what_runs_and_how_to_resume(aws_faults, launcher, moto_ami, backoffs):  # noqa: F811
    provider = launcher()
    rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("RunInstances"))
    with pytest.raises(BurstError) as raised:
        provider.launch(LaunchSpec("prof", "t3.micro", moto_ami), 2)
    assert aws_faults.fired(rule) > 1, "botocore retried it"
    message = str(raised.value)
    assert "RunInstances of 2 × t3.micro in us-east-1 failed: RequestLimitExceeded" in message
    assert "No machine of the job is running." in message and "Run the same command again to resume." in message


def test_the_bucket_listing_throttled_12_times_is_a_round_retried(aws_faults, tmp_path, moto_ami, capsys, backoffs):  # noqa: F811
    rule = aws_faults.add(SLOW_DOWN.on("ListObjectsV2", times=12))
    code, err = dispatch(tmp_path, moto_ami, "listing", capsys)
    assert code == 0 and aws_faults.fired(rule) == 12
    assert "Traceback" not in err


def test_threads_per_core_1_launches_every_core_with_one_thread(aws_faults, launcher, moto_ami):  # noqa: F811
    """CpuOptions in the RunInstances request (moto ignores it; the proxy sees what AWS would get)."""
    provider = launcher("tpc")
    provider.options.threads_per_core = 1
    jobs = [Job(tag=f"tpc{n}", instance_type=kind, command="true", line=n + 2)
            for n, kind in enumerate(("c5.2xlarge", "m6i.4xlarge", "c6g.2xlarge"))]
    provider.validate(jobs[:2])  # the x86 AMI: no Graviton type in the same job file
    assert provider.launch(LaunchSpec("tpc", "c5.2xlarge", moto_ami), 2)
    assert provider.launch(LaunchSpec("tpc", "m6i.4xlarge", moto_ami), 1)
    assert provider.launch(LaunchSpec("tpc", "c6g.2xlarge", moto_ami), 1)  # one thread per core already
    sent = [{k: v for k, v in p.items() if k.startswith("CpuOptions")} | {"type": p["InstanceType"]}
            for p in aws_faults.params("RunInstances")]
    assert sent == [  # moto starts MinCount (1): the second c5.2xlarge is a call of its own
        {"CpuOptions.CoreCount": "4", "CpuOptions.ThreadsPerCore": "1", "type": "c5.2xlarge"},
        {"CpuOptions.CoreCount": "4", "CpuOptions.ThreadsPerCore": "1", "type": "c5.2xlarge"},
        {"CpuOptions.CoreCount": "8", "CpuOptions.ThreadsPerCore": "1", "type": "m6i.4xlarge"},
        {"type": "c6g.2xlarge"},
    ]
    assert threads_notes(provider.cpu_info, ["c5.2xlarge", "c6g.2xlarge"], 1) == [
        "--threads-per-core 1: c5.2xlarge runs its 4 cores with 1 thread each (4 of its 8 vCPUs; CpuOptions at launch), "
        "at the price of the whole instance",
        "--threads-per-core 1: c6g.2xlarge runs 1 thread per core already",
    ]


def test_without_threads_per_core_no_cpu_options_are_sent(aws_faults, launcher, moto_ami):  # noqa: F811
    provider = launcher("tpd")
    assert provider.launch(LaunchSpec("tpd", "c5.2xlarge", moto_ami), 1)
    assert [k for p in aws_faults.params("RunInstances") for k in p if k.startswith("CpuOptions")] == []
