"""The plan before money is spent: --dry-run, the confirmation, prices from the Price List API and spot history.

EC2 runs against moto server; on-demand prices come from the loopback Price List
server (tests/pricelist.py) through ``AWS_ENDPOINT_URL_PRICING``; moto answers
DescribeSpotPriceHistory.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import boto3
import pytest

from burst.control.ledger import money

from burst.control.cost_plan import make_plan, quota_needs
from burst.providers.pricing import PriceBook
from burst.providers.quotas import QuotaNeed, quota_class
from tests.conftest import REPO, run_script, write_campaign
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.pricelist import PRICES, price_list_server

DISPATCHER = str(REPO / "dispatcher.py")


def account_snapshot(burst_home, home) -> dict:
    """Everything a run could create: AWS resources in moto, and files under $BURST_HOME and ~/.ssh."""
    ec2, iam = boto3.client("ec2"), boto3.client("iam")
    files = sorted(str(p.relative_to(root)) for root in (burst_home, home) if root.exists() for p in root.rglob("*"))
    return {
        "buckets": [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
        "security_groups": sorted(g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "instances": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"]],
        "instance_profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]],
        "files": files,
    }


@pytest.fixture
def campaign(tmp_path):
    rows = [("t3.micro", "echo a")] * 3 + [("c5.large", "echo b")] * 2
    return write_campaign(tmp_path, rows)


def test_dry_run_prints_the_plan_with_prices_and_creates_nothing(tmp_path, moto_ami, campaign, burst_home, isolated_home):
    jobfile, install = campaign
    before = account_snapshot(burst_home, isolated_home)
    result = run_script(DISPATCHER, moto_ami, "plan1", str(jobfile), "-c", "-d", "--install", str(install),
                        "--machines", "2", "--max-hours", "3", "--ssh-cidr", "127.0.0.1/32", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # per type: rows, machines, slots, physical cores, vCPUs, $/h per machine and for the fleet; each
    # machine's public IPv4 address (the default VPC's subnets give one) costs $0.005/h on top of its type
    assert "│ c5.large │    2 │        2 │     1 │     1 │     2 │         $0.0900 │   $0.1800 │" in out, out
    assert "│ t3.micro │    3 │        2 │     1 │     1 │     2 │         $0.0154 │   $0.0308 │" in out, out
    assert "$0.2108" in out  # the fleet per hour
    assert "worst case: $0.6324 (every machine running for --max-hours 3)" in out  # 0.2108 x 3
    assert "note: each machine's price includes a public IPv4 address ($0.005/h)" in out
    assert "subnets subnet-" in out and "(us-east-1a)" in out and "tried in this order" in out
    assert "dry run: nothing was created" in out
    assert account_snapshot(burst_home, isolated_home) == before


def test_slots_auto_is_the_physical_cores_and_more_slots_than_cores_is_refused_on_ec2(tmp_path, moto_ami, burst_home,
                                                                                       isolated_home):
    """A c5.2xlarge has 8 vCPUs on 4 cores (DescribeInstanceTypes' DefaultCores): 'auto' is 4 slots, 5 is refused.

    (The 2-socket and no-SMT layouts are in tests/test_topology.py: moto's AMI is x86, so no Graviton here.)"""
    jobfile, install = write_campaign(tmp_path, [("c5.2xlarge", "echo a"), ("m6i.4xlarge", "echo b")])
    args = (DISPATCHER, moto_ami, "cores1", str(jobfile), "-c", "-d", "--install", str(install), "--ssh-cidr",
            "127.0.0.1/32", "--dry-run")
    auto = run_script(*args, "--slots", "auto")
    assert "│ c5.2xlarge  │    1 │        1 │     4 │     4 │     8 │" in auto.stdout, auto.stdout + auto.stderr
    assert "│ m6i.4xlarge │    1 │        1 │     8 │     8 │    16 │" in auto.stdout, auto.stdout
    before = account_snapshot(burst_home, isolated_home)
    crowded = run_script(*args, "--slots", "5")
    assert crowded.returncode == 2
    assert ("--slots 5 on c5.2xlarge: a machine has 4 physical cores, so slots would share cores and disturb each "
            "other's timings. Use --slots 4 or fewer (or --slots auto: one per core).") in crowded.stderr.replace("\n", " ")
    assert "Traceback" not in crowded.stderr
    assert account_snapshot(burst_home, isolated_home) == before


def test_the_plan_says_what_threads_per_core_1_does_to_each_type(tmp_path, moto_ami):
    jobfile, install = write_campaign(tmp_path, [("c5.2xlarge", "echo a"), ("t3.micro", "echo b")])
    result = run_script(DISPATCHER, moto_ami, "tpc1", str(jobfile), "-c", "-d", "--install", str(install), "--ssh-cidr",
                        "127.0.0.1/32", "--dry-run", "--threads-per-core", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert ("note: --threads-per-core 1: c5.2xlarge runs its 4 cores with 1 thread each (4 of its 8 vCPUs; CpuOptions "
            "at launch), at the price of the whole instance") in out
    assert "note: --threads-per-core 1: t3.micro runs its 1 core with 1 thread each (1 of its 2 vCPUs" in out
    assert "│ c5.2xlarge │    1 │        1 │     1 │     4 │     8 │" in result.stdout, "priced per instance, as before"


def test_without_a_terminal_and_without_yes_nothing_is_created(tmp_path, moto_ami, campaign, burst_home, isolated_home):
    jobfile, install = campaign
    before = account_snapshot(burst_home, isolated_home)
    result = run_script(DISPATCHER, moto_ami, "plan2", str(jobfile), "-c", "-d", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no terminal to ask on" in result.stderr and "--yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert "$/h per machine" in result.stdout, "the plan is shown before the refusal"
    assert account_snapshot(burst_home, isolated_home) == before


def run_in_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run the dispatcher on a pseudo-terminal and answer its question."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, stdin=follower, stdout=follower, stderr=follower,
                               env=dict(os.environ), close_fds=True)
    os.close(follower)
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Proceed? [y/N]" in output:
            os.write(leader, answer)
            answered = True
    os.close(leader)
    return process.wait(timeout=120), output.decode(errors="replace")


def test_on_a_terminal_no_means_nothing_is_created(tmp_path, moto_ami, campaign, burst_home, isolated_home):
    jobfile, install = campaign
    before = account_snapshot(burst_home, isolated_home)
    code, out = run_in_terminal([DISPATCHER, moto_ami, "plan3", str(jobfile), "-c", "-d", "--install", str(install),
                                 "--ssh-cidr", "127.0.0.1/32"], b"n\n")
    assert "Proceed? [y/N]" in out and "not started: nothing was created" in out, out
    assert code == 1
    assert account_snapshot(burst_home, isolated_home) == before


def test_without_price_list_permission_the_plan_says_price_unknown_and_goes_on(moto_ami, campaign, monkeypatch):
    jobfile, install = campaign
    monkeypatch.setattr(price_list_server(), "deny", True)
    result = run_script(DISPATCHER, moto_ami, "plan4", str(jobfile), "-c", "-d", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "price unknown" in result.stdout
    assert "on-demand prices unknown: the Price List API did not answer (AccessDeniedException)" in result.stdout
    assert "pricing:GetProducts" in result.stdout


def test_spot_plan_uses_the_spot_price_history_and_on_demand_for_the_worst_case(moto_ami, campaign):
    jobfile, install = campaign
    result = run_script(DISPATCHER, moto_ami, "plan5", str(jobfile), "-c", "-d", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32", "--dry-run", "--spot", "--machines", "1", "--max-hours", "10")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "EC2 us-east-1, spot" in out
    assert "$0.0050" in out  # moto's spot price history: $0.00001 in every zone, and the public IPv4 address
    # if spot is refused, machines run on-demand: the worst case is priced so
    worst = (PRICES["t3.micro"] + PRICES["c5.large"] + 2 * 0.005) * 10
    assert f"worst case: {money(worst)} (every machine running for --max-hours 10, at the on-demand price if spot is refused)" in out


def test_prices_are_cached_for_a_day_by_a_real_run_but_never_by_a_dry_run(moto_ami, campaign, burst_home):
    jobfile, install = campaign
    server = price_list_server()
    args = [DISPATCHER, moto_ami, "plan6", str(jobfile), "-d", "--install", str(install), "--ssh-cidr", "127.0.0.1/32"]
    asked = len(server.requests)
    assert run_script(*args, "--dry-run").returncode == 0
    assert len(server.requests) == asked + 2 and not (burst_home / "prices").exists()
    # -d alone launches nothing in this test: its rows wait for -c; the prices are kept all the same
    assert run_script(*args, "--yes").returncode == 0
    assert len(server.requests) == asked + 4
    assert (burst_home / "prices" / "on-demand-us-east-1.json").is_file()
    again = run_script(*args, "--dry-run")
    assert again.returncode == 0 and "$0.0900" in again.stdout
    assert len(server.requests) == asked + 4, "the day-old cache answered"


def test_the_root_volume_and_the_public_address_are_in_the_plan_and_its_prices(moto_ami, campaign):
    jobfile, install = campaign
    args = [DISPATCHER, moto_ami, "plan7", str(jobfile), "-c", "-d", "--install", str(install), "--machines", "1",
            "--ssh-cidr", "127.0.0.1/32", "--dry-run", "--disk-gb", "30"]
    out = run_script(*args, "--no-public-ip").stdout
    disk = 30 * 0.08 / 730  # gp3: $0.08 per GB-month
    assert f"│ t3.micro │    3 │        1 │     1 │     1 │     2 │         ${PRICES['t3.micro'] + disk:.4f} │" in out, out
    assert f"note: each machine's price includes a 30 GiB gp3 root volume (${disk:.4f}/h)" in out
    assert "no public IPv4 address (--no-public-ip)" in out
    out = run_script(*args, "--public-ip").stdout
    assert f"│ t3.micro │    3 │        1 │     1 │     1 │     2 │         ${PRICES['t3.micro'] + disk + 0.005:.4f} │" in out, out
    assert "a 30 GiB gp3 root volume ($0.0033/h) and a public IPv4 address ($0.005/h)" in out
    refused = run_script(*args[:-1], "4")
    assert refused.returncode == 2 and "--disk-gb 4 is smaller than the 15 GiB root snapshot" in refused.stderr, refused.stderr


def test_the_fleet_is_compared_with_the_vcpu_quotas():
    book = PriceBook(region="us-east-1", on_demand={"c5.large": 0.085, "p3.2xlarge": 3.06})
    plan = make_plan("q", "us-east-1", "spot", 1.0, {"c5.large": 40, "p3.2xlarge": 2}, {"c5.large": 40, "p3.2xlarge": 2},
                     "1", {"c5.large": 2, "p3.2xlarge": 8}, book)
    needs = {(n.quota_class, n.spot): n for n in quota_needs(plan)}
    assert needs[("Standard (A, C, D, H, I, M, R, T, Z)", False)].vcpus == 80  # 40 machines x 2 vCPUs
    assert needs[("P", True)].vcpus == 16
    need = needs[("Standard (A, C, D, H, I, M, R, T, Z)", False)]
    need.quota = 64
    assert "needs 80 vCPUs of 'Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances'" in need.warning("us-east-1")
    assert QuotaNeed("P", True, 16, quota=32).warning("us-east-1") is None
    assert [quota_class(t) for t in ("c5.large", "g4dn.xlarge", "vt1.3xlarge", "inf1.xlarge", "x2idn.16xlarge")] == [
        "Standard (A, C, D, H, I, M, R, T, Z)", "G and VT", "G and VT", None, "X"]


def test_dry_run_says_when_the_quotas_cannot_be_read(moto_ami, campaign):
    jobfile, install = campaign
    result = run_script(DISPATCHER, moto_ami, "plan7", str(jobfile), "-c", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32", "--dry-run")
    assert result.returncode == 0
    # moto's Service Quotas knows no EC2 quota: the plan says so and goes on
    assert "vCPU quotas not checked" in result.stdout and "servicequotas:GetServiceQuota" in result.stdout


def test_local_mode_never_asks_and_refuses_spot(tmp_path):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    plain = run_script(DISPATCHER, "local", "loc1", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert plain.returncode == 0 and "Proceed?" not in plain.stdout
    spot = run_script(DISPATCHER, "local", "loc2", str(jobfile), "-c", "-d", "--install", str(install), "--spot")
    assert spot.returncode == 2 and "--spot is for EC2 machines" in spot.stderr
