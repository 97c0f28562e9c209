"""Timing fidelity on EC2 (moto over HTTP, nodes over real SSH): repetitions, cores and the calibration travel end to end."""

from __future__ import annotations

import csv
import json

from tests.conftest import REPO, run_script, status_report
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.node_identity import own_file
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, make_nodes, write_jobs  # noqa: F401  (make_nodes: fixture)


def test_repetitions_cores_and_calibration_on_ec2(tmp_path, moto_ami, make_nodes):  # noqa: F811
    job = "ec2reps"
    jobfile, install = write_jobs(tmp_path, [("c5.large", "bash bench.sh $REPEAT")] * 2)
    nodes = make_nodes(job)
    result = run_script(DISPATCHER, moto_ami, job, str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--repeat", "3", "--machines", "2", *nodes.args())
    assert nodes.error is None, nodes.error
    assert result.returncode == 0, result.stdout + result.stderr

    report = status_report(job)
    assert report["repetitions"] == {"rows": 2, "done": 2, "repeat": 3}
    rows = {row["tag"]: row for row in report["rows"]}
    assert sorted(rows) == [f"{job}{n}.r{k}" for n in (0, 1) for k in (1, 2, 3)]
    # units are rows like any: whichever of the two machines is free claims the next (one may be up first and take all)
    assert {row["instance_id"] for row in rows.values()} <= {m["id"] for m in report["machines"]}
    assert len(report["machines"]) == 2
    scores = {}
    out = tmp_path / "out"
    assert run_script(str(REPO / "get_s3_files.py"), job, str(out), "--merge").returncode == 0
    for machine in report["machines"]:
        record = json.loads(own_file(out, machine["id"], "worker.json").read_text())
        assert record["calibration"]["score"] > 0 and record["topology"]["cores"] >= 1
        scores[machine["id"]] = record["calibration"]["score"]
    for row in rows.values():
        assert row["cores"], "one slot: every core of its machine, recorded"
        assert row["machine_score"] == scores[row["instance_id"]]
    with open(out / "results.csv", newline="") as handle:
        merged = list(csv.DictReader(handle))
    # bench.sh writes param = $REPEAT: the command saw the repetition the table says
    assert sorted((r["row"], r["repeat"], r["param"]) for r in merged) == sorted(
        (f"{job}{n}", str(k), str(k)) for n in (0, 1) for k in (1, 2, 3))
    assert all(float(r["machine_score"]) == scores[r["instance_id"]] for r in merged)
