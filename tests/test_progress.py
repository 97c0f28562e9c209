"""What a person sees while --wait runs on a terminal, and the summary at its end."""

from __future__ import annotations

import os
import pty
import select
import shlex
import subprocess
import sys

from tests.conftest import REPO, run_script, wait_until, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")


def test_a_failure_shows_while_the_others_run_and_the_end_says_what_next(tmp_path):
    release = tmp_path / "release"
    jobfile, install = write_campaign(tmp_path, [
        ("t3.micro", "echo 'no such input file' >&2; exit 4"),
        ("t3.micro", f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.1; done"),
    ])
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="100", LINES="40", TERM="xterm")
    process = subprocess.Popen([sys.executable, DISPATCHER, "local", "live", str(jobfile), "-c", "-d", "--wait",
                                "--install", str(install)], cwd=REPO, stdin=follower, stdout=follower,
                               stderr=follower, env=env, close_fds=True)
    os.close(follower)
    seen = bytearray()

    def read_some() -> bool:
        """Read what the terminal shows (waiting half a second at most); True once nothing more can come."""
        if not select.select([leader], [], [], 0.5)[0]:
            return process.poll() is not None
        try:
            seen.extend(os.read(leader, 65536))
        except OSError:
            return True
        return False

    try:
        wait_until(lambda: read_some() or b"live0 failed: command exited with status 4" in seen, timeout=120,
                   what="the failure, shown as it happens")
        wait_until(lambda: read_some() or b"running" in seen and b"live1" in seen, timeout=60,
                   what="the live table of running rows")
        assert process.poll() is None, "the other row still runs"
        release.touch()
        while not read_some():
            pass
    finally:
        release.touch()
        os.close(leader)
    assert process.wait(timeout=60) == 1
    text = seen.decode(errors="replace")
    assert "why live0 failed: python -m burst logs live live0" in text
    assert "results: python -m burst download live results/live --merge" in text
    assert "live: 2 rows in" in text and "1 done, 1 failed" in text


def test_local_mode_speaks_of_sandboxes(tmp_path):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    result = run_script(DISPATCHER, "local", "words", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert result.returncode == 0
    assert "started 1 sandbox(es)" in result.stdout
    assert "machine" not in result.stdout.split("job words")[0], result.stdout
