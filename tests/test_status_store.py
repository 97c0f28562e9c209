"""A row's status: the current attempt's in ``state/ended/<tag>.json``, earlier attempts' kept beside their logs."""

from __future__ import annotations

import json

from burst.node.status_store import load_status, save_status
from burst.records import JobStatus
from burst.storage import open_storage


def attempt(n: int, state: str) -> JobStatus:
    return JobStatus(job="j", tag="j0", state=state, attempt=n, instance_id=f"i-{n}", note=f"attempt {n}")


def test_a_retry_keeps_the_earlier_attempts_status_and_a_late_one_never_replaces_a_newer(tmp_path):
    storage = open_storage((tmp_path / "bucket").as_uri())
    save_status(storage, attempt(1, "interrupted"))
    assert storage.list_keys() == ["state/ended/j0.json"], "a first attempt is one write"

    save_status(storage, attempt(2, "done"))
    assert load_status(storage, "j0").attempt == 2
    kept = json.loads(storage.read_text("j0/attempts/1/status.json"))
    assert (kept["attempt"], kept["state"], kept["instance_id"]) == (1, "interrupted", "i-1")

    # the dispatcher's word on attempt 1 arrives after attempt 2 ended: attempt 2 stays the row's status
    late = attempt(1, "interrupted")
    late.note = "machine i-1 is gone"
    save_status(storage, late, may_be_stale=True)
    assert load_status(storage, "j0").state == "done" and load_status(storage, "j0").attempt == 2
    assert json.loads(storage.read_text("j0/attempts/1/status.json"))["note"] == "machine i-1 is gone"
