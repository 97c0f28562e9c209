"""Timing fidelity on this machine (AMI=local): whole cores per slot, repetitions, the machine's calibration."""

from __future__ import annotations

import csv
import json

from burst.node.topology import parse_cpu_list, read_cores
from tests.conftest import REPO, run_script, status_report, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")
GET_FILES = str(REPO / "get_s3_files.py")
RESULT = "mkdir -p results; printf 'rep,unit,affinity\\n%s,%s,%s\\n' \"$REPEAT\" \"$TAG\" \"$(taskset -pc $$ | cut -d: -f2 | tr -d ' ' | tr , ' ')\" > results/r.csv"


def merged(tmp_path, job: str) -> list[dict]:
    out = tmp_path / f"out-{job}"
    fetched = run_script(GET_FILES, job, str(out), "--merge")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def worker_records(burst_home, job: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((burst_home / "buckets" / job / "state" / "machines").glob("*/worker.json"))]


def test_slots_get_whole_cores_each_row_records_them_and_the_machine_is_calibrated(tmp_path, burst_home):
    cores = read_cores()
    slots = min(2, len(cores))
    jobfile, install = write_campaign(tmp_path, [("t3.micro", RESULT + "; sleep 1")] * 4)
    result = run_script(DISPATCHER, "local", "cores", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--machines", "1", "--slots", str(slots), "--calibrate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "physical core" not in result.stdout, "no warning while slots fit the cores"
    rows = status_report("cores")["rows"]
    by_name = {core.name: set(core.cpus) for core in cores}
    for row in rows:  # the CPUs a row was pinned to are exactly its cores' threads
        assert row["cores"] and set(row["cpus"]) == set().union(*(by_name[c] for c in row["cores"]))
    per_slot = {row["slot"]: frozenset(row["cores"]) for row in rows}
    assert len(set(per_slot.values())) == len(per_slot) == slots, "each slot its own cores"

    [worker] = worker_records(burst_home, "cores")
    assert worker["topology"]["cores"] == len(cores) and worker["topology"]["cpus"] == sum(len(c.cpus) for c in cores)
    calibration = worker["calibration"]
    assert calibration["score"] > 0 and [s["slot"] for s in calibration["slots"]] == list(range(slots))
    assert calibration["seconds"] <= 5.5 and all(s["cpu"] > 0 and s["memory"] > 0 for s in calibration["slots"])

    table = merged(tmp_path, "cores")
    for line in table:  # the command saw the affinity the status records
        assert line["cores"] and set(map(int, line["cpus"].split())) == set(parse_cpu_list(line["affinity"].replace(" ", ",")))
        assert float(line["machine_score"]) == calibration["score"]


def test_more_slots_than_cores_is_a_warning_locally(tmp_path):
    cores = len(read_cores())
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    result = run_script(DISPATCHER, "local", "crowd", str(jobfile), "-c", "-d", "--install", str(install),
                        "--slots", str(cores + 1), "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"--slots {cores + 1} on t3.micro: a machine has {cores} physical core{'s' if cores > 1 else ''}, "
            "so slots would share cores") in result.stdout.replace("\n", " ")


def test_threads_per_core_is_refused_locally(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    result = run_script(DISPATCHER, "local", "tpc", str(jobfile), "-c", "-d", "--install", str(install),
                        "--threads-per-core", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--threads-per-core is for EC2 machines" in result.stderr
    assert not (burst_home / "buckets" / "tpc").exists(), "nothing created"


def test_repeat_runs_each_row_k_times_as_units_and_status_counts_rows(tmp_path, burst_home):
    # the second row fails in its second repetition only
    jobfile, install = write_campaign(tmp_path, [("t3.micro", RESULT), ("t3.micro", RESULT + '; test "$REPEAT" != 2')])
    result = run_script(DISPATCHER, "local", "reps", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--repeat", "3", "--machines", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    report = status_report("reps")
    states = {row["tag"]: (row["state"], row["repeat"]) for row in report["rows"]}
    assert states == {"reps0.r1": ("done", 1), "reps0.r2": ("done", 2), "reps0.r3": ("done", 3),
                      "reps1.r1": ("done", 1), "reps1.r2": ("failed", 2), "reps1.r3": ("done", 3)}
    assert report["repetitions"] == {"rows": 2, "done": 1, "repeat": 3}
    status = run_script("-m", "burst", "status", "reps")
    assert "1 of 2 rows done in all 3 repetitions (6 units: 5 done, 1 failed)" in status.stdout.replace("\n", " ")
    assert len(report["machines"]) == 2 and {row["instance_id"] for row in report["rows"]} <= {
        m["id"] for m in report["machines"]}, "units are claimed by whichever machine is free, like rows"

    table = merged(tmp_path, "reps")
    assert {(line["tag"], line["row"], line["repeat"]) for line in table} == {
        (f"reps{i}.r{k}", f"reps{i}", str(k)) for i in (0, 1) for k in (1, 2, 3)}
    assert all(line["rep"] == line["repeat"] and line["unit"] == line["tag"] for line in table), "REPEAT and TAG as run"
    assert {line["machine_score"] for line in table} == {""}, "no calibration: no score"
    assert all(w["calibration"] == {} for w in worker_records(burst_home, "reps"))

    again = run_script(DISPATCHER, "local", "reps", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert "--repeat 3" in next(line for line in again.stdout.splitlines() if line.startswith("as in the last run:"))
    assert len(status_report("reps")["rows"]) == 6, "a re-run keeps the repetitions"


def test_status_flags_a_machine_whose_score_is_far_from_its_types_median(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "sleep 2")] * 3)
    result = run_script(DISPATCHER, "local", "calib", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--machines", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    records = sorted((burst_home / "buckets" / "calib" / "state" / "machines").glob("*/worker.json"))
    assert len(records) == 3
    for path, score in zip(records, (10.0, 10.4, 7.0)):  # sandboxes share this machine: the test writes the scores
        record = json.loads(path.read_text())
        assert record["calibration"] == {}, "locally, no calibration unless --calibrate"
        record["calibration"] = {"score": score}
        path.write_text(json.dumps(record))
    slow = records[2].parent.name
    machines = {m["id"]: m for m in status_report("calib")["machines"]}
    assert machines[slow]["score_off"] == -0.3 and "calibration score 7 is -30% from the median of its type" in machines[slow]["note"]
    assert [m["score_off"] for i, m in machines.items() if i != slow] == [None, None]
    status = run_script("-m", "burst", "status", "calib", "--wide")
    assert f"{slow}: calibration score 7 is -30% from the median of its type" in status.stdout
