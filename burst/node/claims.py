"""Claims and leases on rows, through the Storage seam's conditional writes.

* claim a new row: create ``<tag>/claim.json`` if absent (attempt 1);
* claim a released or expired attempt n: replace it if unchanged (attempt n + 1);
* renew the lease: replace it if unchanged, with a new heartbeat;
* release: replace it if unchanged, with state RELEASED and the reason, and
  leave a ``<tag>/released`` marker that a listing shows (workers GET only those).

Each is one conditional write, so of any number of workers and dispatchers
racing for the same claim exactly one wins; the others get ``PreconditionFailed``.
Standard library only: the worker uses it.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

from burst import protocol
from burst.node.bucket_view import HeldClaim
from burst.records import Claim, utc_now
from burst.storage.base import KeyNotFound, PreconditionFailed, Storage


def _text(claim: Claim) -> str:
    return json.dumps(dataclasses.asdict(claim), ensure_ascii=False) + "\n"


def _mine_after_all(storage: Storage, claim: Claim) -> str | None:
    """After a lost race, the etag if the claim there is ours anyway (a retried write that had landed)."""
    try:
        text, etag = storage.read_versioned(protocol.claim_key(claim.tag))
    except KeyNotFound:
        return None
    try:
        there = json.loads(text)
    except ValueError:
        return None
    return etag if there.get("nonce") == claim.nonce else None


def try_claim(storage: Storage, tag: str, machine: str, slot: int, current: HeldClaim | None,
              instance_type: str = "", command: str = "") -> HeldClaim | None:
    """Claim the next attempt of ``tag``; ``current`` is its claim as read (None: never claimed).

    ``instance_type`` and ``command`` are the row as this attempt will run it, so that
    a reconcile can tell an attempt of a row that has changed since. Returns the held
    claim, or None when somebody else got it first.
    """
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
    except (PreconditionFailed, KeyNotFound):
        return False
    storage.write_text(protocol.released_key(claim.tag), f"attempt {claim.attempt}: {reason}\n")
    return True


def reopen(storage: Storage, tag: str, attempt: int, reason: str) -> bool:
    """Make a row that ended (or runs) as ``attempt`` run again as ``attempt + 1``: a changed row, or --force.

    Releases its claim (a worker holding it finds its lease gone at its next renewal
    and stops the command); the row is pending again and any worker of its type
    claims the next attempt. False when the claim moved on since ``attempt`` was read
    (someone else already reran it, or a later attempt runs).
    """
    key = protocol.claim_key(tag)
    try:
        text, etag = storage.read_versioned(key)
    except KeyNotFound:  # a final status with no claim beside it: start the next run from the status's attempt
        claim = Claim(tag=tag, attempt=attempt, machine="dispatcher", slot=-1, state=protocol.RELEASED,
                      reason=reason, retry_base=attempt)
        try:
            storage.create_if_absent(key, _text(claim))
        except PreconditionFailed:
            return False
        storage.write_text(protocol.released_key(tag), f"attempt {attempt}: {reason}\n")
        return True
    claim = Claim.from_dict(json.loads(text))
    if claim.attempt != attempt or claim.state == protocol.RELEASED:
        return False
    return release(storage, HeldClaim(claim, etag, 0.0), reason, new_run=True)
