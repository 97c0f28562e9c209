"""The reconcile's reads of the bucket, round after round, and its sweep of ended rows' claims.

The first round reads everything (``read_bucket``, ``state/ended/`` listed whole). Later
rounds list ``state/machines/`` and ``state/claims/`` alone and carry the statuses they
know; they learn that a row ended from

* the worker records (listed and read every round anyway), whose ``rows`` name every
  attempt a worker ran: a worker writes a row's status before it names the attempt there;
* a claim silent for more than a heartbeat and a half: its worker stops renewing a claim
  once it wrote the status, and a machine lost right after that never says so;
* a claim that vanished since the last round (another reconcile swept it).

Each such row's status is read once (one GET, as every round did in layout 2 for each
status that changed), never again for the same attempt, claim or worker entry.

The sweep: once a row's status for its claim's attempt is ``protocol.SWEEP_AFTER_LEASES``
leases old on the bucket's clock, its claim is deleted if unchanged (a conditional
delete: a rerun written meanwhile stays), while the claims fill more than a listing
page. So the rounds list the rows that run and those that ended lately, not every row,
and a campaign of fewer rows than a page pays no delete. A worker claims nothing from a listing older
than a lease (``burst.node.worker``), so none can claim a swept row anew.
"""

from __future__ import annotations

import time
from typing import Callable

from burst import protocol
from burst.control.campaign_record import CampaignRecord
from burst.control.kept_records import checked_campaign, keep_checked_campaign
from burst.node.bucket_view import BucketView, Listed, RecordCache, campaign_rows, read_bucket
from burst.records import JobStatus, UnreadableRecord
from burst.storage.base import KeyNotFound, Storage, StoredObject

SILENT_BEATS = 1.5  # a claim not renewed for this many heartbeats has its row's status looked for
SWEEP_ABOVE = 1000  # claims listed (one S3 page) below which none is swept: a delete would save no request
CAMPAIGN_CHECK = 60.0  # seconds between two checks that campaign.json is there and readable


class RoundReads:
    """What the dispatcher's rounds read: everything once, then what changed (see the module's docstring)."""

    def __init__(self, cache: RecordCache, tags: set[str], heartbeat: float, lease: float):
        self.cache = cache
        self.tags = tags
        self.silent_after = SILENT_BEATS * heartbeat
        self.sweep_after = protocol.SWEEP_AFTER_LEASES * lease
        self.statuses: dict[str, StoredObject] = {}  # tag -> its status as last listed or read
        self.looked: set[tuple[str, str]] = set()  # (tag, what sent us looking) already looked for
        self.claims_seen: dict[str, str] = {}  # tag -> etag of its claim in the last round's listing
        self.fed: dict[str, int] = {}  # machine -> how many of its worker record's rows were looked at
        self.whole = True  # the next round lists state/ended/ whole
        self.swept = 0  # claims deleted by this reader (bench/scale.py reports it)
        self._campaign_checked: str | None = None  # etag of the campaign.json last found readable (None: not read)
        self._campaign_checked_at = float("-inf")  # time.monotonic() of that check

    def reset(self) -> None:
        """The next round reads everything again: this process wrote statuses that no worker will name."""
        self.whole = True

    def read(self, storage: Storage) -> BucketView:
        """This round's view; a read that fails (an outage) leaves what the next round reads as it was."""
        whole = self.whole
        listed: Listed = {}

        def ended(view: BucketView, found: Listed) -> None:
            nonlocal listed
            listed = found
            if whole:
                self.statuses = {tag: entry["status"] for tag, entry in found.items() if "status" in entry}
            else:
                self._look(storage, view, found)
                for tag, obj in self.statuses.items():
                    found.setdefault(tag, {})["status"] = obj
            self.claims_seen = {tag: entry["claim"].etag for tag, entry in found.items() if "claim" in entry}

        view = read_bucket(storage, self.cache, self.tags, ended=ended, list_ended=whole)
        self.whole = False
        self._sweep(storage, view, listed)
        return view

    # -- which rows ended since the last round -----------------------------------------
    def _look(self, storage: Storage, view: BucketView, found: Listed) -> None:
        reasons: dict[str, str] = {}
        fed: dict[str, int] = {}  # taken as this round's only once every status it names was read
        for worker, _ in view.workers.values():
            start = self.fed.get(worker.id, 0)
            start = start if start <= len(worker.rows) else 0  # a new worker on that machine: its rows afresh
            fed[worker.id] = len(worker.rows)
            for entry in worker.rows[start:]:
                tag, _, attempt = entry.rpartition("#")
                if tag in self.tags and attempt.isdigit() and int(attempt) > self._known_attempt(storage, tag):
                    reasons.setdefault(tag, f"ran {entry}")
        for tag, entry in found.items():
            claim, status = entry.get("claim"), self.statuses.get(tag)
            if claim is not None and (status is None or status.modified < claim.modified) \
                    and view.now - claim.modified > self.silent_after:
                reasons.setdefault(tag, f"silent {claim.etag}")
        for tag, etag in self.claims_seen.items():
            if "claim" not in found.get(tag, {}) and tag not in self.statuses:
                reasons.setdefault(tag, f"vanished {etag}")
        for tag, why in reasons.items():  # any error but these (an outage) fails the round: looked for again
            if (tag, why) in self.looked:
                continue
            key = protocol.status_key(tag)
            try:
                text, obj = storage.read_object(key)
            except KeyNotFound:
                obj = None
            except UnreadableRecord as error:  # listed as it is: read_bucket says why it is unreadable
                obj = StoredObject(key, 0, error.etag or "", view.now)
            else:
                self.cache.remember(key, obj.etag, text)
            self.looked.add((tag, why))
            if obj is not None:
                self.statuses[tag] = obj
        self.fed.update(fed)

    def _known_attempt(self, storage: Storage, tag: str) -> int:
        obj = self.statuses.get(tag)
        if obj is None:
            return 0
        try:
            status = self.cache.record(storage, obj, JobStatus)
        except UnreadableRecord:
            return 0
        return status.attempt if status is not None else 0

    # -- the sweep --------------------------------------------------------------------
    def _sweep(self, storage: Storage, view: BucketView, listed: Listed) -> None:
        """Delete the claims of rows that ended ``sweep_after`` seconds ago, each only if unchanged."""
        if sum(1 for entry in listed.values() if "claim" in entry) <= SWEEP_ABOVE:
            return
        for tag, entry in listed.items():
            claim, status = entry.get("claim"), entry.get("status")
            if (claim is None or status is None or "released" in entry
                    or view.now - status.modified < self.sweep_after
                    or view.row_state(tag) not in protocol.WRITTEN_STATES):  # its claim's attempt ended
                continue
            try:
                if storage.delete_if_match(protocol.claim_key(tag), claim.etag):
                    self.swept += 1
                    self.claims_seen.pop(tag, None)
            except Exception:  # noqa: BLE001 - best effort: the claim stays listed and the next round tries again
                return

    # -- campaign.json ----------------------------------------------------------------
    def keep_campaign_readable(self, storage: Storage, record: CampaignRecord, report: Callable[[str], None]) -> None:
        """``campaign.json`` (the workers' rows) missing or unreadable: written again from ``record``.

        Listed once a minute, not every round (a request per round that nothing else needs: workers
        wait minutes for it), and read once per version (a GET only when its etag changed), on this
        machine (the etag found readable is kept for the next command: ``kept_records.checked_path``).
        """
        if time.monotonic() - self._campaign_checked_at < CAMPAIGN_CHECK:
            return
        if self._campaign_checked is None:  # as an earlier command on this machine found it (a 14 MB parse saved)
            self._campaign_checked = checked_campaign(record.job)
        listed_etag = next((o.etag for o in storage.list_objects(protocol.CAMPAIGN_KEY)
                            if o.key == protocol.CAMPAIGN_KEY), "")
        self._campaign_checked_at = time.monotonic()
        if listed_etag and listed_etag == self._campaign_checked:
            return
        try:
            text, etag = storage.read_versioned(protocol.CAMPAIGN_KEY)
            campaign_rows(text)
            self._campaign_checked = etag
            keep_checked_campaign(record.job, etag)
            return
        except KeyNotFound:
            why = f"{protocol.CAMPAIGN_KEY} is missing"
        except UnreadableRecord as error:
            why = str(error)
        self._campaign_checked = ""
        record.share(storage)
        report(f"{why}: written again from this machine's record of the campaign")
