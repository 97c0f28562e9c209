"""Rows' statuses kept on this machine between commands (``$BURST_HOME/campaigns/<job>.records``).

A repeat ``status`` uses what an earlier command read instead of reading every row
again, but never shows what the bucket no longer says: a rerun's new status is shown,
and a kept file that rotted is ignored.
"""

from __future__ import annotations

import json
import stat

from burst import protocol
from tests.conftest import REPO, run_script, statuses, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")


def kept_file(path) -> tuple[dict, dict]:
    """The kept file's header (its first line) and records (the rest)."""
    head, _, body = path.read_bytes().partition(b"\n")
    return json.loads(head), json.loads(body)


def test_status_after_a_rerun_shows_the_new_state_not_the_kept_one(tmp_path, burst_home):
    flag = tmp_path / "fixed"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"test -e {flag}"), ("t3.micro", "true")])
    first = run_script(DISPATCHER, "local", "kept", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert first.returncode == 1, first.stdout + first.stderr  # kept0 failed: the flag is not there yet
    shown = run_script("-m", "burst", "status", "kept")
    assert shown.returncode == 1 and "failed" in shown.stdout, shown.stdout + shown.stderr
    kept = burst_home / "campaigns" / "kept.records"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600, "the user's records are the user's alone"
    assert set(kept_file(kept)[1]) == {protocol.status_key("kept0"), protocol.status_key("kept1")}

    flag.write_text("")
    rerun = run_script(DISPATCHER, "local", "kept", str(jobfile), "-c", "-d", "--wait", "--retry-failed",
                       "--install", str(install))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert statuses("kept")["kept0"]["state"] == "done"
    again = run_script("-m", "burst", "status", "kept")
    assert again.returncode == 0, again.stdout + again.stderr  # every row done: what the bucket says now
    assert "failed" not in again.stdout
    assert kept_file(kept)[1]["state/ended/kept0.json"][1]["state"] == "done"


def test_a_corrupt_kept_file_is_ignored_and_written_afresh(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")] * 2)
    first = run_script(DISPATCHER, "local", "rot", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert first.returncode == 0, first.stdout + first.stderr
    kept = burst_home / "campaigns" / "rot.records"
    header, records = kept_file(kept)
    key = "state/ended/rot0.json"
    etag = records[key][0]

    def with_header(head: dict, body: dict) -> bytes:
        return json.dumps(head).encode() + b"\n" + json.dumps(body).encode()

    for rotten in (b'{"format": 2, "records": {"trunc',  # a truncated write
                   with_header(header, {key: [etag, {"state": 7, "tag": ["x"]}]}),  # edited: wrong types, same etag
                   with_header(header, {key: [etag, "done"]}),
                   with_header({**header, "fields": "tag:str"}, records),  # kept by a burst whose status had other fields
                   b"\xff\xfe not text"):
        kept.write_bytes(rotten)
        shown = run_script("-m", "burst", "status", "rot")
        assert shown.returncode == 0, shown.stdout + shown.stderr  # both rows done, as the bucket says
        assert "Traceback" not in shown.stderr and "unreadable" not in shown.stderr, shown.stderr
        assert kept_file(kept) == (header, records), "ignored, and written afresh as it was"


def test_a_status_of_the_wrong_shape_is_never_kept_and_stays_unknown(tmp_path, burst_home):
    from burst import protocol

    jobfile, install = write_campaign(tmp_path, [("t3.micro", "true")] * 2)
    first = run_script(DISPATCHER, "local", "shape", str(jobfile), "-c", "-d", "--wait", "--install", str(install))
    assert first.returncode == 0, first.stdout + first.stderr
    status = burst_home / "buckets" / "shape" / protocol.status_key("shape0")
    status.write_text(json.dumps({**json.loads(status.read_text()), "exit_code": "zero"}))  # JSON, of the wrong types
    for _ in range(2):  # the second with what the first kept
        assert statuses("shape")["shape0"]["state"] == "unknown"
        assert protocol.status_key("shape0") not in kept_file(burst_home / "campaigns" / "shape.records")[1]
