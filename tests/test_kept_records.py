"""Rows' statuses kept on this machine between commands (``$BURST_HOME/campaigns/<job>.records``).

A repeat ``status`` uses what an earlier command read instead of reading every row
again, but never shows what the bucket no longer says: a rerun's new status is shown,
and a kept file that rotted is ignored.
"""

from __future__ import annotations

import json
import stat

from tests.conftest import REPO, run_script, statuses, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")


def test_status_after_a_rerun_shows_the_new_state_not_the_kept_one(tmp_path, burst_home):
    flag = tmp_path / "fixed"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"test -e {flag}"), ("t3.micro", "true")])
    first = run_script(DISPATCHER, "local", "kept", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert first.returncode == 1, first.stdout + first.stderr  # kept0 failed: the flag is not there yet
    shown = run_script("-m", "burst", "status", "kept")
    assert shown.returncode == 1 and "failed" in shown.stdout, shown.stdout + shown.stderr
    kept = burst_home / "campaigns" / "kept.records"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600, "the user's records are the user's alone"
    assert {key.split("/")[2] for key in json.loads(kept.read_text())["records"]} == {"kept0", "kept1"}

    flag.write_text("")
    rerun = run_script(DISPATCHER, "local", "kept", str(jobfile), "-c", "-d", "--wait", "--retry-failed",
                       "--install", str(install))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert statuses("kept")["kept0"]["state"] == "done"
    again = run_script("-m", "burst", "status", "kept")
    assert again.returncode == 0, again.stdout + again.stderr  # every row done: what the bucket says now
    assert "failed" not in again.stdout
    assert json.loads(kept.read_text())["records"]["state/rows/kept0/status.json"][1]["state"] == "done"


def test_a_corrupt_kept_file_is_ignored_and_written_afresh(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")] * 2)
    first = run_script(DISPATCHER, "local", "rot", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert first.returncode == 0, first.stdout + first.stderr
    kept = burst_home / "campaigns" / "rot.records"
    good = json.loads(kept.read_text())
    key = "state/rows/rot0/status.json"
    etag = good["records"][key][0]
    for rotten in ('{"format": 1, "records": {"trunc',  # a truncated write
                   json.dumps({**good, "records": {key: [etag, {"state": 7, "tag": ["x"]}]}}),  # wrong types, same etag
                   json.dumps({**good, "records": {key: [etag, "done"]}}),
                   b"\xff\xfe not text"):
        kept.write_bytes(rotten.encode() if isinstance(rotten, str) else rotten)
        shown = run_script("-m", "burst", "status", "rot")
        assert shown.returncode == 0, shown.stdout + shown.stderr  # both rows done, as the bucket says
        assert "Traceback" not in shown.stderr and "unreadable" not in shown.stderr, shown.stderr
        assert json.loads(kept.read_text())["records"][key][1]["state"] == "done", "written afresh"
