"""A bucket of the user's that burst did not make is refused unless adopted; cleanup deletes only burst's keys."""

from __future__ import annotations

from tests.conftest import REPO, run_script, write_campaign
from tests.motoserver import admin, moto_ami, moto_server  # noqa: F401  (fixtures)

DISPATCHER = str(REPO / "dispatcher.py")


def keys_of(bucket: str) -> list[str]:
    s3 = admin().session().client("s3")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_an_existing_bucket_is_adopted_only_when_asked_and_cleanup_keeps_what_is_not_burst(tmp_path, moto_ami):  # noqa: F811
    s3 = admin().session().client("s3")
    s3.create_bucket(Bucket="labdata")
    s3.put_object(Bucket="labdata", Key="papers/draft.tex", Body=b"mine")
    s3.put_object(Bucket="labdata", Key="notes.txt", Body=b"mine too")
    jobfile, install = write_campaign(tmp_path / "adopt", [("t3.micro", "true")])
    # -d without -c: the rows wait for machines; nothing is launched
    args = [DISPATCHER, moto_ami, "adopt", str(jobfile), "-d", "--install", str(install), "--bucket", "labdata",
            "--ssh-cidr", "203.0.113.7/32", "--yes"]
    refused = run_script(*args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "The bucket 'labdata' already exists in your account and burst did not make it for job 'adopt'" in refused.stderr
    assert "--adopt-bucket" in refused.stderr and "--bucket" in refused.stderr
    assert admin().session().client("ec2").describe_key_pairs()["KeyPairs"] == [], "nothing was made"
    assert keys_of("labdata") == ["notes.txt", "papers/draft.tex"]

    adopted = run_script(*args, "--adopt-bucket")
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    assert "campaign.json" in keys_of("labdata")
    assert run_script(*args).returncode == 0, "a re-run keeps --adopt-bucket, as every option typed once"

    cleaned = run_script("-m", "burst", "cleanup", "adopt", "--yes")
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert keys_of("labdata") == ["notes.txt", "papers/draft.tex"], "only the keys burst's layout names are deleted"
    assert "kept 2 file(s) of s3://labdata that burst did not write (notes.txt, papers/draft.tex)" in cleaned.stdout


def test_a_bucket_burst_made_for_the_job_is_used_again_without_asking(tmp_path, moto_ami):  # noqa: F811
    jobfile, install = write_campaign(tmp_path / "again", [("t3.micro", "true")])
    args = [DISPATCHER, moto_ami, "again", str(jobfile), "-d", "--install", str(install),
            "--ssh-cidr", "203.0.113.7/32", "--yes"]
    assert run_script(*args).returncode == 0
    tags = admin().session().client("s3").get_bucket_tagging(Bucket="again")["TagSet"]
    assert {"Key": "job", "Value": "again"} in tags
    again = run_script(*args)
    assert again.returncode == 0, again.stdout + again.stderr
