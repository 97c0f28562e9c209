"""get_s3_files: resumable downloads from S3 (moto over HTTP) and a local bucket."""

import boto3

from burst.results import download_all
from burst.storage import open_storage
from tests.conftest import REPO, run_script
from tests.motoserver import moto_server  # noqa: F401  (fixture)


def test_download_skips_complete_files_and_refetches_an_object_rewritten_with_the_same_size(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="dl-job")
    storage = open_storage("s3://dl-job")
    storage.write_text("dl0/results/a.txt", "first")
    storage.write_text("dl0/status.json", "{}")
    target = tmp_path / "out"
    target.mkdir()

    assert download_all(storage, target) == (2, 0)
    assert download_all(storage, target) == (0, 2)
    storage.write_text("dl0/results/a.txt", "again")  # same size, new content
    assert download_all(storage, target) == (1, 1)
    assert (target / "dl0" / "results" / "a.txt").read_text() == "again"


def test_get_s3_files_takes_a_bucket_url_without_a_campaign_record(moto_server, tmp_path):
    boto3.client("s3").create_bucket(Bucket="url-job")
    open_storage("s3://url-job").write_text("url0/logs/stdout.log", "hello\n")
    result = run_script(str(REPO / "get_s3_files.py"), "s3://url-job", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "url0" / "logs" / "stdout.log").read_text() == "hello\n"


def test_merge_of_a_folder_without_statuses_is_a_clear_error(tmp_path):
    (tmp_path / "bucket").mkdir()
    result = run_script(str(REPO / "get_s3_files.py"), (tmp_path / "bucket").as_uri(), str(tmp_path / "out"), "--merge")
    assert result.returncode == 2 and "holds no <tag>/status.json" in result.stderr
