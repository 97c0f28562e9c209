"""Pools on this machine: bounded fleets, rows claimed exactly once, leases that notice every fault."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from burst.providers.local import LocalProvider, SandboxRegistry
from tests.conftest import REPO, run_script, status_report, statuses, wait_until, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")


def registry(burst_home) -> dict:
    path = SandboxRegistry(burst_home).path
    return json.loads(path.read_text()) if path.exists() else {}


def sandboxes(burst_home, job: str, live_only: bool = False) -> list[str]:
    return [i for i, r in registry(burst_home).items() if r["job"] == job and (r["state"] == "running" or not live_only)]


def ran(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_forty_rows_run_exactly_once_on_three_machines(tmp_path, burst_home):
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG >> {log}")] * 40)
    result = run_script(DISPATCHER, "local", "forty", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--machines", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(ran(log)) == sorted(f"forty{i}" for i in range(40)), "every row once, none twice"
    assert len(sandboxes(burst_home, "forty")) == 3, "only three machines were ever started"
    assert sandboxes(burst_home, "forty", live_only=True) == [], "and every one ended"
    machines = status_report("forty")["machines"]
    assert sum(len(m["rows"]) for m in machines) == 40 and all(m["state"] == "worker finished" for m in machines)


def test_eight_slots_race_for_two_hundred_rows_and_none_runs_twice(tmp_path, burst_home):
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG-$SLOT >> {log}")] * 200)
    result = run_script(DISPATCHER, "local", "race", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--machines", "1", "--slots", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    tags = [line.rsplit("-", 1)[0] for line in ran(log)]
    assert Counter(tags) == Counter(f"race{i}" for i in range(200))
    assert len({line.rsplit("-", 1)[1] for line in ran(log)}) == 8, "all eight slots took rows"
    rows = statuses("race")
    assert {r["state"] for r in rows.values()} == {"done"} and {r["attempt"] for r in rows.values()} == {1}


def test_slots_are_pinned_to_their_own_cpus(tmp_path, burst_home):
    if len(os.sched_getaffinity(0)) < 2:
        raise AssertionError("this test needs two CPUs (the CI machine has them)")
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "mkdir -p results; taskset -pc $$ > results/cpus.txt; sleep 0.5")] * 2)
    result = run_script(DISPATCHER, "local", "pin", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--machines", "1", "--slots", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = statuses("pin")
    assert sorted(tuple(r["cpus"]) for r in rows.values()) == [(0,), (1,)]
    for tag, row in rows.items():
        seen = (burst_home / "buckets" / "pin" / tag / "attempts" / "1" / "results" / "cpus.txt").read_text()
        assert seen.strip().endswith(f": {row['cpus'][0]}"), "the command ran on the CPU its status names"
    out = tmp_path / "out"
    assert run_script(str(REPO / "get_s3_files.py"), "pin", str(out), "--merge").returncode == 0
    with open(out / "results.csv", newline="") as handle:
        merged = {r["tag"]: r for r in csv.DictReader(handle)}
    assert {merged[t]["cpus"] for t in rows} == {"0", "1"} and {merged[t]["attempt"] for t in rows} == {"1"}


def worker_pid(instance_id: str) -> int | None:
    marker = f"BURST_INSTANCE_ID={instance_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"save_results.py\0work" in (entry / "cmdline").read_bytes() and marker in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    return None


LOST_ROW = 'echo "$TAG $ATTEMPT $INSTANCE_ID" >> {log}; if [ "$ATTEMPT" = 1 ]; then sleep 120; fi'


def start_dispatcher(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, DISPATCHER, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(dispatcher: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    try:
        return dispatcher.communicate(timeout=timeout)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()


def lose_attempt_one(tmp_path, burst_home, job: str, fault: str, *options: str) -> tuple[subprocess.Popen, str, str, Path]:
    """Run one row whose attempt 1 hangs, then kill its worker or end its machine; (dispatcher, out, err, log)."""
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", LOST_ROW.format(log=log))])
    dispatcher = start_dispatcher("local", job, str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                                  "--heartbeat", "1", *options)
    try:
        first = wait_until(lambda: ran(log)[2:3], what="attempt 1 running")[0]
        if fault == "end the machine":
            LocalProvider(job, burst_home).terminate([first])
        else:
            os.kill(wait_until(lambda: worker_pid(first), what="the worker's pid"), signal.SIGKILL)
        out, err = finish(dispatcher)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    return dispatcher, out, err, log


@pytest.mark.parametrize("fault", ["kill -9 the worker", "end the machine"])
def test_a_row_whose_machine_fails_reruns_as_attempt_two_elsewhere(tmp_path, burst_home, fault):
    dispatcher, out, err, log = lose_attempt_one(tmp_path, burst_home, "lost", fault)
    assert dispatcher.returncode == 0, out + err
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [(tag, attempt) for tag, attempt, _ in lines] == [("lost0", "1"), ("lost0", "2")]
    first, second = lines[0][2], lines[1][2]
    assert second != first, "attempt 2 ran on another machine"
    row = statuses("lost")["lost0"]
    assert (row["state"], row["attempt"], row["instance_id"]) == ("done", 2, second)
    assert (burst_home / "buckets" / "lost" / "lost0" / "attempts" / "2" / "logs" / "stdout.log").is_file()
    assert sandboxes(burst_home, "lost", live_only=True) == [], "the failed machine was ended too"
    if fault == "kill -9 the worker":
        ended = [m for m in status_report("lost")["machines"] if m["id"] == first][0]
        assert ended["state"] == "ended" and "stopped heartbeating" in ended["note"]


def test_with_no_retries_a_lost_row_ends_interrupted_and_wait_returns(tmp_path, burst_home):
    dispatcher, out, err, log = lose_attempt_one(tmp_path, burst_home, "gone", "kill -9 the worker", "--retries", "0")
    assert dispatcher.returncode == 1, out + err
    row = statuses("gone")["gone0"]
    assert (row["state"], row["attempt"]) == ("interrupted", 1)
    assert "missed its heartbeats" in row["note"] and "no retry left (--retries 0)" in row["note"]
    assert len(ran(log)) == 3, "it did not run again"
    assert sandboxes(burst_home, "gone", live_only=True) == []


def test_a_bucket_outage_mid_run_loses_nothing(tmp_path, burst_home):
    log = tmp_path / "ran.log"
    command = f"sleep 1; echo $TAG >> {log}; mkdir -p results; echo $TAG > results/r.txt"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)] * 6)
    dispatcher = start_dispatcher("local", "outage", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                                  "--machines", "2", "--heartbeat", "2")
    bucket = burst_home / "buckets" / "outage"
    try:
        wait_until(lambda: len(ran(log)) >= 1, what="the first rows ran")
        away = bucket.with_name("outage.away")
        bucket.rename(away)
        bucket.write_text("the bucket is unavailable")  # every read and write fails, nothing is silently empty
        time.sleep(3)  # the outage's length, not an assertion
        bucket.unlink()
        away.rename(bucket)
        out, err = finish(dispatcher)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
        if bucket.is_file():
            bucket.unlink()
            bucket.with_name("outage.away").rename(bucket)
    assert dispatcher.returncode == 0, out + err
    rows = statuses("outage")
    assert {r["state"] for r in rows.values()} == {"done"}
    for tag in rows:
        assert (bucket / tag / "attempts" / "1" / "results" / "r.txt").read_text() == f"{tag}\n"
    assert sorted(set(ran(log))) == sorted(rows), "every row ran"
    assert sandboxes(burst_home, "outage", live_only=True) == []


def machine_states(bucket: Path) -> list[str]:
    found = []
    for path in (bucket / "state" / "machines").glob("*.json") if (bucket / "state" / "machines").is_dir() else []:
        try:
            found.append(json.loads(path.read_text())["state"])
        except (OSError, ValueError, KeyError):
            continue
    return found


KILL_POINTS = {
    "campaign recorded": lambda b: (b / "campaign.json").exists(),
    "machines launched": lambda b: "launched" in machine_states(b) or "installing" in machine_states(b),
    "installing": lambda b: "installing" in machine_states(b),
    "workers started": lambda b: any(b.glob("state/machines/*/worker.json")),
    "first row done": lambda b: any(b.glob("state/ended/*.json")),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_of_the_dispatcher_at_each_step_then_the_same_command_finishes_the_campaign(tmp_path, burst_home, point):
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG >> {log}; sleep 0.3")] * 4,
                                      install="#!/bin/bash\nsleep 1\n")
    args = ["local", "crash", str(jobfile), "-c", "-d", "--wait", "--install", str(install), "--machines", "2"]
    bucket = burst_home / "buckets" / "crash"
    dispatcher = start_dispatcher(*args)
    try:
        wait_until(lambda: KILL_POINTS[point](bucket), timeout=60, what=point)
        dispatcher.kill()  # SIGKILL: no clean-up of any kind
        dispatcher.wait(timeout=10)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    again = run_script(DISPATCHER, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(ran(log)) == [f"crash{i}" for i in range(4)], "every row exactly once"
    assert {r["state"] for r in statuses("crash").values()} == {"done"}
    wait_until(lambda: sandboxes(burst_home, "crash", live_only=True) == [], timeout=30, what="every machine ended")
    assert len(sandboxes(burst_home, "crash")) <= 4


def test_retry_failed_reruns_a_failing_row_and_keeps_both_attempts_logs(tmp_path, burst_home):
    command = 'echo "attempt $ATTEMPT"; [ "$ATTEMPT" = 2 ] || { echo "flaky: attempt $ATTEMPT" >&2; exit 3; }'
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)])
    plain = run_script(DISPATCHER, "local", "once", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert plain.returncode == 1 and statuses("once")["once0"]["attempt"] == 1, "a non-zero exit is the row's result"
    result = run_script(DISPATCHER, "local", "flaky", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--retry-failed")
    assert result.returncode == 0, result.stdout + result.stderr
    row = statuses("flaky")["flaky0"]
    assert (row["state"], row["attempt"], row["exit_code"]) == ("done", 2, 0)
    attempts = burst_home / "buckets" / "flaky" / "flaky0" / "attempts"
    assert (attempts / "1" / "logs" / "stderr.log").read_text() == "flaky: attempt 1\n"
    assert (attempts / "2" / "logs" / "stdout.log").read_text() == "attempt 2\n"


def test_three_machines_of_four_slots_walk_their_own_arcs_and_run_each_row_once(tmp_path, burst_home):
    """The candidate draw (a ring of tags from a random start, a jump after a lost race): exactly once still."""
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG:$BURST_INSTANCE_ID >> {log}")] * 240)
    result = run_script(DISPATCHER, "local", "arcs", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--machines", "3", "--slots", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = ran(log)
    assert Counter(line.split(":")[0] for line in lines) == Counter(f"arcs{i}" for i in range(240)), "each row once"
    by_machine = Counter(line.split(":")[1] for line in lines)
    assert len(by_machine) == 3 and min(by_machine.values()) > 0, by_machine
    rows = statuses("arcs")
    assert {r["state"] for r in rows.values()} == {"done"} and {r["attempt"] for r in rows.values()} == {1}
