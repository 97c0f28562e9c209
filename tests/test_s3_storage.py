"""S3Storage against moto in server mode and against SeaweedFS: every call crosses real HTTP."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import pytest

from burst.storage import KeyNotFound, StoredObject, UploadNotVerified, open_storage
from burst.retry import retry_call
from burst.storage.s3 import BucketNotFound, MiB, S3Storage, expected_etag
from tests.motoserver import moto_server  # noqa: F401  (fixture)
from tests.seaweed import seaweed_s3  # noqa: F401  (fixture)

BUCKET = "burst-test-bucket"


@pytest.fixture(params=["moto", "seaweedfs"])
def bucket(request) -> str:
    """An empty bucket on moto, or on SeaweedFS (a second, real S3 implementation)."""
    if request.param == "seaweedfs":
        return request.getfixturevalue("seaweed_s3")
    request.getfixturevalue("moto_server")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def small_parts_storage(url: str) -> S3Storage:
    # S3 (and moto) refuse parts under 5 MiB except the last one.
    return S3Storage(url, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)


def write_random(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def count_calls(client, operation: str) -> list[str]:
    calls: list[str] = []
    client.meta.events.register(f"before-call.s3.{operation}", lambda **kwargs: calls.append(operation))
    return calls


def test_open_storage_gives_s3_storage(bucket):
    storage = open_storage(f"s3://{bucket}/some/prefix/", region="us-east-1")
    assert isinstance(storage, S3Storage)
    assert storage.url == f"s3://{bucket}/some/prefix"
    assert storage.bucket == bucket and storage.prefix == "some/prefix"


def test_small_file_round_trip(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}")
    source = write_random(tmp_path / "out.bin", 1234)
    storage.upload_file(source, "paj170/results/out.bin")

    head = storage.head("paj170/results/out.bin")
    assert head.size == 1234
    assert head.etag == hashlib.md5(source.read_bytes()).hexdigest()
    assert storage.etag_of("paj170/results/out.bin") == head.etag

    target = tmp_path / "down" / "deep" / "out.bin"
    storage.download_file("paj170/results/out.bin", target)
    assert target.read_bytes() == source.read_bytes()
    assert storage.list_objects() == [StoredObject("paj170/results/out.bin", 1234, head.etag)]


def test_empty_file_round_trip(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}")
    source = tmp_path / "empty.log"
    source.write_bytes(b"")
    storage.upload_file(source, "t/logs/empty.log")
    storage.download_file("t/logs/empty.log", tmp_path / "back.log")
    assert (tmp_path / "back.log").read_bytes() == b""


def test_multipart_round_trip_and_etag(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}/camp")
    size = 11 * MiB + 17  # three parts: 5 + 5 + 1 MiB and a bit
    source = write_random(tmp_path / "big.bin", size)
    uploads = count_calls(storage.client, "CreateMultipartUpload")
    parts = count_calls(storage.client, "UploadPart")

    storage.upload_file(source, "tag1/results/big.bin")

    assert uploads == ["CreateMultipartUpload"] and len(parts) == 3
    etag = storage.etag_of("tag1/results/big.bin")
    assert etag.endswith("-3")
    assert etag == expected_etag(source, 5 * MiB, 5 * MiB)
    raw_key = boto3.client("s3").head_object(Bucket=bucket, Key="camp/tag1/results/big.bin")
    assert raw_key["ContentLength"] == size

    target = tmp_path / "big.down"
    storage.download_file("tag1/results/big.bin", target)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()


def test_expected_etag_follows_s3transfer_part_size(tmp_path):
    # Below 5 MiB s3transfer raises the part size to 5 MiB: a 6 MiB file in 1 MiB chunks is 2 parts.
    source = write_random(tmp_path / "six.bin", 6 * MiB)
    data = source.read_bytes()
    parts = [data[: 5 * MiB], data[5 * MiB :]]
    joined = b"".join(hashlib.md5(part).digest() for part in parts)
    assert expected_etag(source, 1 * MiB, 1 * MiB) == hashlib.md5(joined).hexdigest() + "-2"
    assert expected_etag(source, 8 * MiB, 1 * MiB) == hashlib.md5(data).hexdigest()


def overwrite_after(storage: S3Storage, operation: str, key: str, size: int) -> None:
    """A concurrent writer: right after ``operation`` succeeds, another client replaces the object."""
    other = boto3.client("s3")

    def replace(**kwargs):
        other.put_object(Bucket=storage.bucket, Key=key, Body=b"\0" * size)

    storage.client.meta.events.register(f"after-call.s3.{operation}", replace)


def test_verification_catches_object_replaced_after_single_put(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}")
    source = write_random(tmp_path / "r.bin", 4096)
    storage.upload_file(source, "t/r.bin")  # one PutObject, checked by its Content-MD5 and the ETag it answers
    boto3.client("s3").put_object(Bucket=storage.bucket, Key="t/r.bin", Body=b"\0" * 4096)  # same size, other bytes
    with pytest.raises(UploadNotVerified, match=rf"s3://{bucket}/t/r.bin has ETag"):
        storage.verify_upload(source, "t/r.bin")


def test_verification_catches_object_replaced_after_multipart(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}")
    source = write_random(tmp_path / "m.bin", 6 * MiB)
    overwrite_after(storage, "CompleteMultipartUpload", "t/m.bin", 6 * MiB)
    with pytest.raises(UploadNotVerified, match="is not what was sent"):
        storage.upload_file(source, "t/m.bin")


def test_verify_upload_against_other_content_and_size(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}")
    source = write_random(tmp_path / "a.bin", 2048)
    storage.upload_file(source, "t/a.bin")
    storage.verify_upload(source, "t/a.bin")  # the file itself passes
    same_size = write_random(tmp_path / "b.bin", 2048)
    with pytest.raises(UploadNotVerified, match="ETag"):
        storage.verify_upload(same_size, "t/a.bin")
    longer = write_random(tmp_path / "c.bin", 2049)
    with pytest.raises(UploadNotVerified, match="holds 2048 bytes"):
        storage.verify_upload(longer, "t/a.bin")
    with pytest.raises(UploadNotVerified, match="missing after"):
        storage.verify_upload(source, "t/never-uploaded.bin")


def test_missing_key_raises_key_not_found(bucket, tmp_path):
    storage = small_parts_storage(f"s3://{bucket}/camp")
    with pytest.raises(KeyNotFound, match=rf"s3://{bucket}/camp/t/status.json does not exist"):
        storage.read_text("t/status.json")
    with pytest.raises(KeyNotFound, match=rf"s3://{bucket}/camp/t/out.bin"):
        storage.download_file("t/out.bin", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    with pytest.raises(KeyNotFound):
        storage.head("t/out.bin")


def test_missing_bucket_raises(moto_server, tmp_path):  # noqa: F811
    storage = small_parts_storage("s3://no-such-bucket-here")
    with pytest.raises(BucketNotFound, match="bucket s3://no-such-bucket-here does not exist"):
        storage.read_text("x.txt")
    with pytest.raises(BucketNotFound):
        storage.list_objects()
    # no retry brings a bucket back: a worker saving to it gives up at once, never waits out --save-patience
    saved = tmp_path / "out.csv"
    saved.write_text("a,b\n")
    with pytest.raises(BucketNotFound):
        retry_call(lambda: storage.upload_file(saved, "t/out.csv"), seconds=600, sleep=pytest.fail)


def test_text_round_trip_utf8(bucket):
    storage = small_parts_storage(f"s3://{bucket}")
    text = '{"state": "done", "note": "ünïcødé ✓"}\n'
    storage.write_text("t/status.json", text)
    assert storage.read_text("t/status.json") == text
    raw = boto3.client("s3").get_object(Bucket=bucket, Key="t/status.json")
    assert raw["ContentType"] == "application/json"
    assert raw["Body"].read() == text.encode("utf-8")


def test_list_with_prefix_is_relative_and_exact(bucket):
    s3 = boto3.client("s3")
    for key in ["run1/a/x.txt", "run1/a/y.txt", "run1/b/z.txt", "run10/a/other.txt", "elsewhere.txt"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    storage = small_parts_storage(f"s3://{bucket}/run1")
    assert storage.list_keys() == ["a/x.txt", "a/y.txt", "b/z.txt"]
    assert storage.list_keys("a/") == ["a/x.txt", "a/y.txt"]
    assert storage.list_keys("c/") == []
    sizes = {obj.key: obj.size for obj in storage.list_objects("b")}
    assert sizes == {"b/z.txt": len("run1/b/z.txt")}
    whole = small_parts_storage(f"s3://{bucket}")
    assert "run10/a/other.txt" in whole.list_keys("run1")


def test_list_paginates(bucket):
    s3 = boto3.client("s3")
    for index in range(7):
        s3.put_object(Bucket=bucket, Key=f"p/{index}.txt", Body=b"x")
    storage = small_parts_storage(f"s3://{bucket}")
    pages = count_calls(storage.client, "ListObjectsV2")
    original = storage.client.get_paginator

    def small_pages(name):
        paginator = original(name)
        paginate = paginator.paginate
        paginator.paginate = lambda **kwargs: paginate(PaginationConfig={"PageSize": 3}, **kwargs)
        return paginator

    storage.client.get_paginator = small_pages
    assert storage.list_keys("p/") == [f"p/{index}.txt" for index in range(7)]
    assert len(pages) == 3


def test_delete_keys_batches_of_1000(bucket):
    storage = small_parts_storage(f"s3://{bucket}/camp")
    for name in ["t1/a", "t1/b", "t2/c"]:
        storage.write_text(name, name)
    calls = count_calls(storage.client, "DeleteObjects")
    # Keys that were never there are fine to delete; 1001 keys need two calls.
    keys = ["t1/a", "t1/b"] + [f"gone/{index}" for index in range(999)]
    storage.delete_keys(keys)
    assert len(calls) == 2
    assert storage.list_keys() == ["t2/c"]
    storage.delete_keys([])
    assert len(calls) == 2
