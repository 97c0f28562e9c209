"""``ssh JOB TAG`` and ``logs JOB TAG -f``: getting at a running row's machine, locally and over real SSH."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading

from tests.conftest import REPO, run_script, statuses, wait_until, write_campaign
from tests.motoserver import moto_ami, moto_server  # noqa: F401  (fixtures)
from tests.sshd import sshd_factory  # noqa: F401  (fixture)
from tests.test_ec2_campaign import DISPATCHER, make_nodes  # noqa: F401  (fixture)


def start_waiting_row(tmp_path, job: str, image: str = "local", extra: tuple = ()) -> tuple:
    release = tmp_path / "release"
    command = (f"echo line1; echo line2 >&2; echo line3; while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.1; done; "
               "echo last")
    jobfile, install = write_campaign(tmp_path, [("t3.micro", command)])
    started = run_script(DISPATCHER, image, job, str(jobfile), "-c", "-d", "--no-calibrate", "--install", str(install), *extra)
    assert started.returncode == 0, started.stdout + started.stderr
    wait_until(lambda: statuses(job)[f"{job}0"]["state"] == "running", timeout=120, what="the row running")
    return release


def test_logs_follow_shows_lines_as_they_are_written_and_returns_when_the_row_ends(tmp_path):
    release = start_waiting_row(tmp_path, "follow")
    follower = subprocess.Popen([sys.executable, "-m", "burst", "logs", "follow", "follow0", "-f"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    wait_until(lambda: "line3\n" in lines, timeout=60, what="the row's output so far")
    assert follower.poll() is None, "still following: the row runs"
    assert "line2\n" not in lines, "stdout only"
    release.touch()
    assert follower.wait(timeout=60) == 0, follower.stderr.read()
    reader.join(timeout=10)
    assert lines == ["line1\n", "line3\n", "last\n"]
    err = run_script("-m", "burst", "logs", "follow", "follow0", "-f", "--stream", "stderr")
    assert err.returncode == 0 and err.stdout == "line2\n", "an ended row: its saved log"


def test_ssh_into_a_sandbox_runs_in_the_rows_code_folder(tmp_path):
    release = start_waiting_row(tmp_path, "shell")
    try:
        printed = run_script("-m", "burst", "ssh", "shell", "shell0", "--print")
        assert printed.returncode == 0, printed.stderr
        assert "/runs/shell0.1/code && " in printed.stdout and printed.stdout.strip().endswith("bash -i")
        ran = run_script("-m", "burst", "ssh", "shell", "shell0", "pwd; echo $BURST_INSTANCE_ID")
        assert ran.returncode == 0, ran.stderr
        folder, marker = ran.stdout.split()
        assert folder.endswith("/runs/shell0.1/code") and marker == statuses("shell")["shell0"]["instance_id"]
    finally:
        release.touch()


def test_ssh_to_an_ec2_machine_uses_the_jobs_key_known_hosts_and_ssh_config(tmp_path, moto_ami, make_nodes):  # noqa: F811
    job = "sshjob"
    nodes = make_nodes(job)
    release = start_waiting_row(tmp_path, job, moto_ami, ("--install", str(tmp_path / "INSTALL.sh"), *nodes.args()))
    try:
        printed = run_script("-m", "burst", "ssh", job, f"{job}0", "--print")
        assert printed.returncode == 0, printed.stderr
        argv = shlex.split(printed.stdout)
        assert argv[:2] == ["ssh", "-t"] and ["-F", str(nodes.ssh_config)] == argv[argv.index("-F"):argv.index("-F") + 2]
        assert ["-i", str(nodes.pem)] == argv[argv.index("-i"):argv.index("-i") + 2]
        assert any(a.startswith("UserKnownHostsFile=") and a.endswith(f"campaigns/{job}.known_hosts") for a in argv)
        ran = run_script("-m", "burst", "ssh", job, f"{job}0", "true")  # the real ssh, to the real sshd
        assert ran.returncode == 0, ran.stderr
        pwd = run_script("-m", "burst", "ssh", job, f"{job}0", "pwd")
        assert pwd.stdout.strip().endswith(f"/runs/{job}0.1/code"), pwd.stdout + pwd.stderr
    finally:
        release.touch()
        run_script("-m", "burst", "terminate", job)
