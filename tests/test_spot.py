"""Spot machines: the market options, the fallback to on-demand, --spot-only, and interruptions.

Instances live in moto (over HTTP, through the fault proxy where AWS must refuse
spot capacity); the nodes are a real sshd on 127.0.0.1 whose ``SetEnv`` hands
each worker a loopback IMDSv2 server (tests/imds.py) that can announce a spot
interruption to one machine.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from burst import protocol
from burst.control.ledger import cost_line
from burst.providers import ProviderOptions, ec2_spot
from burst.providers.base import LaunchSpec
from burst.providers.ec2 import EC2Provider
from tests.awsfaults import INSUFFICIENT_INSTANCE_CAPACITY, NO_SPOT_CAPACITY, aws_faults  # noqa: F401  (fixture)
from tests.conftest import REPO, run_script, status_report, wait_until, write_campaign
from tests.imds import MetadataServer
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, instances_of, make_nodes  # noqa: F401  (fixture)


def spot_provider(image: str, tmp_path: Path, market: str) -> tuple[EC2Provider, list[str]]:
    options = ProviderOptions(region="us-east-1", ssh_cidr="127.0.0.1/32", key_dir=str(tmp_path / "keys"), market=market)
    provider = EC2Provider("spotjob", image, options, tmp_path / "burst-home")
    said: list[str] = []
    provider.report = said.append
    return provider, said


def lifecycles(ids: list[str]) -> list[str]:
    reservations = boto3.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return sorted(i.get("InstanceLifecycle", "on-demand") for r in reservations for i in r["Instances"])


def test_spot_launches_carry_the_spot_market_options(moto_ami, tmp_path, aws_faults):
    provider, said = spot_provider(moto_ami, tmp_path, "spot")
    ids = provider.launch(LaunchSpec("spotjob", "t3.micro", moto_ami), 2)
    assert lifecycles(ids) == ["spot", "spot"] and said == []
    assert [info.details["lifecycle"] for info in provider.wait_ready(ids)] == ["spot", "spot"]
    provider.close()


# AWS answers InsufficientInstanceCapacity with HTTP 500, which botocore retries (the first call
# and 10 retries; no wait here: ``backoffs``) before burst sees it.
ATTEMPTS = 11
SPOT_ONLY = ("InstanceMarketOptions.MarketType", "spot")  # the rule refuses spot requests, in every zone


def test_refused_spot_capacity_falls_back_to_on_demand_and_says_so(moto_ami, tmp_path, aws_faults, backoffs):
    provider, said = spot_provider(moto_ami, tmp_path, "spot")
    provider.prepare()
    rule = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances", param=SPOT_ONLY))
    ids = provider.launch(LaunchSpec("spotjob", "t3.micro", moto_ami), 2)
    assert aws_faults.fired(rule) >= 6, "every zone was asked for spot machines first"
    assert lifecycles(ids) == ["on-demand", "on-demand"]
    assert said == ["no spot capacity for 2 × t3.micro (InsufficientInstanceCapacity): launching them on-demand"]
    provider.close()


def zones(ids: list[str]) -> list[str]:
    reservations = boto3.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return sorted(i["Placement"]["AvailabilityZone"] for r in reservations for i in r["Instances"])


@pytest.mark.parametrize("market", ["spot", "spot-only"])
def test_a_zone_with_no_spot_capacity_is_passed_for_the_others_still_spot(moto_ami, tmp_path, aws_faults, backoffs, market):
    """us-east-1a answers every spot request 'no Spot capacity', us-east-1b gives one and then none: us-east-1c the rest."""
    provider, said = spot_provider(moto_ami, tmp_path, market)
    provider.prepare()
    zone_a, zone_b = [subnet.id for subnet in provider.subnets()[:2]]
    refuse_a = aws_faults.add(NO_SPOT_CAPACITY.on("RunInstances", param=("SubnetId", zone_a)))
    short_b = aws_faults.add(NO_SPOT_CAPACITY.on("RunInstances", param=("SubnetId", zone_b), after=1))
    ids = provider.launch(LaunchSpec("spotjob", "t3.micro", moto_ami), 3)
    assert aws_faults.fired(refuse_a) == ATTEMPTS and aws_faults.fired(short_b) == ATTEMPTS
    assert lifecycles(ids) == ["spot"] * 3, "spot in the other zones, never on-demand"
    assert zones(ids) == ["us-east-1b", "us-east-1c", "us-east-1c"]
    assert said == [] and provider.launched == ids
    assert {p["MinCount"] for p in aws_faults.params("RunInstances")} == {"1"}
    provider.close()


def test_spot_machines_started_before_every_zone_refused_are_kept_and_the_rest_go_on_demand(moto_ami, tmp_path, aws_faults, backoffs):
    provider, said = spot_provider(moto_ami, tmp_path, "spot")
    provider.prepare()
    aws_faults.add(NO_SPOT_CAPACITY.on("RunInstances", param=SPOT_ONLY, after=1))
    ids = provider.launch(LaunchSpec("spotjob", "t3.micro", moto_ami), 3)
    assert lifecycles(ids) == ["on-demand", "on-demand", "spot"]
    assert said == ["no spot capacity for 2 × t3.micro (InsufficientInstanceCapacity): launching them on-demand"]
    assert sorted(provider.launched) == sorted(ids) and len(set(ids)) == 3
    provider.close()


def test_spot_only_waits_for_spot_capacity_instead(moto_ami, tmp_path, aws_faults, monkeypatch, backoffs):
    monkeypatch.setattr(ec2_spot, "SPOT_WAIT_DELAYS", (0.0,))  # ask again at the next round
    provider, said = spot_provider(moto_ami, tmp_path, "spot-only")
    provider.prepare()
    rule = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances", param=SPOT_ONLY))
    spec = LaunchSpec("spotjob", "t3.micro", moto_ami)
    assert provider.launch(spec, 2) == [] and provider.launch(spec, 2) == []
    aws_faults.remove(rule)  # spot capacity is back
    assert said == [
        "waiting for spot capacity for 2 × t3.micro (InsufficientInstanceCapacity; try 1, next in 0 s; --spot-only)",
        "waiting for spot capacity for 2 × t3.micro (InsufficientInstanceCapacity; try 2, next in 0 s; --spot-only)",
    ]
    ids = provider.launch(spec, 2)
    assert lifecycles(ids) == ["spot", "spot"], "never on-demand"
    assert instances_of("spotjob") and len(instances_of("spotjob")) == 2
    provider.close()


def held_claims(bucket: str, tags: list[str]) -> int:
    s3 = boto3.client("s3")
    held = 0
    for tag in tags:
        try:
            claim = json.loads(s3.get_object(Bucket=bucket, Key=protocol.claim_key(tag))["Body"].read())
        except s3.exceptions.NoSuchKey:
            continue
        except Exception:  # the bucket does not exist yet
            return 0
        held += claim["state"] == "held"
    return held


def test_an_interruption_notice_reruns_its_row_elsewhere_and_costs_add_up(tmp_path, moto_ami, make_nodes):  # noqa: F811
    job = "spotty"
    imds = MetadataServer()
    release = tmp_path / "release"
    command = (f"echo \"$TAG attempt $ATTEMPT on $INSTANCE_ID\"; mkdir -p results; echo $ATTEMPT > results/attempt.txt; "
               f"while [ ! -e {shlex.quote(str(release))} ] && [ $ATTEMPT -eq 1 ]; do sleep 0.1; done")
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)] * 3)
    nodes = make_nodes(job, metadata_url=imds.url)
    tags = [f"{job}{n}" for n in range(3)]
    output = tmp_path / "dispatcher.out"
    dispatcher = subprocess.Popen(
        [sys.executable, DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait", "--spot", "--machines", "3",
         "--heartbeat", "2", "--install", str(install), *nodes.args()],
        cwd=REPO, stdout=output.open("w"), stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: held_claims(job, tags) == 3, timeout=180, what="three rows running on three spot machines")
        assert lifecycles([m["InstanceId"] for m in instances_of(job)]) == ["spot"] * 3
        imds.interrupt_next(1)
        wait_until(lambda: imds.interrupted, timeout=60, what="a worker reading the notice")
        # the other two rows wait for the release; the interrupted one runs again (at once) on a new machine
        wait_until(lambda: any(row["attempt"] == 2 and row["state"] == "done" for row in status_report(job)["rows"]),
                   timeout=120, what="the interrupted row done on a new machine")
        release.touch()
        dispatcher.wait(timeout=240)
    except BaseException:
        print(output.read_text())
        raise
    finally:
        release.touch()
        if dispatcher.poll() is None:
            dispatcher.kill()
    out = output.read_text()
    assert nodes.error is None, nodes.error
    assert dispatcher.returncode == 0, out
    report = status_report(job)
    rows = {row["tag"]: row for row in report["rows"]}
    assert {row["state"] for row in rows.values()} == {"done"}
    (rerun,) = [tag for tag, row in rows.items() if row["attempt"] == 2]
    assert sorted(row["attempt"] for row in rows.values()) == [1, 1, 2]
    assert rows[rerun]["lifecycle"] == "spot" and rows[rerun]["exit_code"] == 0

    s3 = boto3.client("s3")
    first = s3.get_object(Bucket=job, Key=f"{rerun}/attempts/1/logs/stdout.log")["Body"].read().decode()
    second = s3.get_object(Bucket=job, Key=f"{rerun}/attempts/2/logs/stdout.log")["Body"].read().decode()
    assert f"{rerun} attempt 1 on" in first and f"{rerun} attempt 2 on" in second, "both attempts' logs stay"
    assert s3.get_object(Bucket=job, Key=f"{rerun}/attempts/1/results/attempt.txt")["Body"].read() == b"1\n"
    interrupted_machine = first.split(" on ")[1].strip()
    machines = {m["id"]: m for m in report["machines"]}
    assert machines[interrupted_machine]["state"] == "worker interrupted"
    assert f"{rerun}: " not in out or "spot interruption" in out
    assert all(m["State"]["Name"] == "terminated" for m in instances_of(job))

    # every row has a cost, and the ledger's rows total is their sum
    priced = [row["cost_usd"] for row in rows.values()]
    assert all(cost is not None and cost > 0 for cost in priced)
    cost = run_script("-m", "burst", "cost", job)
    assert cost.returncode == 0, cost.stderr
    line = [text for text in cost.stdout.splitlines() if text.startswith("cost so far:")][0]
    rows_usd = float(line.split("rows $")[1].split(",")[0])
    assert rows_usd == pytest.approx(sum(priced), rel=0.01), (line, priced)
    merged_dir = tmp_path / "results"
    fetched = run_script(str(REPO / "get_s3_files.py"), job, str(merged_dir), "--merge")
    assert fetched.returncode == 0, fetched.stderr
    import csv

    with open(merged_dir / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    assert sorted(r["attempt"] for r in merged) == ["1", "1", "2"] and {r["lifecycle"] for r in merged} == {"spot"}
    assert sum(float(r["cost_usd"]) for r in merged) == pytest.approx(rows_usd, rel=0.01), "the table adds up to burst cost"
    for row in rows.values():  # its seconds at its machine's spot price (moto's: $0.00001 an hour), one slot
        assert row["cost_usd"] == pytest.approx(row["seconds"] / 3600 * row["price_per_hour"], rel=1e-3)
    imds.shutdown()


def test_the_ledger_line_adds_rows_and_overhead():
    from burst.control.ledger import Ledger, MachineCost

    ledger = Ledger(machines=[
        MachineCost("i-1", "c5.large", "spot", 0.36, "2026-11-22T10:00:00+00:00", "2026-11-22T11:00:00+00:00",
                    hours=1.0, rows_usd=0.12, rows=2),
        MachineCost("i-2", "c5.large", "on-demand", None, "2026-11-22T10:00:00+00:00", "", hours=0.5, rows_usd=0.0, rows=0),
    ], rows_usd=0.12, rows_priced=2)
    assert ledger.overhead_usd == pytest.approx(0.24)  # an hour at $0.36, less its rows
    assert cost_line(ledger) == ("cost so far: rows $0.1200, overhead $0.2400, total $0.3600 "
                                 "(without 1 machine(s) of unknown price)")


def test_a_spot_machine_that_vanishes_without_a_notice_is_found_by_its_lease(tmp_path, moto_ami, make_nodes):  # noqa: F811
    job = "vanish"
    command = "echo \"$TAG attempt $ATTEMPT\"; while [ $ATTEMPT -eq 1 ]; do sleep 0.1; done"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)] * 2)
    nodes = make_nodes(job, metadata_url=MetadataServer().url)  # a notice never comes
    tags = [f"{job}{n}" for n in range(2)]
    output = tmp_path / "dispatcher.out"
    dispatcher = subprocess.Popen(
        [sys.executable, DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait", "--spot", "--machines", "2",
         "--heartbeat", "1", "--retries", "3", "--install", str(install), *nodes.args()],
        cwd=REPO, stdout=output.open("w"), stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: held_claims(job, tags) == 2, timeout=180, what="both rows running on spot machines")
        gone = [m["InstanceId"] for m in instances_of(job)]
        boto3.client("ec2").terminate_instances(InstanceIds=gone)  # AWS took them back, with no notice
        assert nodes.power_off(job, gone) > 0
        dispatcher.wait(timeout=240)
    except BaseException:
        print(output.read_text())
        raise
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    out = output.read_text()
    assert dispatcher.returncode == 0, out
    rows = {row["tag"]: row for row in status_report(job)["rows"]}
    assert {(row["state"], row["attempt"], row["lifecycle"]) for row in rows.values()} == {("done", 2, "spot")}
    assert "lost its machine" in out or "stopped heartbeating" in out, out
