"""A campaign of thousands of rows: `status` and the end of `--wait` fit a screen; `--all` and `--json` give every row.

The bucket is written the way workers write it (burst's own claims and status
store): rows done with a warning they all share, rows failed for two reasons,
rows running on a live sandbox, rows not started yet.
"""

from __future__ import annotations

import json
import re

from burst.control.campaign_record import CampaignRecord
from burst.node import claims
from burst.node.status_store import save_status
from burst.protocol import DONE, FAILED
from burst.providers import make_provider
from burst.providers.base import LaunchSpec, ProviderOptions
from burst.records import Job, JobStatus
from tests.conftest import REPO, run_script, write_campaign

NO_OUTPUT = "no output matches 'results/**' in the code folder"
DONE_ROWS, BOOM_ROWS, BAD_ROWS, RUNNING_ROWS, PENDING_ROWS = 2500, 200, 100, 150, 50


def generated_campaign(job: str) -> tuple[CampaignRecord, list[str]]:
    """A local campaign of 3,000 rows (two types) whose bucket holds what workers would have written."""
    total = DONE_ROWS + BOOM_ROWS + BAD_ROWS + RUNNING_ROWS + PENDING_ROWS
    jobs = [Job(tag=f"{job}{i}", instance_type="t3.micro" if i % 2 else "c5.large", command=f"bench {i}", line=i + 2)
            for i in range(total)]
    options = ProviderOptions()
    provider = make_provider("local", job, options)
    provider.prepare()
    record = CampaignRecord(job=job, image="local", bucket_url=provider.bucket_url, jobs=jobs, options=options)
    storage = record.storage(provider)
    record.save(storage)
    machine = provider.launch(LaunchSpec(job=job, instance_type="c5.large", image="local"), 1)[0]
    for i, row in enumerate(jobs):
        if i >= total - PENDING_ROWS:
            break
        held = claims.try_claim(storage, row.tag, machine, i % 4, None, row.instance_type, row.command)
        assert held is not None
        if i >= total - PENDING_ROWS - RUNNING_ROWS:
            continue  # running: its claim is held, no status yet
        status = JobStatus(job=job, tag=row.tag, state=DONE, instance_type=row.instance_type, command=row.command,
                           instance_id=machine, attempt=1, slot=i % 4, exit_code=0, seconds=0.1,
                           warnings=[NO_OUTPUT])
        if DONE_ROWS <= i < DONE_ROWS + BOOM_ROWS:
            status.state, status.exit_code, status.note = FAILED, 1, "command exited with status 1: boom\nTraceback"
        elif i >= DONE_ROWS + BOOM_ROWS:
            status.state, status.exit_code, status.note = FAILED, 2, "command exited with status 2: bad input"
        save_status(storage, status)
    return record, [machine]


def test_status_of_3000_rows_is_a_summary_that_fits_a_screen(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("LINES", raising=False)
    generated_campaign("big")

    shown = run_script("-m", "burst", "status", "big")
    assert shown.returncode == 3, shown.stderr  # rows still to run
    lines = shown.stdout.splitlines()
    assert len(lines) < 60, shown.stdout
    assert all(len(line) <= 80 for line in lines), shown.stdout
    assert "job big: 3,000 rows: 2,500 done, 300 failed, 150 running, 50 pending" in lines
    # counts by type and state: the c5.large line and the t3.micro line add up to the total line
    by_type = {line.split()[1]: line for line in lines if re.match(r"^│ (c5\.large|t3\.micro|all) ", line)}
    assert set(by_type) == {"c5.large", "t3.micro", "all"}, shown.stdout
    assert re.search(r"│ all +│ +3,000 │ +2,500 │ +300 │ +150 │ +50 │", by_type["all"]), by_type["all"]
    # failures grouped by reason, each with its count and three examples
    flat = " ".join(shown.stdout.split())  # lines as rich wrapped them at 80 columns, joined again
    assert ("300 rows failed or were interrupted, by reason: "
            "200 failed: command exited with status 1: boom (e.g. big2500, big2501, big2502) "
            "100 failed: command exited with status 2: bad input (e.g. big2700, big2701, big2702)") in flat
    # the rows still running, a few listed and the rest counted
    assert "running (150)" in shown.stdout and "│ big2800 " in shown.stdout and "… 140 more" in shown.stdout
    # the note 2,800 rows share, said once
    assert shown.stdout.count(NO_OUTPUT) == 1 and f"  2,800 rows: {NO_OUTPUT}" in lines
    assert "`python -m burst status big --all` lists every row" in flat

    every = run_script("-m", "burst", "status", "big", "--all")
    assert every.returncode == 3
    for tag in ("big0", "big2500", "big2899", "big2999"):
        assert sum(line.startswith(f"│ {tag} ") for line in every.stdout.splitlines()) == 1, tag
    assert sum(line.startswith("│ big") for line in every.stdout.splitlines()) == 3000
    assert every.stdout.count(NO_OUTPUT) == 1 and f"2,800 rows: {NO_OUTPUT}" in every.stdout
    assert "200 rows: command exited with status 1: boom" in every.stdout  # the failures' shared note, once too

    as_json = run_script("-m", "burst", "status", "big", "--json")
    report = json.loads(as_json.stdout)
    assert len(report["rows"]) == 3000 and sum(NO_OUTPUT in r["warnings"] for r in report["rows"]) == 2800
    assert {r["state"] for r in report["rows"]} == {"done", "failed", "running", "pending"}


def test_the_end_of_wait_summarises_a_campaign_longer_than_a_screen(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("LINES", raising=False)
    rows = [("t3.micro", "exit 1" if i % 8 == 0 else "true") for i in range(48)]
    jobfile, install = write_campaign(tmp_path, rows)
    result = run_script(str(REPO / "dispatcher.py"), "local", "many", str(jobfile), "-c", "-d", "--wait",
                        "--install", str(install), "--machines", "2", "--slots", "4")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "job many: 48 rows: 42 done, 6 failed" in out, out
    assert "6 failed: command exited with status 1 (e.g. many0, many8, many16)" in " ".join(out.split())
    assert sum(line.startswith("│ many") for line in out.splitlines()) == 0, "no line per row"
    assert out.count(NO_OUTPUT) == 1 and f"48 rows: {NO_OUTPUT}" in out
    assert len(out.splitlines()) < 40, out
