"""The job's bucket: created private (public access blocked) and tagged, or found."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from burst.errors import UserError
from burst.providers.aws_names import _code, _message


def ensure_bucket(s3, bucket: str, region: str, tags: list[dict[str, str]]) -> bool:
    """Create the private bucket if needed; returns True when created now."""
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
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if created:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    return created

