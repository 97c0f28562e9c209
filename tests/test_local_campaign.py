"""A whole campaign on this machine (AMI=local), through the same seams EC2 uses."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from datetime import datetime

from burst.providers.local import SandboxRegistry
from tests.conftest import REPO, run_script, status_report, statuses, wait_until, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")
GET_FILES = str(REPO / "get_s3_files.py")


def registry(burst_home) -> dict:
    path = SandboxRegistry(burst_home).path
    return json.loads(path.read_text()) if path.exists() else {}


def live_instances(burst_home, job: str) -> list[str]:
    return [i for i, r in registry(burst_home).items() if r["job"] == job and r["state"] == "running"]


def test_demo_campaign_end_to_end(tmp_path, burst_home):
    """The README's commands: dispatch and wait, status, download and merge."""
    result = run_script(DISPATCHER, "local", "demo", "awsjobs/demo.csv", "-c", "-d", "--wait")
    assert result.returncode == 1, result.stderr  # the demo's last row fails on purpose
    assert "started 2 sandbox(es) of type t3.micro" in result.stdout, "local pools default to the CPU count"
    states = statuses("demo")
    assert {t: (s["state"], s["exit_code"]) for t, s in states.items()} == {
        "demo0": ("done", 0), "demo1": ("done", 0), "demo2": ("done", 0), "demo3": ("done", 0), "demo4": ("failed", 2),
    }
    assert "--size must be positive" in states["demo4"]["note"]
    assert live_instances(burst_home, "demo") == [], "every machine ends itself"

    table = run_script("-m", "burst", "status", "demo")
    assert table.returncode == 1 and "demo4" in table.stdout and "failed" in table.stdout  # 1: a row failed

    out = tmp_path / "out"
    fetched = run_script(GET_FILES, "demo", str(out), "--merge")
    assert fetched.returncode == 0, fetched.stderr
    assert (out / "demo4" / "attempts" / "1" / "logs" / "stderr.log").read_text().startswith("bench.py: --size must be positive")
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[:4] == ["job", "tag", "instance_type", "exit_code"]
    assert {"started", "ended", "seconds", "host", "cpu_model", "kernel", "seconds_min"} <= set(header)
    assert header.index("kernel") < header.index("seconds_min"), "provenance comes before the results"
    by_tag = {row["tag"]: row for row in rows}
    assert by_tag["demo3"]["label"] == "sorted, large" and by_tag["demo3"]["size"] == "200000"
    assert by_tag["demo4"]["exit_code"] == "2" and by_tag["demo4"]["seconds_min"] == ""

    again = run_script(GET_FILES, "demo", str(out))
    assert "0 file(s)" in again.stdout and "already complete" in again.stdout


def test_all_passing_campaign_exits_0_and_keeps_logs(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo out-$TAG; echo err-$TAG >&2; mkdir -p results; echo x,1 > results/r.csv")] * 2)
    result = run_script(DISPATCHER, "local", "okay", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert result.returncode == 0, result.stdout + result.stderr
    logs = run_script("-m", "burst", "logs", "okay", "okay1")
    assert "out-okay1" in logs.stdout and "err-okay1" in logs.stdout and "installed" in logs.stdout
    assert (burst_home / "buckets" / "okay" / "okay0" / "attempts" / "1" / "results" / "r.csv").read_text() == "x,1\n"


def test_failing_command_saves_logs_and_outputs(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "mkdir -p results; echo partial > results/p.txt; echo boom >&2; exit 7")])
    result = run_script(DISPATCHER, "local", "fails", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert result.returncode == 1
    status = statuses("fails")["fails0"]
    assert (status["state"], status["exit_code"]) == ("failed", 7)
    assert "boom" in status["note"]
    bucket = burst_home / "buckets" / "fails" / "fails0"
    assert (bucket / "attempts" / "1" / "logs" / "stderr.log").read_text() == "boom\n"
    assert (bucket / "attempts" / "1" / "results" / "p.txt").read_text() == "partial\n"
    assert live_instances(burst_home, "fails") == []


def test_a_failing_install_ends_its_machine_and_fails_the_rows_once_retries_are_spent(tmp_path, burst_home):
    install = '#!/bin/bash\necho "checking $INSTANCE_ID"\necho "libfoo not found" >&2; exit 3\n'
    jobfile, install_file = write_campaign(tmp_path, [("t3.micro", "echo ran")] * 3, install=install)
    result = run_script(DISPATCHER, "local", "mix", str(jobfile), "-c", "-d", "--wait", "--install", str(install_file),
                        "--machines", "1", "--retries", "1")
    assert result.returncode == 1
    states = statuses("mix")
    assert {states[t]["state"] for t in ("mix0", "mix1", "mix2")} == {"failed"}
    assert "INSTALL.sh failed on 2 machine(s) of type t3.micro" in states["mix1"]["note"]
    assert "libfoo not found" in states["mix1"]["note"]
    machines = status_report("mix")["machines"]
    assert len(machines) == 2, "--retries 1: one more machine after the first failed install, then no more"
    assert all(m["state"] == "install-failed" and "INSTALL.sh exited with status 3" in m["note"] for m in machines)
    bucket = burst_home / "buckets" / "mix" / "machines"
    assert all("libfoo not found" in (bucket / m["id"] / "install.log").read_text() for m in machines)
    assert live_instances(burst_home, "mix") == [], "a machine whose install failed is ended"


def test_missing_outputs_are_a_warning_not_a_failure(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo no results written")])
    result = run_script(DISPATCHER, "local", "noout", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--results", "results/**", "--results", "*.dat")
    assert result.returncode == 0
    status = statuses("noout")["noout0"]
    assert status["state"] == "done"
    assert status["warnings"] == ["no output matches 'results/**' in the code folder",
                                  "no output matches '*.dat' in the code folder"]


def test_command_with_quotes_commas_vars_and_non_ascii_runs_verbatim(tmp_path, burst_home):
    command = """mkdir -p results; printf '%s|%s|%s\\n' "it's, quoted" "$TAG $JOB $INSTANCE_TYPE" 'naïve — 日本 $NOT_EXPANDED' > results/out.txt"""
    jobfile, install = write_campaign(tmp_path, [("c5.large", command)])
    result = run_script(DISPATCHER, "local", "quoting", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--node-root", "bench runs/it's here")  # a node folder that needs quoting too
    assert result.returncode == 0, result.stderr
    saved = (burst_home / "buckets" / "quoting" / "quoting0" / "attempts" / "1" / "results" / "out.txt").read_text(encoding="utf-8")
    assert saved == "it's, quoted|quoting0 quoting c5.large|naïve — 日本 $NOT_EXPANDED\n"
    assert statuses("quoting")["quoting0"]["command"] == command


def test_code_folder_is_copied_and_commands_run_in_it(tmp_path, burst_home):
    jobfile, install = write_campaign(
        tmp_path, [("t3.micro", "python3 tool.py")],
        code_files={"tool.py": "import os\nos.makedirs('results', exist_ok=True)\nopen('results/cwd.txt', 'w').write(os.path.basename(os.getcwd()))\n"},
    )
    assert run_script(DISPATCHER, "local", "code", str(jobfile), "-c", "-d", "--wait", "--install", str(install)).returncode == 0
    assert (burst_home / "buckets" / "code" / "code0" / "attempts" / "1" / "results" / "cwd.txt").read_text() == "code"


def test_terminate_from_another_process_ends_every_sandbox_and_a_rerun_resumes(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo $$ > $HOME/pid-$TAG; sleep 300")] * 2)
    args = [DISPATCHER, "local", "long", str(jobfile), "-c", "-d", "--install", str(install), "--machines", "2"]
    assert run_script(*args).returncode == 0
    wait_until(lambda: {s["state"] for s in statuses("long").values()} == {"running"}, what="both commands running")
    homes = [SandboxRegistry(burst_home).home_of(i) for i in live_instances(burst_home, "long")]
    pids = [int(wait_until(lambda: [p.read_text().strip() for h in homes for p in h.glob("pid-*")], what="pid files")[0])]

    terminated = run_script("-m", "burst", "terminate", "long")
    assert terminated.returncode == 0 and "terminated 2 machine(s)" in terminated.stdout
    assert live_instances(burst_home, "long") == []
    for pid in pids:
        wait_until(lambda pid=pid: not process_alive(pid), timeout=10, what=f"command {pid} killed")
    rows = statuses("long")  # the reconcile sees the machines gone: both rows wait for their next attempt
    assert {(r["state"], r["attempt"]) for r in rows.values()} == {("pending", 2)}


def machine_states(job: str) -> list[str]:
    try:
        return [m["state"] for m in status_report(job)["machines"]]
    except AssertionError:  # the campaign record is not written yet
        return []


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]
    return state != "Z"


def test_rerunning_create_and_dispatch_launches_and_starts_nothing_twice(tmp_path, burst_home):
    starts = tmp_path / "starts"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG >> {starts}; sleep 300")] * 2 + [("c5.large", "echo quick")])
    args = [DISPATCHER, "local", "again", str(jobfile), "-c", "-d", "--install", str(install), "--machines", "2"]
    try:
        first = run_script(*args)
        assert first.returncode == 0, first.stderr
        wait_until(lambda: statuses("again")["again2"]["state"] == "done", what="the quick job")
        wait_until(lambda: starts.exists() and len(starts.read_text().split()) == 2, what="both long rows started")
        before = live_instances(burst_home, "again")
        assert len(before) == 2

        second = run_script(*args)
        assert second.returncode == 0, second.stderr
        assert "started" not in second.stdout.replace("its worker started", "")
        assert live_instances(burst_home, "again") == before
        assert len(registry(burst_home)) == 3
        assert sorted(starts.read_text().split()) == ["again0", "again1"]
    finally:
        run_script("-m", "burst", "terminate", "again")


def test_failed_upload_leaves_the_machine_running_and_says_why(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "mkdir -p results; echo 1 > results/a.txt")])
    # the tag's results/ in the bucket is a file: every upload below it fails
    blocked = burst_home / "buckets" / "keep" / "keep0" / "attempts" / "1" / "results"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    try:
        result = run_script(DISPATCHER, "local", "keep", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                            "--save-patience", "3")
        assert result.returncode == 1
        status = statuses("keep")["keep0"]
        assert status["state"] == "failed"
        assert "upload failed" in status["note"] and "keep0/attempts/1/results/a.txt" in status["note"]
        assert len(live_instances(burst_home, "keep")) == 1, "outputs stay on the machine that still has them"
    finally:
        run_script("-m", "burst", "terminate", "keep")


def test_cleanup_asks_refuses_while_machines_live_and_deletes_with_yes(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "sleep 300")])
    assert run_script(DISPATCHER, "local", "tidy", str(jobfile), "-c", "-d", "--install", str(install)).returncode == 0
    refused = run_script("-m", "burst", "cleanup", "tidy", "--yes")
    assert refused.returncode == 2 and "still has 1 live machine" in refused.stderr
    assert run_script("-m", "burst", "terminate", "tidy").returncode == 0
    unconfirmed = run_script("-m", "burst", "cleanup", "tidy")
    assert unconfirmed.returncode == 2 and "confirm with --yes" in unconfirmed.stderr
    assert (burst_home / "buckets" / "tidy").exists()
    done = run_script("-m", "burst", "cleanup", "tidy", "--yes")
    assert done.returncode == 0, done.stderr
    assert not (burst_home / "buckets" / "tidy").exists()
    said = done.stdout.replace("\n", " ")  # cleanup says what it removed
    for item in ("removed for job tidy:", "file(s) of file://", "1 ended sandbox(es)", "bucket folder", "the campaign record"):
        assert item in said, done.stdout
    gone = run_script("-m", "burst", "status", "tidy")
    assert gone.returncode == 2 and "no campaign named 'tidy'" in gone.stderr


def test_unknown_job_or_tag_is_a_clear_error(tmp_path):
    result = run_script("-m", "burst", "status", "nosuchjob")
    assert result.returncode == 2 and "no campaign named 'nosuchjob'" in result.stderr and "Traceback" not in result.stderr
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    assert run_script(DISPATCHER, "local", "known", str(jobfile), "-c", "-d", "--wait", "--install", str(install)).returncode == 0
    logs = run_script("-m", "burst", "logs", "known", "known7")
    assert logs.returncode == 2 and "has no tag 'known7'" in logs.stderr and "known0" in logs.stderr


def test_status_times_are_the_commands_own(tmp_path, burst_home):
    """started/ended come from the runner's clock around the command; seconds is their difference."""
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "python3 -c 'import time; time.sleep(0.5)'")])
    assert run_script(DISPATCHER, "local", "timing", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                      "--results", "none").returncode == 0
    status = statuses("timing")["timing0"]
    started, ended = (datetime.fromisoformat(status[k]) for k in ("started", "ended"))
    assert abs((ended - started).total_seconds() - status["seconds"]) < 0.002
    assert status["seconds"] >= 0.5, "the command's sleep is inside the measured time"


def test_ctrl_c_during_a_long_install_returns_at_once_and_the_campaign_resumes(tmp_path, burst_home):
    install = "#!/bin/bash\nwhile [ ! -e \"$BURST_NODE_DIR/go\" ]; do sleep 0.1; done\n"
    jobfile, install_file = write_campaign(tmp_path, [("t3.micro", "echo resumed")], install=install)
    args = [sys.executable, DISPATCHER, "local", "intr", str(jobfile), "-c", "-d", "--wait", "--install", str(install_file)]
    dispatcher = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: machine_states("intr") == ["installing"], what="install started")
        dispatcher.send_signal(signal.SIGINT)
        out, err = dispatcher.communicate(timeout=30)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 130
    assert "machines keep running" in err and "Traceback" not in err
    assert "status intr`" in err and "terminate intr`" in err, "the note names the job"
    (machine,) = live_instances(burst_home, "intr")
    (SandboxRegistry(burst_home).home_of(machine) / "burst" / "intr" / machine / "go").touch()
    resumed = run_script(*args[1:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert statuses("intr")["intr0"]["state"] == "done"


def test_a_second_dispatcher_for_the_same_job_is_refused_while_one_runs(tmp_path, burst_home):
    install = "#!/bin/bash\nwhile [ ! -e \"$BURST_NODE_DIR/go\" ]; do sleep 0.1; done\n"
    jobfile, install_file = write_campaign(tmp_path, [("t3.micro", "true")], install=install)
    args = [DISPATCHER, "local", "busy", str(jobfile), "-c", "-d", "--wait", "--install", str(install_file)]
    first = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: machine_states("busy") == ["installing"], what="install started")
        second = run_script(*args)
        assert second.returncode == 2
        assert f"is being dispatched right now by pid {first.pid}" in second.stderr
        assert len(live_instances(burst_home, "busy")) == 1
        (machine,) = live_instances(burst_home, "busy")
        (SandboxRegistry(burst_home).home_of(machine) / "burst" / "busy" / machine / "go").touch()
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0
    assert not (burst_home / "campaigns" / "busy.lock").exists(), "the lock is released and removed on exit"
