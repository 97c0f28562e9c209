"""A row's results folders exist, empty, when its command starts: ``echo x > results/a.txt`` just works."""

from __future__ import annotations

from tests.conftest import REPO, run_script, statuses, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")


def test_the_default_results_folder_exists_before_the_command_runs(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo x > results/a.txt")])
    result = run_script(DISPATCHER, "local", "folders", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert result.returncode == 0, result.stdout + result.stderr
    row = statuses("folders")["folders0"]
    assert (row["state"], row["exit_code"], row["warnings"]) == ("done", 0, [])
    saved = burst_home / "buckets" / "folders" / "folders0" / "attempts" / "1" / "results"
    assert (saved / "a.txt").read_text() == "x\n"


def test_the_fixed_folder_of_every_pattern_exists_and_holds_no_file_of_the_code_folder(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo 1,2 > out/n.csv && echo done > logs/deep/run.log")],
                                      code_files={"out/stale.csv": "from a test run on the laptop\n"})
    result = run_script(DISPATCHER, "local", "patterns", str(jobfile), "-c", "-d", "--wait", "--install", str(install),
                        "--results", "out/*.csv", "--results", "logs/deep/*.log")
    assert result.returncode == 0, result.stdout + result.stderr
    saved = burst_home / "buckets" / "patterns" / "patterns0" / "attempts" / "1" / "results"
    assert sorted(p.name for p in saved.iterdir()) == ["n.csv", "run.log"], "the code folder's stale.csv is not this row's"
    assert (saved / "n.csv").read_text() == "1,2\n" and (saved / "run.log").read_text() == "done\n"
