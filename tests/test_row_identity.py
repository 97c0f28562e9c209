"""A row's command and instance type are its identity: a changed row runs again, never a silently kept old result."""

from __future__ import annotations

import csv
import json

import pytest

from burst import protocol
from burst.node.bucket_view import HeldClaim
from tests.conftest import REPO, run_script, status_report, statuses, wait_until, write_campaign

DISPATCHER = str(REPO / "dispatcher.py")
GET_FILES = str(REPO / "get_s3_files.py")


def dispatch(job: str, jobfile, install, *options: str):
    return run_script(DISPATCHER, "local", job, str(jobfile), "-c", "-d", "--wait", "--install", str(install), *options)


def test_a_changed_command_reruns_as_the_next_attempt_and_the_old_attempt_stays(tmp_path, burst_home):
    log = tmp_path / "ran.log"
    first = [("t3.micro", f"echo $TAG >> {log}; printf 'value\\none\\n' > results/r.csv"),
             ("t3.micro", f"echo $TAG >> {log}; printf 'value\\nsame\\n' > results/r.csv")]
    jobfile, install = write_campaign(tmp_path, first)
    assert dispatch("edit", jobfile, install).returncode == 0
    changed = [("t3.micro", f"echo $TAG >> {log}; printf 'value\\ntwo\\n' > results/r.csv"), first[1]]
    write_campaign(tmp_path, changed)

    again = dispatch("edit", jobfile, install)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "edit0 changed (command): rerunning it as attempt 2" in again.stdout
    assert again.stdout.count("rerunning") == 1, "an unchanged row is not rerun"
    assert sorted(log.read_text().split()) == ["edit0", "edit0", "edit1"]
    rows = statuses("edit")
    assert (rows["edit0"]["state"], rows["edit0"]["attempt"], rows["edit0"]["command"]) == ("done", 2, changed[0][1])
    assert (rows["edit1"]["attempt"], rows["edit1"]["command"]) == (1, first[1][1])
    attempts = burst_home / "buckets" / "edit" / "edit0" / "attempts"
    assert (attempts / "1" / "results" / "r.csv").read_text() == "value\none\n", "attempt 1's outputs stay"
    assert (attempts / "1" / "logs" / "stdout.log").is_file() and (attempts / "2" / "logs" / "stdout.log").is_file()
    assert (attempts / "2" / "results" / "r.csv").read_text() == "value\ntwo\n"
    for record in (burst_home / "campaigns" / "edit.json", burst_home / "buckets" / "edit" / "campaign.json"):
        assert [job["command"] for job in json.loads(record.read_text())["jobs"]] == [changed[0][1], first[1][1]]

    out = tmp_path / "out"
    assert run_script(GET_FILES, "edit", str(out), "--merge").returncode == 0
    with open(out / "results.csv", newline="") as handle:
        merged = {row["tag"]: row for row in csv.DictReader(handle)}
    assert (merged["edit0"]["value"], merged["edit0"]["attempt"]) == ("two", "2"), "the merged table shows the current attempt"
    assert (merged["edit1"]["value"], merged["edit1"]["attempt"]) == ("same", "1")


def test_a_rerun_with_a_changed_type_and_added_and_removed_rows(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo $INSTANCE_TYPE > results/type.txt")] * 3)
    assert dispatch("shape", jobfile, install).returncode == 0
    write_campaign(tmp_path, [("t3.micro", "echo $INSTANCE_TYPE > results/type.txt"),
                              ("c5.large", "echo $INSTANCE_TYPE > results/type.txt")])  # shape2 removed
    second = dispatch("shape", jobfile, install)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "shape1 changed (instance type): rerunning it as attempt 2" in second.stdout
    assert "shape2 was removed from jobs.csv: it is no longer part of the campaign" in second.stdout
    assert "started 1 sandbox(es) of type c5.large" in second.stdout, "a machine of the row's new type is launched"
    rows = statuses("shape")
    assert sorted(rows) == ["shape0", "shape1"], "a removed row is not shown"
    assert (rows["shape1"]["instance_type"], rows["shape1"]["attempt"], rows["shape0"]["attempt"]) == ("c5.large", 2, 1)
    bucket = burst_home / "buckets" / "shape"
    assert (bucket / "shape1" / "attempts" / "2" / "results" / "type.txt").read_text() == "c5.large\n"
    assert (bucket / protocol.status_key("shape2")).is_file(), "a removed row's files stay in the bucket"

    write_campaign(tmp_path, [("t3.micro", "echo $INSTANCE_TYPE > results/type.txt"),
                              ("c5.large", "echo $INSTANCE_TYPE > results/type.txt"), ("t3.micro", "echo back")])
    third = dispatch("shape", jobfile, install)
    assert third.returncode == 0 and "shape2 was added to jobs.csv" in third.stdout
    assert statuses("shape")["shape2"]["attempt"] == 2, "a row added back under a used tag runs as that tag's next attempt"


def test_force_reruns_every_row_that_ended_each_as_its_next_attempt(tmp_path, burst_home):
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG-$ATTEMPT >> {log}"),
                                                 ("t3.micro", f"echo $TAG-$ATTEMPT >> {log}; exit 3")])
    assert dispatch("forced", jobfile, install).returncode == 1
    plain = dispatch("forced", jobfile, install)
    assert plain.returncode == 1 and "rerunning" not in plain.stdout, "without --force a final row stays final"
    forced = dispatch("forced", jobfile, install, "--force", "--retries", "0")
    assert forced.returncode == 1, forced.stdout + forced.stderr
    for tag in ("forced0", "forced1"):
        assert f"{tag} forced (--force): rerunning it as attempt 2" in forced.stdout
    assert sorted(log.read_text().split()) == ["forced0-1", "forced0-2", "forced1-1", "forced1-2"]
    rows = statuses("forced")
    assert {tag: (r["state"], r["attempt"]) for tag, r in rows.items()} == {"forced0": ("done", 2), "forced1": ("failed", 2)}


def test_a_running_row_that_changed_is_stopped_and_runs_again_as_changed(tmp_path, burst_home):
    log = tmp_path / "ran.log"
    jobfile, install = write_campaign(tmp_path, [("t3.micro", f"echo $TAG-$ATTEMPT-slow >> {log}; sleep 300")])
    args = ["-c", "-d", "--install", str(install), "--heartbeat", "1"]
    try:
        assert run_script(DISPATCHER, "local", "live", str(jobfile), *args).returncode == 0
        wait_until(lambda: log.exists() and log.read_text(), what="attempt 1 running")
        write_campaign(tmp_path, [("t3.micro", f"echo $TAG-$ATTEMPT-fast >> {log}")])
        again = run_script(DISPATCHER, "local", "live", str(jobfile), *args, "--wait")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "live0 changed (command): stopping attempt 1 and rerunning it as attempt 2" in again.stdout
        row = statuses("live")["live0"]
        assert (row["state"], row["attempt"], row["command"]) == ("done", 2, f"echo $TAG-$ATTEMPT-fast >> {log}")
        assert log.read_text().split() == ["live0-1-slow", "live0-2-fast"]
        assert (burst_home / "buckets" / "live" / "live0" / "attempts" / "1" / "logs" / "stdout.log").is_file(), \
            "the stopped attempt's logs are kept"
        assert all(m["state"] in ("worker finished", "ended") for m in status_report("live")["machines"])
    finally:
        run_script("-m", "burst", "terminate", "live")


def test_reopen_releases_only_the_attempt_it_was_told_and_starts_a_new_run(tmp_path):
    from burst import protocol
    from burst.node import claims
    from burst.records import Claim
    from burst.storage.localdir import LocalDirStorage

    storage = LocalDirStorage((tmp_path / "bucket").as_uri())
    held = claims.try_claim(storage, "t0", "i-1", 0, None, "t3.micro", "old")
    assert not claims.reopen(storage, "t0", 2, "changed (command)"), "attempt 2 is not the one there: nothing changes"
    assert claims.reopen(storage, "t0", 1, "changed (command)")
    claim = Claim.from_dict(json.loads(storage.read_text(protocol.claim_key("t0"))))
    assert (claim.state, claim.attempt, claim.retry_base, claim.tries) == (protocol.RELEASED, 1, 1, 0)
    assert storage.read_text(protocol.released_key("t0")) == "attempt 1: changed (command)\n"
    assert not claims.reopen(storage, "t0", 1, "changed (command)"), "released already: once is enough"
    with pytest.raises(claims.PreconditionFailed):
        claims.renew(storage, held)  # the old holder's lease is gone: its worker stops the command
    _, etag = storage.read_versioned(protocol.claim_key("t0"))
    again = claims.try_claim(storage, "t0", "i-2", 0, HeldClaim(claim, etag, 0.0))
    assert (again.claim.attempt, again.claim.retry_base, again.claim.tries) == (2, 1, 1)

    assert claims.reopen(storage, "t9", 3, "forced (--force)"), "a final status with no claim: a released one is created"
    made = Claim.from_dict(json.loads(storage.read_text(protocol.claim_key("t9"))))
    assert (made.state, made.attempt, made.tries) == (protocol.RELEASED, 3, 0)


def test_a_rerun_keeps_the_rows_of_other_job_files_and_drops_rows_removed_from_its_own(tmp_path):
    from burst.control.campaign_record import CampaignRecord, merge_rows
    from burst.providers import ProviderOptions
    from burst.records import Job

    def record(*jobs: Job) -> CampaignRecord:
        return CampaignRecord(job="m", image="local", bucket_url="", jobs=list(jobs), options=ProviderOptions(),
                              job_file="/w/a.csv")

    previous = record(Job("m0", "t", "x", 2, "/w/a.csv"), Job("m1", "t", "y", 3, "/w/a.csv"),
                      Job("m5", "t", "z", 2, "/w/b.csv"))  # m5: another file, joined with --tag-offset 5
    rerun = record(Job("m0", "t", "x2", 2, "/w/a.csv"), Job("m2", "t", "w", 3, "/w/a.csv"))
    notes = merge_rows(previous, rerun)
    assert [job.tag for job in rerun.jobs] == ["m5", "m0", "m2"] and rerun.jobs[1].command == "x2"
    assert notes == ["m1 was removed from a.csv: it is no longer part of the campaign (its files stay in the bucket)",
                     "m2 was added to a.csv"]


def test_force_after_fixing_install_sh_runs_the_rows_its_failures_failed(tmp_path, burst_home):
    jobfile, install = write_campaign(tmp_path, [("t3.micro", "echo ran")], install="#!/bin/bash\nexit 3\n")
    broken = dispatch("fixed", jobfile, install, "--retries", "0")
    assert broken.returncode == 1 and statuses("fixed")["fixed0"]["state"] == "failed"
    install.write_text("#!/bin/bash\necho fixed\n")
    forced = dispatch("fixed", jobfile, install, "--retries", "0", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    row = statuses("fixed")["fixed0"]
    assert (row["state"], row["attempt"]) == ("done", 2), "the earlier run's failed installs do not fail the new run"
