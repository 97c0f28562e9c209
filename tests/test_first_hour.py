"""What a new user meets in their first hour (issue 20): mistakes caught before anything is
created, the preflight block, and campaign listings."""

from __future__ import annotations

import pytest

from burst.cli.preflight import command_file
from tests.conftest import REPO, run_script, write_campaign
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)

DISPATCHER = str(REPO / "dispatcher.py")


def created(burst_home) -> list[str]:
    return sorted(str(p.relative_to(burst_home)) for p in burst_home.rglob("*")) if burst_home.exists() else []


@pytest.mark.parametrize("command,expected", [
    ("python3 solve.py --n 3", "solve.py"),
    ("python3 -u solve.py", "solve.py"),
    ("python3.11 -W ignore tools/solve.py", "tools/solve.py"),
    ("bash run.sh", "run.sh"),
    ("bash -e run.sh", "run.sh"),
    ("./bin/x 1 2", "./bin/x"),
    ("julia --threads 4 x.jl", "x.jl"),
    ("Rscript x.R", "x.R"),
    ("OMP_NUM_THREADS=1 python3 solve.py", "solve.py"),
    ("python3 -c 'print(1)'", None),
    ("python3 -m pkg.main", None),
    ("bash -c 'echo hi'", None),
    ("echo hi; python3 solve.py", None),
    ("python3 $HOME/solve.py", None),
    ("/opt/tool/run", None),
    ("julia -e 'println(1)'", None),
])
def test_which_file_a_command_runs(command, expected):
    assert command_file(command) == expected


def test_missing_code_folder_is_refused_before_anything_is_created(tmp_path, burst_home):
    jobfile = tmp_path / "nocode.csv"
    jobfile.write_text("instance_type,command\nt3.micro,python3 solve.py 1\nt3.micro,python3 -u solve.py 2\n")
    for extra in ([], ["--dry-run"]):
        result = run_script(DISPATCHER, "local", "nocode", str(jobfile), "-c", "-d", "--wait", *extra)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{jobfile}:2: `python3 solve.py 1` runs solve.py, but there is no code folder" in result.stderr
        assert f"{tmp_path / 'nocode'} (the job file's name without .csv) does not exist" in result.stderr
        assert "1 more row(s)" in result.stderr and "Traceback" not in result.stderr
    assert created(burst_home) == []


def test_missing_script_in_the_code_folder_is_refused_unless_no_check(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "bash run.sh"), ("t3.micro", "./bin/solver 3")],
                                      code_files={"run.sh": "echo ran\n"})
    result = run_script(DISPATCHER, "local", "noscript", str(jobfile), "-c", "-d", "--install", str(install))
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"{jobfile}:3: `./bin/solver 3` runs ./bin/solver, which is not in the code folder "
            f"{tmp_path / 'jobs'}") in result.stderr
    assert created(burst_home) == []
    skipped = run_script(DISPATCHER, "local", "noscript", str(jobfile), "-c", "-d", "--install", str(install),
                         "--no-check", "--dry-run")
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr


@pytest.mark.parametrize("ami", ["local", "ami-0123456789abcdef0"])
def test_misspelt_instance_type_is_refused_with_the_closest(tmp_path, burst_home, ami):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo a"), ("t3.mikro", "echo b")])
    result = run_script(DISPATCHER, ami, "typo", str(jobfile), "-c", "-d", "--install", str(install), "--yes",
                        "--ssh-cidr", "127.0.0.1/32")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{jobfile}:3: instance type 't3.mikro' is not an EC2 instance type: did you mean 't3.micro'?" in result.stderr
    assert created(burst_home) == []


def test_preflight_block_locally(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "python3 s.py")] * 3 + [("c5.large", "python3 s.py")],
                                      code_files={"s.py": "print(1)\n"})
    result = run_script(DISPATCHER, "local", "pre", str(jobfile), "-c", "-d", "--install", str(install),
                        "--machines", "2", "--slots", "2", "--results", "out/*.csv", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("preflight:")
    assert lines[start + 1:start + 6] == [
        f"  job file  {jobfile}: 4 rows (1 × c5.large, 3 × t3.micro)",
        f"  code      {tmp_path / 'jobs'}",
        f"  install   {install}",
        "  results   out/*.csv",
        "  pool      c5.large: 1 sandbox × 2 slots, t3.micro: 2 sandboxes × 2 slots",
    ]
    assert not any(line.startswith("  AMI") for line in lines)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "jobs.csv").write_text("instance_type,command\nt3.micro,echo hi\n")
    result = run_script(DISPATCHER, "local", "bare", str(bare / "jobs.csv"), "-c", "-d", "--wait", cwd=bare)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  code      none (commands run in an empty folder)" in result.stdout
    assert "  install   none (no INSTALL.sh here or beside the job file, and no --install)" in result.stdout
    assert result.stdout.index("preflight:") < result.stdout.index("started 1 sandbox")


def test_preflight_block_on_ec2_names_the_ami_and_its_login_user(tmp_path, moto_ami, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo a")] * 2)
    result = run_script(DISPATCHER, moto_ami, "pre2", str(jobfile), "-c", "-d", "--install", str(install),
                        "--ssh-cidr", "127.0.0.1/32", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "  pool      t3.micro: 2 machines × 1 slot" in result.stdout
    assert f"  AMI       {moto_ami} (login user ubuntu)" in result.stdout
    assert result.stdout.index("preflight:") < result.stdout.index("dry run: nothing was created")


def test_list_and_bare_status_show_every_campaign_with_state_and_age(tmp_path, burst_home):
    import json
    from datetime import datetime, timedelta, timezone

    empty = run_script("-m", "burst", "list")
    assert empty.returncode == 0 and "no campaigns on this machine yet" in empty.stdout
    jobfile, install = write_campaign(tmp_path / "a", [("t3.micro", "true")] * 2)
    assert run_script(DISPATCHER, "local", "finished", str(jobfile), "-c", "-d", "--wait", "--install", str(install)).returncode == 0
    jobfile, install = write_campaign(tmp_path / "b", [("t3.micro", "sleep 60")])
    assert run_script(DISPATCHER, "local", "sleeping", str(jobfile), "-c", "-d", "--install", str(install)).returncode == 0
    record = burst_home / "campaigns" / "finished.json"
    data = json.loads(record.read_text())
    data["created"] = (datetime.now(timezone.utc) - timedelta(days=2, hours=1)).isoformat()
    record.write_text(json.dumps(data))
    try:
        for words in (["list"], ["status"]):
            result = run_script("-m", "burst", *words)
            assert result.returncode == 0, result.stdout + result.stderr
            lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
                     for line in result.stdout.splitlines() if line.startswith("│")}
            assert lines["finished"][:4] == ["local", "2", "done", "2d ago"], lines
            assert lines["sleeping"][:3] == ["local", "1", "running"], lines
            assert "1 sandbox live" in lines["sleeping"][-1]
            assert list(lines) == ["sleeping", "finished"], "the most recently run first"
    finally:
        assert run_script("-m", "burst", "terminate", "sleeping").returncode == 0
    stopped = run_script("-m", "burst", "list")
    line = next(line for line in stopped.stdout.splitlines() if "sleeping" in line)
    assert "│ stopped │" in line, "rows left to run and no machine: stopped"


def test_after_terminate_status_timeline_and_logs_tell_one_story(tmp_path, burst_home):
    import time

    from burst.control.campaign import Campaign
    from burst.control.campaign_record import load_record
    from burst.results.timeline import campaign_timeline
    from tests.conftest import statuses, wait_until

    command = 'if [ "$ATTEMPT" = 1 ]; then echo first-try; sleep 120; fi; echo attempt-$ATTEMPT'
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)])
    args = (DISPATCHER, "local", "ended", str(jobfile), "-c", "-d", "--install", str(install))
    assert run_script(*args).returncode == 0
    wait_until(lambda: statuses("ended")["ended0"]["state"] == "running", what="the row to run")
    first_machine = statuses("ended")["ended0"]["instance_id"]
    asked_at = time.time()
    ended = run_script("-m", "burst", "terminate", "ended")
    assert ended.returncode == 0 and "terminated 1 machine(s) of job ended" in ended.stdout, ended.stdout + ended.stderr

    status = run_script("-m", "burst", "status", "ended")
    assert status.returncode == 3, status.stdout + status.stderr  # a row is still to run
    machines = [line for line in status.stdout.splitlines() if line.startswith("│ i-")]
    assert machines and all("│ ended " in line for line in machines), status.stdout
    assert "worker working" not in status.stdout
    assert f"ended0: attempt 1 lost its machine {first_machine}" in status.stdout
    assert "attempt 1: attempt 1" not in status.stdout + status.stderr
    assert "it runs again when the campaign is resumed" in status.stderr and "; it runs again\n" not in status.stderr

    record = load_record("ended")
    campaign = Campaign(record, record.provider(), record.storage(), report=lambda _: None)
    try:
        lane = campaign_timeline(campaign).lane(first_machine)
    finally:
        campaign.fleet.close()
    assert lane.end is not None and lane.end >= asked_at, "the machine ends where it was terminated"
    assert [(bar.tag, bar.attempt) for bar in lane.bars] == [("ended0", 1)], "with the attempt it was running"
    assert lane.bars[0].end == lane.end

    resumed = run_script(*args, "--wait")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    second_machine = statuses("ended")["ended0"]["instance_id"]
    assert second_machine != first_machine
    last = run_script("-m", "burst", "logs", "ended", "ended0")
    assert last.returncode == 0 and "attempt-2" in last.stdout and f"ended0 attempt 2 stdout.log ({second_machine})" in last.stdout
    first = run_script("-m", "burst", "logs", "ended", "ended0", "--attempt", "1")
    assert first.returncode == 0, first.stderr
    assert f"ended0 attempt 1 stdout.log ({first_machine})" in first.stdout and second_machine not in first.stdout
    missing = run_script("-m", "burst", "logs", "ended", "ended0", "--attempt", "3")
    assert missing.returncode == 2 and "ended0 has no attempt 3: its attempts are 1, 2" in missing.stderr, missing.stderr


def test_status_json_into_a_closed_pipe_ends_quietly(tmp_path, burst_home):
    import subprocess
    import sys

    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")] * 200)
    queued = run_script(DISPATCHER, "local", "piped", str(jobfile), "-d", "--install", str(install))
    assert queued.returncode == 0, queued.stdout + queued.stderr
    whole = run_script("-m", "burst", "status", "piped", "--json")
    assert len(whole.stdout) > 65536, "more than a pipe holds: the reader leaves while burst still writes"
    for _ in range(3):
        piped = subprocess.run(f"{sys.executable} -m burst status piped --json | head -c 100", shell=True, cwd=REPO,
                               capture_output=True, text=True, timeout=120)
        assert piped.stdout == whole.stdout[:100]
        assert piped.stderr == "", piped.stderr


def test_wording_counts_and_defaults(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    first = run_script(DISPATCHER, "local", "words", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "words: 1 row in " in first.stdout and "1 rows" not in first.stdout
    again = run_script(DISPATCHER, "local", "words", str(jobfile), "-c", "-d", "--install", str(install),
                       "--machines", "1", "--dry-run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "--machines the default (one per row on EC2, the CPU count locally) → 1 (from the command line)" in again.stdout
    assert "none →" not in again.stdout


def test_a_python_crash_shows_its_exception_once_with_short_paths(tmp_path, burst_home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    crash = "import sys\ndef solve(n):\n    raise ValueError(f'size must be positive, not {n}')\nsolve(int(sys.argv[1]))\n"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "python3 crash.py -5"), ("t3.micro", "python3 missing.py")],
                                      code_files={"crash.py": crash})
    result = run_script(DISPATCHER, "local", "crash", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--no-check")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    live = next(line for line in out.splitlines() if line.startswith("crash0 failed"))
    assert live == ("crash0 failed: command exited with status 1; the end of its stderr: "
                    "ValueError: size must be positive, not -5"), live
    assert "Traceback" not in live
    assert out.count("size must be positive, not -5") == 2, "the live line and the table's note cell, nothing more"
    assert "crash0: command exited" not in out, "the note below the table is not repeated after the live line"
    gone = next(line for line in out.splitlines() if line.startswith("crash1 failed"))
    assert "can't open file 'missing.py'" in gone, "paths inside the run's folder are shown relative to it"
    from tests.conftest import statuses

    note = statuses("crash")["crash0"]["note"]
    assert note.startswith("command exited with status 1; the end of its stderr:\n") and 'File "crash.py", line 4' in note


def test_a_broken_install_is_told_once_and_starts_no_more_machines_than_retries_allow(tmp_path, burst_home):
    from tests.test_local_campaign import registry

    install = "#!/bin/bash\necho 'fetching libfoo (step 1 of 2)'\necho 'E: Unable to locate package libfoo-dev'\nexit 100\n"
    jobfile, install_file = write_campaign(tmp_path, [("t3.micro", "true")] * 3, install=install)
    result = run_script(DISPATCHER, "local", "broken", str(jobfile), "-c", "-d", "--wait", "--install", str(install_file),
                        "--machines", "2", "--retries", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    machines = [i for i, r in registry(burst_home).items() if r["job"] == "broken"]
    assert len(machines) == 3, "--retries 2: three installs in all, never a fourth machine"
    assert result.stdout.count("fetching libfoo (step 1 of 2)") == 1, result.stdout
    assert result.stdout.count("install.log as on ") == 2
    assert "broken0, broken1, broken2: INSTALL.sh failed on 3 machine(s) of type t3.micro" in result.stdout


def test_rerunning_a_finished_campaign_says_nothing_ran_and_how_to_rerun(tmp_path, burst_home):
    from tests.conftest import statuses

    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true"), ("t3.micro", "echo nope >&2; exit 3")])
    args = (DISPATCHER, "local", "again", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert run_script(*args).returncode == 1
    again = run_script(*args)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "nothing ran: every row of again had already ended (1 done, 1 failed)" in again.stdout
    assert "--force" in again.stdout and "--retry-failed" in again.stdout
    assert "again1 failed" not in again.stdout and "rows in" not in again.stdout and "started" not in again.stdout
    retried = run_script(*args, "--retry-failed", "--retries", "0")
    assert "again1 rerun (--retry-failed): rerunning it as attempt 2" in retried.stdout, retried.stdout
    assert {t: s["attempt"] for t, s in statuses("again").items()} == {"again0": 1, "again1": 2}


def test_the_live_view_counts_in_plain_english():
    import io

    from rich.console import Console

    from burst.cli.progress import LiveProgress, summary
    from burst.records import JobStatus

    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False)
    view = LiveProgress(console, "words", local=True)
    rows = {"words0": JobStatus(job="words", tag="words0", state="pending", instance_type="t3.micro")}
    machines = [{"id": "i-local-1", "instance_type": "t3.micro", "state": "installing", "live": True, "launched": ""}]
    console.print(view.render(rows, machines))
    assert "sandboxes being set up" in out.getvalue() and "sandboxs" not in out.getvalue()
    assert summary("words", ["words0"], rows, 3.0, "cost $0")[0].startswith("words: 1 row in 3s")
