"""Every bad input of the dispatcher: exit status 2, one message naming the value and the fix, nothing created.

Nothing means: no file under ``$BURST_HOME`` (not even the job's lock), no key
file, and no key pair, security group, role, bucket or instance in moto. The EC2
cases run against moto with a real AMI, so a missing check would create things.
"""

from __future__ import annotations

import boto3
import pytest

from tests.conftest import REPO, run_script
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)

GOOD = "instance_type,command\nt3.micro,echo a\n"

# case: (job file text, AMI ('{ami}': moto's), job name, extra arguments, what the message must say)
CASES = {
    "NUL byte in a command": ("instance_type,command\nt3.micro,echo a\x00b\n", "{ami}", "demo", [], "line 2: the command holds a NUL byte"),
    "text after a closing quote": ('instance_type,command\nt3.micro,"echo a"b\n', "{ami}", "demo", [], "line 2: ',' expected after '\"'"),
    "job name with a trailing newline": (GOOD, "{ami}", "abc\n", [], "job name 'abc\\n' cannot be a bucket name"),
    "empty --results": (GOOD, "{ami}", "demo", ["--results", ""], "--results '' is empty"),
    "negative --install-timeout": (GOOD, "{ami}", "demo", ["--install-timeout", "-5"], "--install-timeout -5.0 is not a number of seconds more than 0"),
    "--node-root above the home": (GOOD, "{ami}", "demo", ["--node-root", "../../.."], "--node-root '../../..' must be a folder inside the node user's home"),
    "absolute --node-root": (GOOD, "{ami}", "demo", ["--node-root", "/abs"], "--node-root '/abs' must be a folder inside"),
    "absolute --node-root, local": (GOOD, "local", "demo", ["--node-root", "/abs"], "--node-root '/abs' must be a folder inside"),
    "--max-hours nan": (GOOD, "{ami}", "demo", ["--max-hours", "nan"], "--max-hours nan is not a number of hours more than 0"),
    "--max-hours inf": (GOOD, "{ami}", "demo", ["--max-hours", "inf"], "--max-hours inf is not a number of hours"),
    "--heartbeat nan": (GOOD, "{ami}", "demo", ["--heartbeat", "nan"], "'nan' is not a number of seconds above 0"),
    "--machines 0": (GOOD, "{ami}", "demo", ["--machines", "0"], "'0' is not a whole number of at least 1"),
    "unknown --region": (GOOD, "{ami}", "demo", ["--region", "nowhere-1"], "--region 'nowhere-1' is not an AWS region"),
    "AMI LOCAL": (GOOD, "LOCAL", "demo", [], "AMI 'LOCAL' is neither 'local' (run on this machine) nor an EC2 image id such as ami-0abc1234def567890 ('ami-' followed by hex digits) (did you mean 'local'?)"),
    "AMI empty": (GOOD, "", "demo", [], "AMI '' is neither 'local'"),
    "AMI ubuntu-22.04": (GOOD, "ubuntu-22.04", "demo", [], "AMI 'ubuntu-22.04' is neither 'local'"),
    "AMI that does not exist": (GOOD, "ami-0123456789abcdef0", "demo", [], "The AMI ami-0123456789abcdef0 does not exist in us-east-1"),
    "--ssh-cidr 0.0.0.0/1": (GOOD, "{ami}", "demo", ["--ssh-cidr", "0.0.0.0/1"], "every peer opens 0.0.0.0/0, burst does not"),
    "--ssh-cidr 128.0.0.0/1": (GOOD, "{ami}", "demo", ["--ssh-cidr", "128.0.0.0/1"], "--ssh-cidr 128.0.0.0/1 opens SSH to 2,147,483,648 addresses"),
    "--ssh-cidr ::/1": (GOOD, "{ami}", "demo", ["--ssh-cidr", "::/1"], "or a range of at most /48; if you really mean this range, add --allow-wide-ssh"),
    "--ssh-cidr /0 even with --allow-wide-ssh": (GOOD, "{ami}", "demo", ["--ssh-cidr", "0.0.0.0/0", "--allow-wide-ssh"], "would open SSH to the whole internet"),
    "--env of an AWS credential": (GOOD, "{ami}", "demo", ["--env", "AWS_SECRET_ACCESS_KEY"], "burst never passes AWS_* variables to machines"),
    "--env of a burst variable": (GOOD, "local", "demo", ["--env", "TAG=x"], "burst sets TAG on every machine itself"),
    "--env NAME not set": (GOOD, "local", "demo", ["--env", "SURELY_UNSET_VARIABLE_X"], "SURELY_UNSET_VARIABLE_X is not set here"),
    "--env with a bad name": (GOOD, "local", "demo", ["--env", "1X=2"], "'1X' is not a variable name"),
    "a command too long for the OS": ("instance_type,command\nt3.micro,echo " + "x" * 140_000 + "\n", "local", "demo", [],
                                      "line 2: the command is 140,005 bytes; Linux runs a command (`bash -c COMMAND`) of at most 131,071 bytes"),
    "--slots 100000": (GOOD, "local", "demo", ["--slots", "100000"], "--slots 100000 is not a whole number at least 1 and at most 448"),
    "--slots above the type's cores": (GOOD, "{ami}", "demo", ["--slots", "4"], "--slots 4 on t3.micro: a machine has 1 physical core"),
    "--heartbeat 1e-9": (GOOD, "local", "demo", ["--heartbeat", "1e-9"], "--heartbeat 1e-09 is not a number of seconds at least 1"),
}


def aws_resources() -> dict[str, list]:
    """Everything a dispatch could have made in moto."""
    ec2 = boto3.client("ec2")
    return {
        "key pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "security groups": [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"],
        "instances": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]],
        "buckets": [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]],
        "roles": [r["RoleName"] for r in boto3.client("iam").list_roles()["Roles"]],
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_input_exits_2_with_one_message_and_creates_nothing(case, tmp_path, burst_home, isolated_home, moto_ami):  # noqa: F811
    text, ami, job, extra, expected = CASES[case]
    jobfile = tmp_path / "jobs.csv"
    jobfile.write_bytes(text.encode())
    (tmp_path / "INSTALL.sh").write_text("#!/bin/bash\n")
    argv = [ami.format(ami=moto_ami), job, str(jobfile), "-c", "-d", "--install", str(tmp_path / "INSTALL.sh")]
    if "--ssh-cidr" not in extra:
        argv += ["--ssh-cidr", "203.0.113.7/32"]  # never ask checkip
    result = run_script(str(REPO / "dispatcher.py"), *argv, *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "No usable AWS credentials" not in result.stderr, "an input mistake is not a credentials problem"
    assert not burst_home.exists() or not any(burst_home.rglob("*")), sorted(burst_home.rglob("*"))
    assert not (isolated_home / ".ssh").exists() or not any((isolated_home / ".ssh").iterdir())
    assert aws_resources() == {"key pairs": [], "security groups": [], "instances": [], "buckets": [], "roles": []}


def test_a_wide_ssh_range_is_accepted_when_meant(tmp_path):
    from burst.cli.validate import check_ssh_cidr

    check_ssh_cidr("10.0.0.0/8", allow_wide=True)
    check_ssh_cidr("10.1.0.0/16", allow_wide=False)
    check_ssh_cidr("2001:db8::/48", allow_wide=False)


def test_env_takes_a_value_or_the_dispatchers_own():
    from burst.cli.validate import parse_env

    assert parse_env(["FOO=bar=baz", "HOME_DIR", "EMPTY="], {"HOME_DIR": "/x"}) == {"FOO": "bar=baz", "HOME_DIR": "/x", "EMPTY": ""}


def _symlink_loop(tmp_path):
    (tmp_path / "loop2.csv").symlink_to(tmp_path / "loop1.csv")
    (tmp_path / "loop1.csv").symlink_to(tmp_path / "loop2.csv")
    return tmp_path / "loop1.csv"


def _fifo_in_the_code_folder(tmp_path):
    import os

    (tmp_path / "jobs").mkdir()
    os.mkfifo(tmp_path / "jobs" / "pipe")
    return None


# case: (make it (returns the job file, or None for jobs.csv), what the message must say)
MADE = {
    "a job file that is a symlink loop": (_symlink_loop, "loop1.csv is a symlink loop (it points at itself through its links)"),
    "a FIFO in the code folder": (_fifo_in_the_code_folder, "jobs/pipe in the code folder is a FIFO, not a file"),
    "results = [] in burst.toml": (lambda t: (t / "burst.toml").write_text("results = []\n") and None,
                                   "--results is an empty list (results = [] in a burst.toml?)"),
    "heartbeat = \"30\" in burst.toml": (lambda t: (t / "burst.toml").write_text('heartbeat = "30"\n') and None,
                                        "burst.toml: heartbeat = '30' is not valid: write the number without quotes"),
}


@pytest.mark.parametrize("case", sorted(MADE))
def test_bad_files_exit_2_with_one_message_and_create_nothing(case, tmp_path, burst_home):
    make, expected = MADE[case]
    jobfile = make(tmp_path) or tmp_path / "jobs.csv"
    if not jobfile.is_symlink():
        jobfile.write_text(GOOD)
    result = run_script(str(REPO / "dispatcher.py"), "local", "demo", str(jobfile), "-c", "-d", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not burst_home.exists() or not any(burst_home.rglob("*")), sorted(burst_home.rglob("*"))


def test_download_into_an_existing_file_is_one_message(tmp_path, burst_home):
    target = tmp_path / "results.csv"
    target.write_text("mine\n")
    result = run_script("-m", "burst", "download", "demo", str(target))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"{target} exists and is not a folder" in result.stderr
    assert target.read_text() == "mine\n" and not burst_home.exists()
