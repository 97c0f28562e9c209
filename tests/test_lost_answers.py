"""Lost answers: a conditional write reaches the bucket, then its answer is a 500; the retry gets 412.

The claim is read back and compared (nonce, attempt, state, heartbeat): a write
that landed is the caller's own, for claims, renewals and releases alike. All
through the loopback fault proxy in front of moto.
"""

from __future__ import annotations

import json

import boto3
import pytest

from burst import protocol
from burst.node import claims
from burst.records import Claim
from burst.storage import PreconditionFailed
from burst.storage.s3 import S3Storage
from tests.awsfaults import FaultRule, aws_faults  # noqa: F401  (fixture)
from tests.motoserver import moto_server  # noqa: F401  (fixture)

LOST = dict(action="PutObject", status=500, code="InternalError", message="We encountered an internal error.",
            times=1, forward=True)


@pytest.fixture
def s3(aws_faults, backoffs) -> S3Storage:  # noqa: F811
    boto3.client("s3").create_bucket(Bucket="burst-lost")
    return S3Storage("s3://burst-lost/job")


def claim_there(s3: S3Storage, tag: str = "t0") -> Claim:
    return Claim.from_dict(json.loads(s3.read_text(protocol.claim_key(tag))))


def test_a_claim_whose_answer_was_lost_is_still_ours(s3, aws_faults):  # noqa: F811
    lost = aws_faults.add(FaultRule(**LOST))
    held = claims.try_claim(s3, "t0", "i-1", 0, None, "t3.micro", "true")
    assert aws_faults.fired(lost) == 1 and held is not None and claim_there(s3) == held.claim


def test_a_renewal_whose_answer_was_lost_keeps_the_lease(s3, aws_faults):  # noqa: F811
    held = claims.try_claim(s3, "t0", "i-1", 0, None, "t3.micro", "true")
    lost = aws_faults.add(FaultRule(**LOST))
    renewed = claims.renew(s3, held)  # was: "taken over", and the worker killed its own healthy row
    assert aws_faults.fired(lost) == 1 and claim_there(s3) == renewed.claim
    assert claims.renew(s3, renewed).claim.attempt == 1  # the etag it kept is the bucket's


def test_a_release_whose_answer_was_lost_is_done_and_leaves_its_marker(s3, aws_faults):  # noqa: F811
    held = claims.try_claim(s3, "t0", "i-1", 0, None, "t3.micro", "true")
    lost = aws_faults.add(FaultRule(**LOST))
    assert claims.release(s3, held, "lost its machine")  # was: False, and no marker
    assert aws_faults.fired(lost) == 1 and claim_there(s3).state == protocol.RELEASED
    assert s3.read_text(protocol.released_key("t0")) == "attempt 1: lost its machine\n"


def test_a_conflict_on_a_renewal_is_retried_and_a_real_takeover_still_loses(s3, aws_faults):  # noqa: F811
    held = claims.try_claim(s3, "t0", "i-1", 0, None, "t3.micro", "true")
    conflict = aws_faults.add(FaultRule(action="PutObject", status=409, code="ConditionalRequestConflict", times=2))
    held = claims.renew(s3, held)  # was: taken as losing the lease
    assert aws_faults.fired(conflict) == 2 and claim_there(s3) == held.claim

    from burst.node.bucket_view import HeldClaim  # another worker takes the attempt over
    _, etag = s3.read_versioned(protocol.claim_key("t0"))
    other = claims.try_claim(s3, "t0", "i-2", 0, HeldClaim(held.claim, etag, 0.0), "t3.micro", "true")
    assert other is not None and other.claim.attempt == 2
    with pytest.raises(PreconditionFailed):
        claims.renew(s3, held)
    assert not claims.release(s3, held, "late")
    assert claim_there(s3) == other.claim
