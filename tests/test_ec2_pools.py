"""Pools on EC2: fewer machines than rows, each machine's worker pulling rows of its type.

Instances live in moto (over HTTP); every "instance" is the same real sshd on
127.0.0.1 (``--ssh-config`` maps every host there), each with its own folder
named by its instance id. What the commands did is recorded in files outside
those folders, so it survives the machines.
"""

from __future__ import annotations

import shlex
from collections import Counter

import boto3

from tests.conftest import run_script, status_report, write_campaign
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, instances_of, make_nodes  # noqa: F401  (fixture)


def test_twelve_rows_of_two_types_on_two_machines_per_type(tmp_path, moto_ami, make_nodes):  # noqa: F811
    job = "ec2pools"
    ran, started = tmp_path / "ran.txt", tmp_path / "started.txt"
    # The first row of each type waits until a second row of its type has started: with one
    # slot per machine that row runs on the type's other machine, so both machines work at once.
    command = (
        f'echo "$TAG" >> {shlex.quote(str(ran))}; echo "$INSTANCE_TYPE $TAG" >> {shlex.quote(str(started))}; '
        f'until [ "$(grep -c "^$INSTANCE_TYPE " {shlex.quote(str(started))})" -ge 2 ]; do sleep 0.1; done; '
        'echo "row $TAG attempt $ATTEMPT slot $SLOT on $INSTANCE_ID"'
    )
    types = ["t3.micro", "c5.large"]
    rows = [(types[n % 2], command) for n in range(12)]
    jobfile, install = write_campaign(tmp_path, rows, install="#!/bin/bash\necho \"install on $INSTANCE_ID\"\n")
    nodes = make_nodes(job)

    result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--no-calibrate", "--wait", "--machines", "2",
                        "--install", str(install), *nodes.args())
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr
    for instance_type in types:
        assert f"started 2 machine(s) of type {instance_type}" in result.stdout, result.stdout
    tags = [f"{job}{n}" for n in range(12)]

    # every row ran exactly once
    lines = ran.read_text().splitlines()
    assert len(lines) == 12 and sorted(lines) == sorted(tags), lines

    # only 4 machines were ever started (one launch round per type), all ended when --wait returned
    machines = instances_of(job)
    assert len(machines) == 4, result.stdout
    assert Counter(m["InstanceType"] for m in machines) == {"t3.micro": 2, "c5.large": 2}
    by_reservation: dict[str, set[str]] = {}
    for machine in machines:
        by_reservation.setdefault(machine["Reservation"], set()).add(machine["InstanceType"])
    assert sorted(map(sorted, by_reservation.values())) == [["c5.large"]] * 2 + [["t3.micro"]] * 2  # moto: one per call
    assert {m["State"]["Name"] for m in machines} == {"terminated"}, {m["InstanceId"]: m["State"]["Name"] for m in machines}
    type_of = {m["InstanceId"]: m["InstanceType"] for m in machines}
    assert sorted(p.name for p in (nodes.node_root / job).iterdir()) == sorted(type_of), "one folder per machine"

    # status --json: every row done on a machine of its type; 4 machines, each with the rows it ran
    report = status_report(job)
    s3 = boto3.client("s3")
    states = {row["tag"]: row for row in report["rows"]}
    assert sorted(states) == sorted(tags)
    for n, tag in enumerate(tags):
        row = states[tag]
        assert (row["state"], row["exit_code"], row["attempt"], row["slot"]) == ("done", 0, 1, 0), row
        assert row["instance_type"] == rows[n][0] == type_of[row["instance_id"]]
        stdout = s3.get_object(Bucket=job, Key=f"{tag}/attempts/1/logs/stdout.log")["Body"].read().decode()
        assert stdout == f"row {tag} attempt 1 slot 0 on {row['instance_id']}\n"
    pool = {m["id"]: m for m in report["machines"]}
    assert set(pool) == set(type_of)
    for instance_id, machine in pool.items():
        assert machine["instance_type"] == type_of[instance_id] and machine["live"] is False
        assert machine["score_off"] is None, "--no-calibrate: no machine is scored"
        assert machine["state"] == "worker finished" and machine["note"] == "", machine
        assert machine["rows"], f"machine {instance_id} ran no row"
        assert all(states[r.split("#")[0]]["instance_id"] == instance_id for r in machine["rows"])
    assert sorted(r for m in pool.values() for r in m["rows"]) == sorted(f"{t}#1" for t in tags)
    for instance_type in types:
        ran_by_type = sum(len(m["rows"]) for m in pool.values() if m["instance_type"] == instance_type)
        assert ran_by_type == 6
