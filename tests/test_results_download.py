"""get_s3_files: resumable downloads from S3 (moto over HTTP) and a local bucket; never outside DIR; one GET per object."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from burst.results.download import MANIFEST_NAME, download_all, local_path
from burst.storage import open_storage
from burst.storage.s3 import MiB, S3Storage
from tests.awsfaults import aws_faults  # noqa: F401  (fixture)
from tests.conftest import REPO, run_script
from tests.motoserver import moto_server  # noqa: F401  (fixture)
from tests.seaweed import seaweed_s3  # noqa: F401  (fixture)

GET_FILES = str(REPO / "get_s3_files.py")
ESCAPING_KEYS = ["../../x", "a/../../y", "/abs", "a//b", "./dot"]


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


def test_download_skips_complete_files_and_refetches_an_object_rewritten_with_the_same_size(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="dl-job")
    storage = open_storage("s3://dl-job")
    storage.write_text("dl0/results/a.txt", "first")
    storage.write_text("dl0/status.json", "{}")
    target = tmp_path / "out"

    first = download_all(storage, target)
    assert (first.downloaded, first.skipped, first.failed, first.unsafe) == (2, 0, [], [])
    assert (download_all(storage, target).downloaded, download_all(storage, target).skipped) == (0, 2)
    storage.write_text("dl0/results/a.txt", "again")  # same size, new content
    third = download_all(storage, target)
    assert (third.downloaded, third.skipped) == (1, 1)
    assert (target / "dl0" / "results" / "a.txt").read_text() == "again"
    assert files_under(target) == {"dl0/results/a.txt", "dl0/status.json", MANIFEST_NAME}, "no temporary file left"


def test_get_s3_files_takes_a_bucket_url_without_a_campaign_record(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="url-job")
    open_storage("s3://url-job").write_text("url0/logs/stdout.log", "hello\n")
    result = run_script(GET_FILES, "s3://url-job", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "url0" / "logs" / "stdout.log").read_text() == "hello\n"


def test_merge_of_a_folder_without_statuses_is_a_clear_error(tmp_path):
    (tmp_path / "bucket").mkdir()
    result = run_script(GET_FILES, (tmp_path / "bucket").as_uri(), str(tmp_path / "out"), "--merge")
    assert result.returncode == 2 and "holds no state/ended/<tag>.json" in result.stderr


@pytest.mark.parametrize("key", ESCAPING_KEYS + ["", MANIFEST_NAME, "a/.", "x/\0/y"])
def test_keys_that_are_no_plain_relative_path_get_no_local_path(tmp_path, key):
    path, why = local_path(tmp_path / "out", key)
    assert path is None and why


def test_plain_keys_land_inside_dir(tmp_path):
    path, _ = local_path(tmp_path / "out", "tag0/attempts/1/results/a b..c.csv")
    assert path == (tmp_path / "out").resolve() / "tag0" / "attempts" / "1" / "results" / "a b..c.csv"


def test_s3_keys_leaving_dir_are_skipped_with_a_warning_and_the_rest_downloads(moto_server, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="escape-job")
    for key in ESCAPING_KEYS + ["ok/c.txt", "top.txt"]:
        s3.put_object(Bucket="escape-job", Key=key, Body=f"content of {key}".encode())
    area = tmp_path / "area"
    out = area / "one" / "out"  # "../../x" would be area/x

    result = run_script(GET_FILES, "s3://escape-job", str(out))
    assert result.returncode == 0, result.stderr
    assert files_under(area) == {"one/out/ok/c.txt", "one/out/top.txt", f"one/out/{MANIFEST_NAME}"}
    assert (out / "ok" / "c.txt").read_text() == "content of ok/c.txt"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    for key in ESCAPING_KEYS:
        assert sum(repr(key) in line for line in warnings) == 1, (key, result.stderr)
    assert len(warnings) == len(ESCAPING_KEYS) and "Traceback" not in result.stderr
    assert "downloaded 2 file(s)" in result.stdout


def test_a_local_bucket_key_through_a_symlink_in_dir_is_skipped_and_the_rest_downloads(tmp_path):
    bucket = tmp_path / "bucket"
    (bucket / "link").mkdir(parents=True)
    (bucket / "link" / "x.txt").write_text("would escape")
    (bucket / "good.txt").write_text("good")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "link")  # DIR holds a link to elsewhere: "link/x.txt" would be written there

    result = run_script(GET_FILES, bucket.as_uri(), str(out))
    assert result.returncode == 0, result.stderr
    assert list(outside.iterdir()) == []
    assert (out / "good.txt").read_text() == "good"
    assert "'link/x.txt'" in result.stderr and "outside" in result.stderr


@pytest.mark.parametrize("source", ["s3://no-such-bucket-here", "file:///no/such/bucket/folder", "ftp://example.org/x", "s3:///x"])
def test_missing_buckets_and_unsupported_urls_are_one_message_and_exit_2(moto_server, tmp_path, source):
    result = run_script(GET_FILES, source, str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr


def test_each_object_is_one_get_and_no_head(aws_faults, tmp_path):  # noqa: F811
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="count-job")
    for n in range(25):
        s3.put_object(Bucket="count-job", Key=f"t{n}/attempts/1/results/r.csv", Body=f"n\n{n}\n".encode())
    aws_faults.reset_log()

    report = download_all(open_storage("s3://count-job"), tmp_path / "out")
    assert report.downloaded == 25
    assert aws_faults.count("GetObject") == 25 and aws_faults.count("HeadObject") == 0
    assert aws_faults.count("ListObjectsV2") == 1
    assert (tmp_path / "out" / "t7" / "attempts" / "1" / "results" / "r.csv").read_text() == "n\n7\n"

    aws_faults.reset_log()
    assert download_all(open_storage("s3://count-job"), tmp_path / "out").skipped == 25
    assert aws_faults.requests == [("s3", "ListObjectsV2")], "a complete folder costs one listing"


def test_a_large_object_is_ranged_gets_without_head(aws_faults, tmp_path):  # noqa: F811
    boto3.client("s3").create_bucket(Bucket="large-job")
    data = os.urandom(12 * MiB + 5)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    storage = S3Storage("s3://large-job", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    storage.upload_file(source, "t0/attempts/1/results/big.bin")
    aws_faults.reset_log()

    report = download_all(storage, tmp_path / "out")
    assert report.downloaded == 1 and report.failed == []
    assert (tmp_path / "out" / "t0" / "attempts" / "1" / "results" / "big.bin").read_bytes() == data
    assert aws_faults.count("HeadObject") == 0 and aws_faults.count("GetObject") == 3  # 5 + 5 + 2 MiB


def pandas_imported(*args: str) -> bool:
    result = run_script("-X", "importtime", GET_FILES, *args)
    assert result.returncode == 0, result.stderr
    return any(line.rsplit("|", 1)[-1].strip() == "pandas" for line in result.stderr.splitlines())


def test_pandas_is_imported_only_for_merge(tmp_path):
    bucket = tmp_path / "bucket"
    (bucket / "t0").mkdir(parents=True)
    (bucket / "t0" / "status.json").write_text(json.dumps({"job": "p", "tag": "t0", "state": "done"}))
    assert not pandas_imported(bucket.as_uri(), str(tmp_path / "out"))
    assert pandas_imported(bucket.as_uri(), str(tmp_path / "out"), "--merge")


@pytest.mark.parametrize("text", ["2026-11-22T15:04:05.123Z", "2026-11-22T15:04:05Z", "Sun, 22 Nov 2026 15:04:05 GMT",
                                  "1700000000", "2026-11-22T15:04:05"])
def test_the_fast_timestamp_parser_agrees_with_botocore(text):
    import botocore.utils

    from burst.storage.s3_client import parse_timestamp

    assert parse_timestamp(text) == botocore.utils.parse_timestamp(text)


def test_objects_that_fail_are_reported_and_fetched_by_the_next_run(aws_faults, backoffs, tmp_path):  # noqa: F811
    from tests.awsfaults import INTERNAL_ERROR

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="flaky-job")
    for n in range(3):
        s3.put_object(Bucket="flaky-job", Key=f"t{n}/status.json", Body=b"{}")
    rule = aws_faults.add(INTERNAL_ERROR.on("GetObject"))

    failed = download_all(open_storage("s3://flaky-job"), tmp_path / "out")
    assert failed.downloaded == 0 and sorted(entry.split(":")[0] for entry in failed.failed) == [
        "t0/status.json", "t1/status.json", "t2/status.json"]
    assert files_under(tmp_path / "out") == {MANIFEST_NAME}, "nothing half-written under a final name"

    aws_faults.remove(rule)
    again = download_all(open_storage("s3://flaky-job"), tmp_path / "out")
    assert (again.downloaded, again.skipped, again.failed) == (3, 0, [])


def test_missing_aws_credentials_are_one_message_and_exit_2(moto_server, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = run_script(GET_FILES, "s3://some-bucket", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: No usable AWS credentials") and "aws configure" in result.stderr


TRICKY_OBJECTS = {"t0/attempts/1/results/a b+c=ü%.csv": b"x,y\n1,2\n", "t0/attempts/1/results/empty.txt": b"",
                  "t1/status.json": b"{}", "t1/attempts/1/results/data.bin": os.urandom(300_000)}
WITHOUT_AWSCRT = ("import runpy, sys; sys.modules['awscrt'] = None; sys.argv = sys.argv[1:]; "
                  "runpy.run_path(sys.argv[0], run_name='__main__')")


@pytest.mark.parametrize("store, awscrt", [("moto", True), ("seaweed", True), ("seaweed", False)])
def test_the_same_files_and_bytes_arrive_from_moto_and_seaweedfs_with_or_without_awscrt(request, tmp_path, store,
                                                                                         awscrt):
    """awscrt's native client fetches by default; where awscrt is missing, s3transfer does the same."""
    if store == "moto":
        request.getfixturevalue("moto_server")
        bucket = "same-job"
        boto3.client("s3").create_bucket(Bucket=bucket)
    else:
        bucket = request.getfixturevalue("seaweed_s3")
    for key, body in TRICKY_OBJECTS.items():
        boto3.client("s3").put_object(Bucket=bucket, Key=f"job/{key}", Body=body)
    boto3.client("s3").put_object(Bucket=bucket, Key="other/x.txt", Body=b"not under job/")

    out = tmp_path / "out"
    result = run_script(*(() if awscrt else ("-c", WITHOUT_AWSCRT)), GET_FILES, f"s3://{bucket}/job", str(out))
    assert result.returncode == 0 and "downloaded 4 file(s)" in result.stdout, result.stderr
    assert files_under(out) == set(TRICKY_OBJECTS) | {MANIFEST_NAME}, "no temporary file, nothing outside job/"
    assert {key: (out / key).read_bytes() for key in TRICKY_OBJECTS} == TRICKY_OBJECTS


def test_an_object_rewritten_after_the_listing_is_reported_and_not_written(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="stale-job")
    storage = open_storage("s3://stale-job")
    storage.write_text("t0/status.json", '{"state": "running"}')
    [listed] = storage.list_objects()
    storage.write_text("t0/status.json", '{"state": "done"}')  # after the listing: another ETag

    ends = []
    out = tmp_path / "out"
    out.mkdir()
    storage.download_many([(listed, out / "status.json")], lambda obj, error: ends.append((obj.key, str(error))), 4)
    assert ends == [("t0/status.json", "it changed since it was listed (ETag no longer matches)")]
    assert list(out.iterdir()) == [], "neither the file nor a temporary one"


def test_a_bucket_in_another_region_downloads_whole(aws_faults, tmp_path):  # noqa: F811
    """awscrt signs for the client's region and follows no redirect: such a bucket stays with botocore."""
    from tests.awsfaults import Fault

    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="far-job", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    boto3.client("s3", region_name="eu-west-1").put_object(Bucket="far-job", Key="t0/status.json", Body=b"{}")
    # what S3 answers a request signed for another region than the bucket's
    aws_faults.add(Fault(400, "AuthorizationHeaderMalformed", "the region 'us-east-1' is wrong; expecting 'eu-west-1'",
                         "s3").on("GetObject", user_agent="CRTS3NativeClient"))

    report = download_all(S3Storage("s3://far-job", region="us-east-1"), tmp_path / "out")
    assert (report.downloaded, report.failed) == (1, [])
    assert (tmp_path / "out" / "t0" / "status.json").read_bytes() == b"{}"
