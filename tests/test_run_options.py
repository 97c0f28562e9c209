"""Run options from config files and from the campaign's last run; a usage error is two lines."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO, run_script, status_report, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")
ROWS = [("t3.micro", "echo one"), ("t3.micro", "echo two"), ("t3.micro", "echo three")]


def dispatch(jobfile, *extra: str, job: str = "opts"):
    return run_script(DISPATCHER, "local", job, str(jobfile), "-c", "-d", "--wait", *extra)


def output(result) -> str:
    return result.stdout + result.stderr


def recorded(burst_home, job: str = "opts") -> dict:
    return json.loads((burst_home / "campaigns" / f"{job}.json").read_text())


def test_config_files_set_defaults_and_the_command_line_wins(tmp_path, isolated_home, burst_home):
    jobfile, _ = write_campaign(tmp_path / "bench", ROWS)
    home_config = isolated_home / ".config" / "burst" / "config.toml"
    home_config.parent.mkdir(parents=True)
    home_config.write_text('machines = 3\nslots = 2\nresults = ["out/*.csv"]\n')
    (tmp_path / "bench" / "burst.toml").write_text("machines = 1\nretry-failed = true\n")

    result = dispatch(jobfile, "--heartbeat", "5")
    assert result.returncode == 0, output(result)
    assert f"defaults from {home_config}: --machines 3, --slots 2, --results out/*.csv" in result.stdout
    assert "burst.toml: --machines 1, --retry-failed on" in result.stdout
    machines = status_report("opts")["machines"]
    assert len(machines) == 1, "burst.toml beside the job file wins over ~/.config/burst/config.toml"
    pool = recorded(burst_home)["pool"]
    assert (pool["machines"], pool["slots"], pool["retry_failed"], pool["heartbeat"]) == (1, "2", True, 5.0)
    assert recorded(burst_home)["results"] == ["out/*.csv"]

    again = dispatch(jobfile, "--machines", "2")
    assert again.returncode == 0, output(again)
    assert "changed since the last run:\n  --machines 1 → 2 (from the command line)" in again.stdout


def test_a_rerun_reuses_its_options_and_says_what_changed(tmp_path, burst_home):
    jobfile, _ = write_campaign(tmp_path / "bench", ROWS)
    first = dispatch(jobfile, "--machines", "1", "--retries", "0")
    assert first.returncode == 0, output(first)
    assert "changed since" not in first.stdout and "as in the last run" not in first.stdout

    second = dispatch(jobfile, "--force")
    assert second.returncode == 0, output(second)
    assert "as in the last run: --machines 1, --retries 0" in second.stdout
    assert "changed since" not in second.stdout
    assert len(status_report("opts")["machines"]) == 1 + 1, "one machine per run, as the first run said"
    assert recorded(burst_home)["pool"]["retries"] == 0

    (tmp_path / "bench" / "burst.toml").write_text("slots = 2\n")
    third = dispatch(jobfile, "--force", "--retries", "1")
    assert third.returncode == 0, output(third)
    assert ("changed since the last run:\n  --slots 1 → 2 (from "
            f"{tmp_path / 'bench' / 'burst.toml'})\n  --retries 0 → 1 (from the command line)") in third.stdout
    assert "as in the last run: --machines 1" in third.stdout
    assert recorded(burst_home)["typed_options"] == {"machines": 1, "retries": 1}


@pytest.mark.parametrize("text, message", [
    ("machnes = 2\n", "burst.toml: machnes is not an option of `burst run`; did you mean 'machines'? Fix or remove it."),
    ("slots = 0\n", "burst.toml: slots = 0 is not valid: '0' is not a whole number of at least 1, or 'auto'. Fix it in "),
    ("wait = 'yes'\n", "burst.toml: wait = 'yes' is not valid: write true or false."),
    ("slots =\n", "burst.toml is not valid TOML (Invalid value (at line 1, column 8)): fix it, or move it away."),
    ("market = 'cheap'\n", "burst.toml: market = 'cheap' is not valid: market is \"on-demand\", \"spot\" or \"spot-only\"."),
])
def test_a_bad_config_file_is_one_message_and_creates_nothing(tmp_path, burst_home, text, message):
    jobfile, _ = write_campaign(tmp_path / "bench", ROWS)
    (tmp_path / "bench" / "burst.toml").write_text(text)
    result = dispatch(jobfile)
    assert result.returncode == 2
    assert result.stderr.startswith("error: " + str(tmp_path / "bench")) and message in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr and not burst_home.exists()


def test_a_usage_error_is_one_usage_line_then_the_error(tmp_path, burst_home):
    jobfile, _ = write_campaign(tmp_path / "bench", ROWS)
    result = run_script(DISPATCHER, "local", "opts", str(jobfile), "-c", "-d", "--wiat")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "usage: dispatcher.py AMI JOB JOBFILE [options]",
        "error: unrecognized arguments: --wiat; did you mean --wait? (all options: dispatcher.py --help)",
    ]
    typo = run_script("-m", "burst", "stauts", "opts")
    assert typo.returncode == 2 and len(typo.stderr.splitlines()) == 2
    assert "invalid choice: 'stauts'" in typo.stderr and "did you mean 'status'?" in typo.stderr
    missing = run_script("-m", "burst", "logs", "opts")
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[0] == "usage: burst logs JOB TAG [options]"
    assert not burst_home.exists()


def test_a_rerun_cannot_move_the_campaign_elsewhere(tmp_path, burst_home):
    jobfile, _ = write_campaign(tmp_path / "bench", ROWS)
    first = dispatch(jobfile, "--node-root", "bench-runs")
    assert first.returncode == 0, output(first)
    before = recorded(burst_home)
    moved = dispatch(jobfile, "--node-root", "elsewhere")
    assert moved.returncode == 2
    assert ("job 'opts' runs with --node-root bench-runs; --node-root elsewhere would leave its machines and "
            "results behind") in moved.stderr.replace("\n", " ")
    assert recorded(burst_home) == before, "the record is as the last run left it"
    again = dispatch(jobfile, "--force")
    assert again.returncode == 0 and "as in the last run: --node-root bench-runs" in again.stdout
