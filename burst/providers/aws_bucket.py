"""The job's bucket: created private (public access blocked) and tagged, or found."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from burst.errors import UserError
from burst.providers.aws_names import _code, _message


def _owner_tags(s3, bucket: str) -> dict[str, str] | None:
    """The tags of ``bucket`` if it exists and is the caller's (None: no such bucket, or not readable as ours)."""
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket).get("TagSet", [])}
    except ClientError as error:
        code = _code(error)
        if code in ("NoSuchTagSet", "NoSuchTagSetError"):
            return {}
        if code in ("NoSuchBucket", "AccessDenied", "AllAccessDisabled", "PermanentRedirect", "301"):
            return None  # not there, or not the caller's: CreateBucket tells which
        raise


def check_adoption(s3, bucket: str, job: str, adopt: bool) -> bool:
    """An existing bucket of the user's that burst did not tag for this job is refused unless ``adopt``.

    True: the bucket is burst's own, left empty and untagged by a run that stopped; tag it.

    ``cleanup`` deletes only the keys burst's layout names, but a bucket of other data is
    not burst's to fill unasked.
    """
    tags = _owner_tags(s3, bucket)
    if tags is None or adopt or (tags.get("job") == job and tags.get("burst") == "1"):
        return False
    if not tags and not s3.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount"):
        return True  # empty and untagged: a run stopped between CreateBucket and its tagging; tag it now
    raise UserError(
        f"The bucket {bucket!r} already exists in your account and burst did not make it for job {job!r} "
        f"(its tags: {', '.join(f'{k}={v}' for k, v in sorted(tags.items())) or 'none'}). Give another name with "
        f"--bucket, or --adopt-bucket to use it all the same (burst writes under the job's keys, and "
        f"`cleanup` deletes only those)."
    )


def is_aws_endpoint(client) -> bool:
    """Whether the client talks to AWS itself (not an S3-compatible store given by ``AWS_ENDPOINT_URL_S3``)."""
    return is_aws_endpoint_url(client.meta.endpoint_url)


def is_aws_endpoint_url(url: str | None) -> bool:
    host = urlparse(url or "").hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _optional_on_other_stores(s3, call, what: str, warnings: list[str], **kwargs) -> None:
    """``call(**kwargs)``; on a store that is not AWS, NotImplemented (501) is a warning, never a failure."""
    try:
        call(**kwargs)
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if is_aws_endpoint(s3) or (_code(error) != "NotImplemented" and status != 501):
            raise
        warnings.append(f"the S3 store at {s3.meta.endpoint_url} does not implement {what} "
                        f"({error.operation_name}): the bucket {kwargs['Bucket']!r} is used as the store keeps it")


def ensure_bucket(s3, bucket: str, region: str, tags: list[dict[str, str]], warnings: list[str] | None = None,
                  tag_anyway: bool = False) -> bool:
    """Create the private bucket if needed; returns True when created now.

    ``warnings`` collects what an S3-compatible store (not AWS) does not implement:
    blocking public access, tagging. On AWS every step is required.
    """
    warnings = [] if warnings is None else warnings
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    created = True
    try:
        s3.create_bucket(**kwargs)
    except ClientError as error:
        code = _code(error)
        if code == "BucketAlreadyOwnedByYou":
            created = False
        elif code == "BucketAlreadyExists":
            raise UserError(
                f"The bucket name {bucket!r} is taken by another AWS account (bucket names are "
                f"global). Choose another job name, or give a bucket name of your own with "
                f"--bucket."
            ) from None
        elif code in ("InvalidBucketName", "IllegalLocationConstraintException", "InvalidLocationConstraint"):
            raise UserError(f"Cannot create the bucket {bucket!r} in {region}: {_message(error)}. Use --bucket to give another name.") from None
        else:
            raise
    _optional_on_other_stores(
        s3, s3.put_public_access_block, "blocking public access", warnings,
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if created or tag_anyway:
        _optional_on_other_stores(s3, s3.put_bucket_tagging, "bucket tags", warnings,
                                  Bucket=bucket, Tagging={"TagSet": tags})
    return created

