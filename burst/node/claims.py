"""Claims and leases on rows, through the Storage seam's conditional writes.

* claim a new row: create ``<tag>/claim.json`` if absent (attempt 1);
* claim a released or expired attempt n: replace it if unchanged (attempt n + 1);
* renew the lease: replace it if unchanged, with a new heartbeat;
* release: replace it if unchanged, with state RELEASED and the reason, and
  leave a ``<tag>/released`` marker that a listing shows (workers GET only those).

Each is one conditional write, so of any number of workers and dispatchers
racing for the same claim exactly one wins; the others get ``PreconditionFailed``.
A write whose answer was lost (applied, then a 5xx, then the retry's 412) is
recognised by reading the claim back: it is ours when it is exactly what we wrote
(same nonce, attempt, state and heartbeat). A claim that cannot be parsed is
somebody's: nobody writes over it except ``reopen`` (``run --force``).
Standard library only: the worker uses it.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

from burst import protocol
from burst.node.bucket_view import HeldClaim
from burst.records import Claim, UnreadableRecord, parse_record, utc_now
from burst.storage.base import KeyNotFound, PreconditionFailed, Storage


def _text(claim: Claim) -> str:
    return json.dumps(dataclasses.asdict(claim), ensure_ascii=False) + "\n"


def _mine_after_all(storage: Storage, claim: Claim) -> str | None:
    """After a lost race, the etag if the claim there is the very one we wrote (a retried write that had landed)."""
    key = protocol.claim_key(claim.tag)
    try:
        text, etag = storage.read_versioned(key)
        there = parse_record(Claim, text, key)
    except (KeyNotFound, UnreadableRecord):
        return None
    return etag if there == claim else None


def try_claim(storage: Storage, tag: str, machine: str, slot: int, current: HeldClaim | None,
              instance_type: str = "", command: str = "", unless_ended: bool = False) -> HeldClaim | None:
    """Claim the next attempt of ``tag``; ``current`` is its claim as read (None: never claimed).

    ``instance_type`` and ``command`` are the row as this attempt will run it, so that
    a reconcile can tell an attempt of a row that has changed since. Returns the held
    claim, or None when somebody else got it first. ``unless_ended``: ``current`` comes
    from a listing older than a lease, in which a row whose claim the reconcile has
    since deleted (it ended) looks never claimed: its status is looked for first.
    """
    if current is None and unless_ended and _has_status(storage, tag):
        return None
    attempt = 1 if current is None else current.claim.attempt + 1
    claim = Claim(tag=tag, attempt=attempt, machine=machine, slot=slot, nonce=uuid.uuid4().hex,
                  instance_type=instance_type, command=command,
                  retry_base=0 if current is None else current.claim.retry_base)
    key = protocol.claim_key(tag)
    try:
        if current is None:
            etag = storage.create_if_absent(key, _text(claim))
        else:
            etag = storage.replace_if_match(key, _text(claim), current.etag)
    except PreconditionFailed as lost:
        etag = _mine_after_all(storage, claim) if lost.after_retry else None
        if etag is None:
            return None
    except KeyNotFound:
        return None
    if current is not None and current.claim.state == protocol.RELEASED:
        _forget_marker(storage, tag)
    return HeldClaim(claim, etag, 0.0)


def _has_status(storage: Storage, tag: str) -> bool:
    try:
        storage.read_versioned(protocol.status_key(tag))
    except KeyNotFound:
        return False
    except UnreadableRecord:
        pass
    return True


def _forget_marker(storage: Storage, tag: str) -> None:
    """Delete ``<tag>/released`` once its claim is held: best-effort, as a stale marker costs a reader one GET.

    Whatever the bucket answers (refused, throttled, gone), the claim is this
    worker's and the row runs.
    """
    try:
        storage.delete_keys([protocol.released_key(tag)])
    except Exception:  # noqa: BLE001 - any answer: the claim stays held and the row runs
        pass


def renew(storage: Storage, held: HeldClaim) -> HeldClaim:
    """A new heartbeat on a held claim; ``PreconditionFailed`` means it was taken over."""
    claim = dataclasses.replace(held.claim, heartbeat=utc_now())
    try:
        etag = storage.replace_if_match(protocol.claim_key(claim.tag), _text(claim), held.etag)
    except KeyNotFound:
        raise PreconditionFailed(f"the claim on {claim.tag} is gone") from None
    except PreconditionFailed:  # rare for a holder: worth one GET to tell a lost answer from a takeover
        etag = _mine_after_all(storage, claim)
        if etag is None:
            raise
    return HeldClaim(claim, etag, 0.0)


def release(storage: Storage, held: HeldClaim, reason: str, new_run: bool = False) -> bool:
    """Give the attempt up so that the next one may be claimed; False when it was not ours any more.

    ``new_run``: the row runs again from scratch (it changed, or --force), so its
    --retries count starts afresh with the next attempt.
    """
    claim = dataclasses.replace(held.claim, state=protocol.RELEASED, reason=reason, heartbeat=utc_now(),
                                retry_base=held.claim.attempt if new_run else held.claim.retry_base)
    try:
        storage.replace_if_match(protocol.claim_key(claim.tag), _text(claim), held.etag)
    except KeyNotFound:
        return False
    except PreconditionFailed:
        if _mine_after_all(storage, claim) is None:
            return False
    storage.write_text(protocol.released_key(claim.tag), f"attempt {claim.attempt}: {reason}\n")
    return True


def reopen(storage: Storage, tag: str, attempt: int, reason: str) -> bool:
    """Make a row that ended (or runs) as ``attempt`` run again as ``attempt + 1``: a changed row, or --force.

    Releases its claim (a worker holding it finds its lease gone at its next renewal
    and stops the command); the row is pending again and any worker of its type
    claims the next attempt. False when the claim moved on since ``attempt`` was read
    (someone else already reran it, or a later attempt runs). ``attempt`` 0: a row
    whose record is unreadable (UNKNOWN): it reruns after the last attempt the
    bucket holds, and an unreadable claim is replaced (only if still as read).
    """
    key = protocol.claim_key(tag)
    try:
        text, etag = storage.read_versioned(key)
        claim = parse_record(Claim, text, key)
    except KeyNotFound:  # a final status with no claim beside it: start the next run from the status's attempt
        start = attempt or last_attempt(storage, tag)
        try:
            storage.create_if_absent(key, _text(_released(tag, start, reason)))
        except PreconditionFailed:
            return False
        storage.write_text(protocol.released_key(tag), f"attempt {start}: {reason}\n")
        return True
    except UnreadableRecord as error:
        if attempt:
            return False
        start = last_attempt(storage, tag)
        try:
            storage.replace_if_match(key, _text(_released(tag, start, reason)), error.etag or etag)
        except (PreconditionFailed, KeyNotFound):
            return False
        storage.write_text(protocol.released_key(tag), f"attempt {start}: {reason}\n")
        return True
    if claim.state == protocol.RELEASED or claim.attempt != (attempt or claim.attempt):
        return False
    return release(storage, HeldClaim(claim, etag, 0.0), reason, new_run=True)


def _released(tag: str, attempt: int, reason: str) -> Claim:
    return Claim(tag=tag, attempt=attempt, machine="dispatcher", slot=-1, state=protocol.RELEASED,
                 reason=reason, retry_base=attempt)


def last_attempt(storage: Storage, tag: str) -> int:
    """The highest attempt number under ``<tag>/attempts/`` (at least 1): where a rerun of an unknown row starts."""
    numbers = [int(part) for key in storage.list_keys(f"{tag}/attempts/")
               if (part := key.split("/")[2]).isdigit()]
    return max([1, *numbers])
