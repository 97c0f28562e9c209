"""Tables a person reads at 80 columns, in a terminal or a CI log: one line per row, whole notes below."""

from __future__ import annotations

import io
import os
import shlex

from rich.console import Console

from burst.cli.tables import print_status
from burst.records import JobStatus
from tests.conftest import REPO, run_script, write_campaign

LONG_NOTE = ("command exited with status 1: Traceback (most recent call last): a long Python error that would "
             "take a dozen lines in a narrow column\nsecond line of the note")


def rows() -> dict[str, JobStatus]:
    return {
        "wide0": JobStatus(job="wide", tag="wide0", state="done", instance_type="c5.large", exit_code=0, attempt=1,
                           seconds=12.5, command="python3 bench.py --size 200000 --repeat 2 --label 'sorted, large'",
                           instance_id="i-0123456789abcdef0"),
        "wide1": JobStatus(job="wide", tag="wide1", state="failed", instance_type="t3.micro", exit_code=1, attempt=2,
                           seconds=0.4, command="python3 bench.py --size -5", instance_id="i-0fedcba9876543210",
                           note=LONG_NOTE),
    }


def test_at_80_columns_each_row_is_one_line_and_the_whole_note_follows():
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=False)
    print_status(console, "wide", ["wide0", "wide1"], rows())
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines if line[:1] in "┏┃┡│└"), lines
    for tag in ("wide0", "wide1"):
        assert sum(line.startswith(f"│ {tag}") for line in lines) == 1, lines
    (row,) = [line for line in lines if line.startswith("│ wide1")]
    assert "failed" in row and "…" in row  # the note, cut
    assert f"wide1: {LONG_NOTE.splitlines()[0]}" in lines and "  second line of the note" in lines
    assert "\x1b[" not in out.getvalue(), "no colour codes when the output is not a terminal"


def test_the_command_gets_room_on_a_wider_terminal_and_wide_shows_everything():
    out = io.StringIO()
    print_status(Console(file=out, width=120, force_terminal=False), "wide", ["wide0", "wide1"], rows())
    assert "python3 bench.py --size -5" in out.getvalue()
    out = io.StringIO()
    print_status(Console(file=out, width=80, force_terminal=False), "wide", ["wide0", "wide1"], rows(), wide=True)
    text = out.getvalue()
    assert "--label 'sorted, large'" in text and "i-0fedcba9876543210" in text


def test_status_through_a_pipe_at_80_columns_and_its_exit_codes(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    wait = tmp_path / "go"
    jobfile, install = write_campaign(tmp_path, [
        ("t3.micro", "echo fine"),
        ("t3.micro", "echo 'a very long error message that explains, at length, what went wrong' >&2; exit 3"),
        ("t3.micro", f"while [ ! -e {shlex.quote(str(wait))} ]; do sleep 0.1; done"),
    ])
    started = run_script(str(REPO / "dispatcher.py"), "local", "pipe", str(jobfile), "-c", "-d", "--install", str(install))
    assert started.returncode == 0, started.stderr
    running = run_script("-m", "burst", "status", "pipe")
    assert running.returncode == 3, "a row still running: exit 3 (though another failed already)"
    wait.touch()
    assert run_script(str(REPO / "dispatcher.py"), "local", "pipe", str(jobfile), "-d", "--wait",
                      "--install", str(install)).returncode == 1
    final = run_script("-m", "burst", "status", "pipe")
    assert final.returncode == 1, "a failed row: exit 1"
    lines = final.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines if line[:1] in "┏┃┡│└"), lines
    for tag in ("pipe0", "pipe1", "pipe2"):
        assert sum(line.startswith(f"│ {tag} ") for line in lines) == 1, final.stdout
    assert any(line.startswith("pipe1: command exited with status 3") and "explains, at length" in line for line in lines)
    assert os.environ["COLUMNS"] == "80"


def test_status_exits_0_when_every_row_is_done_and_a_misspelt_job_gets_a_suggestion_first(tmp_path):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")])
    assert run_script(str(REPO / "dispatcher.py"), "local", "alldone", str(jobfile), "-c", "-d", "--wait",
                      "--install", str(install)).returncode == 0
    assert run_script("-m", "burst", "status", "alldone").returncode == 0
    typo = run_script("-m", "burst", "status", "aldone")
    assert typo.returncode == 2
    assert typo.stderr.startswith("error: no job 'aldone'; did you mean 'alldone'?"), typo.stderr
