"""Conditional writes (create-if-absent, replace-if-match) on both backends, and S3's one-request upload."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError

from burst.storage import KeyNotFound, PreconditionFailed, Storage, UploadNotVerified
from burst.storage.localdir import LocalDirStorage
from burst.storage.s3 import CONFLICT_TRIES, BucketNotFound, MiB, S3Storage, expected_etag
from tests.awsfaults import FaultRule, aws_faults  # noqa: F401  (fixture)
from tests.motoserver import moto_server  # noqa: F401  (fixture)
from tests.seaweed import seaweed_s3  # noqa: F401  (fixture)

BUCKET = "burst-conditional"


def make_bucket() -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)


@pytest.fixture(params=["local", "s3", "seaweedfs"])
def storage_kind(request) -> str:
    return request.param


@pytest.fixture
def storage(request, storage_kind, tmp_path) -> Storage:
    if storage_kind == "local":
        return LocalDirStorage((tmp_path / "bucket").as_uri())
    if storage_kind == "seaweedfs":  # a second, real S3 implementation
        return S3Storage(f"s3://{request.getfixturevalue('seaweed_s3')}/camp")
    request.getfixturevalue("moto_server")
    make_bucket()
    return S3Storage(f"s3://{BUCKET}/camp")


@pytest.fixture
def s3(aws_faults) -> S3Storage:  # noqa: F811  (moto behind the fault proxy: requests are counted)
    make_bucket()
    return S3Storage(f"s3://{BUCKET}/camp", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


# -- both backends ------------------------------------------------------------


def test_create_if_absent_only_once(storage):
    etag = storage.create_if_absent("t1/claim.json", '{"owner": "a"}')
    assert etag
    with pytest.raises(PreconditionFailed, match="t1/claim.json exists already"):
        storage.create_if_absent("t1/claim.json", '{"owner": "b"}')
    assert storage.read_versioned("t1/claim.json") == ('{"owner": "a"}', etag)

    storage.delete_keys(["t1/claim.json"])  # a released claim can be taken again
    again = storage.create_if_absent("t1/claim.json", '{"owner": "c"}')
    assert storage.read_versioned("t1/claim.json") == ('{"owner": "c"}', again)


def test_replace_if_match_compare_and_swap(storage, storage_kind):
    first = storage.create_if_absent("t1/lease.json", "v1")
    second = storage.replace_if_match("t1/lease.json", "v2", first)
    assert second and second != first
    assert storage.read_versioned("t1/lease.json") == ("v2", second)

    with pytest.raises(PreconditionFailed, match="changed since it was read"):
        storage.replace_if_match("t1/lease.json", "stale", first)
    assert storage.read_text("t1/lease.json") == "v2"

    # AWS answers 404 for If-Match on a missing key, SeaweedFS 412: to a claim both mean "not yours"
    with pytest.raises(PreconditionFailed if "seaweedfs" in storage_kind else KeyNotFound):
        storage.replace_if_match("t1/never.json", "x", second)
    assert "t1/never.json" not in storage.list_keys()


def test_delete_if_match_deletes_only_what_was_read(storage):
    """The reconcile's sweep of an ended row's claim: a rerun written since it was listed stays."""
    listed = storage.create_if_absent("t1/claim.json", "ended")
    rerun = storage.replace_if_match("t1/claim.json", "released for a rerun", listed)
    assert storage.delete_if_match("t1/claim.json", listed) is False
    assert storage.read_versioned("t1/claim.json") == ("released for a rerun", rerun), "the rerun stays"
    assert storage.delete_if_match("t1/claim.json", rerun) is True
    assert "t1/claim.json" not in storage.list_keys()
    assert storage.delete_if_match("t1/claim.json", rerun) is False, "gone already: not deleted by this call"


def test_read_object_gives_what_a_listing_shows(storage):
    storage.write_text("t5/status.json", '{"state": "done"}')
    text, read = storage.read_object("t5/status.json")
    [listed] = storage.list_objects("t5/")
    assert text == '{"state": "done"}'
    assert (read.key, read.size, read.etag) == (listed.key, listed.size, listed.etag)
    assert abs(read.modified - listed.modified) < 1.0, "the same time, on the store's clock"


def test_two_workers_renewing_the_same_lease(storage):
    storage.write_text("t2/lease.json", "held by nobody")
    _, seen_by_a = storage.read_versioned("t2/lease.json")
    _, seen_by_b = storage.read_versioned("t2/lease.json")
    storage.replace_if_match("t2/lease.json", "held by a", seen_by_a)
    with pytest.raises(PreconditionFailed):
        storage.replace_if_match("t2/lease.json", "held by b", seen_by_b)
    assert storage.read_text("t2/lease.json") == "held by a"


def test_read_versioned_etag_is_the_listed_one_and_modified_is_filled(storage):
    before = time.time()
    storage.write_text("t3/status.json", '{"state": "running"}')
    after = time.time()
    text, etag = storage.read_versioned("t3/status.json")
    assert text == '{"state": "running"}'
    [listed] = storage.list_objects("t3/")
    assert listed.key == "t3/status.json" and listed.etag == etag
    assert listed.size == len(text)
    # S3's LastModified has whole seconds; allow that and a little clock skew.
    assert before - 2 <= listed.modified <= after + 2
    with pytest.raises(KeyNotFound):
        storage.read_versioned("t3/missing.json")


def test_write_text_changes_the_etag_conditional_writers_hold(storage):
    etag = storage.create_if_absent("t4/claim", "mine")
    storage.write_text("t4/claim", "overwritten unconditionally")
    with pytest.raises(PreconditionFailed):
        storage.replace_if_match("t4/claim", "mine again", etag)


# -- LocalDirStorage under threads ----------------------------------------------


def test_local_create_race_has_one_winner_per_key(tmp_path):
    storage = LocalDirStorage((tmp_path / "bucket").as_uri())
    keys = [f"row{index}/claim" for index in range(50)]
    winners: dict[str, list[int]] = {key: [] for key in keys}
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(number: int) -> None:
        start.wait()
        for key in keys:
            try:
                storage.create_if_absent(key, f"worker {number}")
            except PreconditionFailed:
                continue
            with lock:
                winners[key].append(number)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert all(len(won) == 1 for won in winners.values()), {k: v for k, v in winners.items() if len(v) != 1}
    for key, [number] in winners.items():
        assert storage.read_text(key) == f"worker {number}"
    assert sorted(storage.list_keys()) == sorted(keys)  # no temporary or lock files listed


def test_local_compare_and_swap_counter_loses_no_update(tmp_path):
    storage = LocalDirStorage((tmp_path / "bucket").as_uri())
    storage.create_if_absent("counter", "0")
    start = threading.Barrier(8)

    def increment_20_times(_: int) -> int:
        start.wait()
        conflicts = 0
        for _ in range(20):
            while True:
                text, etag = storage.read_versioned("counter")
                try:
                    storage.replace_if_match("counter", str(int(text) + 1), etag)
                    break
                except PreconditionFailed:
                    conflicts += 1
        return conflicts

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(increment_20_times, range(8)))
    assert storage.read_text("counter") == "160"


# -- S3 specifics -----------------------------------------------------------------


def test_s3_conditional_headers_conflicts_retried_and_lost_races_not(s3, aws_faults):  # noqa: F811
    sent: list[dict] = []
    s3.client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
    etag = s3.create_if_absent("c/claim", "a")
    s3.replace_if_match("c/claim", "b", etag)
    assert sent[0]["If-None-Match"] == b"*" and sent[1]["If-Match"] == etag.encode()

    # Real S3 answers 409 ConditionalRequestConflict while another write of the key is in flight: it
    # decides nothing, and AWS says to retry it
    conflict = aws_faults.add(FaultRule(action="PutObject", status=409, code="ConditionalRequestConflict", times=2))
    s3.create_if_absent("c/other", "x")
    assert aws_faults.fired(conflict) == 2 and aws_faults.count("PutObject") == 5 and s3.read_text("c/other") == "x"
    refused = aws_faults.add(FaultRule(action="PutObject", status=412, code="PreconditionFailed", times=1))
    with pytest.raises(PreconditionFailed):
        s3.replace_if_match("c/claim", "c", s3.read_versioned("c/claim")[1])
    assert aws_faults.fired(refused) == 1 and s3.read_text("c/claim") == "b"


def test_s3_a_conflict_that_never_clears_is_given_up_after_a_bounded_number_of_tries(s3, aws_faults):  # noqa: F811
    aws_faults.reset_log()
    conflict = aws_faults.add(FaultRule(action="PutObject", status=409, code="ConditionalRequestConflict"))
    with pytest.raises(ClientError) as raised:
        s3.create_if_absent("c/busy", "x")
    assert raised.value.response["Error"]["Code"] == "ConditionalRequestConflict"
    assert aws_faults.fired(conflict) == CONFLICT_TRIES == aws_faults.count("PutObject"), "retried, never endlessly"
    aws_faults.remove(conflict)
    assert "c/busy" not in s3.list_keys()


def test_s3_missing_bucket(moto_server):  # noqa: F811
    storage = S3Storage("s3://no-such-conditional-bucket")
    with pytest.raises(BucketNotFound):
        storage.create_if_absent("k", "x")
    with pytest.raises(BucketNotFound):
        storage.read_versioned("k")


def test_s3_small_upload_is_one_put_with_content_md5(s3, aws_faults, tmp_path):  # noqa: F811
    source = tmp_path / "out.csv"
    source.write_bytes(os.urandom(4 * MiB))  # below the 5 MiB threshold
    md5 = hashlib.md5(source.read_bytes())
    sent: list[dict] = []
    s3.client.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
    aws_faults.reset_log()
    s3.upload_file(source, "t/results/out.csv")
    assert aws_faults.requests == [("s3", "PutObject")]
    assert sent[0]["Content-MD5"] == base64.b64encode(md5.digest())
    assert s3.head("t/results/out.csv").etag == md5.hexdigest()

    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    s3.upload_file(empty, "t/logs/empty.log")
    assert s3.head("t/logs/empty.log").size == 0


def test_s3_small_upload_refused_or_misreported_is_not_verified(s3, aws_faults, tmp_path):  # noqa: F811
    source = tmp_path / "r.bin"
    source.write_bytes(os.urandom(1000))
    # What S3 answers when the body that arrived does not have the Content-MD5 sent.
    aws_faults.add(FaultRule(action="PutObject", status=400, code="BadDigest", times=1, message="digest mismatch"))
    with pytest.raises(UploadNotVerified, match="BadDigest"):
        s3.upload_file(source, "t/r.bin")

    def other_etag(parsed, **_):
        parsed["ETag"] = '"0123456789abcdef0123456789abcdef"'

    s3.client.meta.events.register("after-call.s3.PutObject", other_etag)
    with pytest.raises(UploadNotVerified, match="answered ETag '0123456789abcdef0123456789abcdef'"):
        s3.upload_file(source, "t/r.bin")


def test_s3_large_upload_is_still_verified(s3, aws_faults, tmp_path):  # noqa: F811
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * MiB))
    aws_faults.reset_log()
    s3.upload_file(source, "t/big.bin")
    actions = [action for _, action in aws_faults.requests]
    assert actions[0] == "CreateMultipartUpload" and actions.count("UploadPart") == 2
    assert actions[-2:] == ["CompleteMultipartUpload", "HeadObject"]  # HeadObject: the verification
    assert s3.head("t/big.bin").etag == expected_etag(source, 5 * MiB, 5 * MiB)

    def replace_after_upload(**_):
        boto3.client("s3").put_object(Bucket=BUCKET, Key="camp/t/big.bin", Body=b"\0" * (6 * MiB))

    s3.client.meta.events.register("after-call.s3.CompleteMultipartUpload", replace_after_upload)
    with pytest.raises(UploadNotVerified, match="is not what was sent"):
        s3.upload_file(source, "t/big.bin")
