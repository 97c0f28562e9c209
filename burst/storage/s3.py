"""An S3 bucket (``s3://bucket[/prefix]``) through boto3's managed transfers.

Runs on nodes as well as on the dispatcher, so it imports boto3 and the standard library only.
Credentials come from the standard boto3 chain: the user's profile, a node's instance profile.

Every upload is verified. A file below the multipart threshold is one ``PutObject`` with
``Content-MD5``: S3 refuses (``BadDigest``) a body that arrives different, and the ETag it
answers must be the file's MD5. A larger one goes through s3transfer, then ``HeadObject`` must
report the local size and the ETag S3 computes for a multipart upload, ``md5(md5(part1) + ...
+ md5(partN)) + "-N"``, with the part size s3transfer itself uses (``ChunksizeAdjuster``).
Objects encrypted with SSE-KMS have ETags that are no MD5; for those only the size is compared
(boto3 already sends a CRC32 checksum with every part, which S3 checks on arrival).

Conditional writes (``create_if_absent``: ``If-None-Match: *``; ``replace_if_match``: ``If-Match``)
make claims and leases exactly-once: the loser gets ``PreconditionFailed`` (S3's 412). A 409
``ConditionalRequestConflict`` (another write of the key was in flight) decides nothing: AWS says to
retry it, and it is retried here; a 412 after it is marked ``after_retry`` (our own first try may have
been the write that won), so callers read the key back.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import time
from pathlib import Path
from urllib.parse import urlparse

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from burst.records import utf8_text
from burst.retry import retry_call
from burst.storage.base import DownloadDone, KeyNotFound, PreconditionFailed, Storage, StoredObject, UploadNotVerified
from burst.storage.s3_client import make_client
from burst.storage.s3_etag import expected_etag, md5_of_range

MiB = 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
_NOT_MD5_ENCRYPTION = {"aws:kms", "aws:kms:dsse"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
# 412: the condition is false. 409 ConditionalRequestConflict (another write of the key in flight): retried (burst.retry)
_PRECONDITION_CODES = {"PreconditionFailed", "412"}
_CONFLICT_CODE = "ConditionalRequestConflict"
CONFLICT_TRIES = 6
CONFLICT_SECONDS = 10.0


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _retried(error: ClientError) -> bool:
    """Whether botocore sent the request more than once before this answer."""
    return bool(error.response.get("ResponseMetadata", {}).get("RetryAttempts"))


class BucketNotFound(KeyNotFound):
    """The bucket itself does not exist (a KeyNotFound, so callers may treat both alike)."""


class DeleteFailed(RuntimeError):
    """S3 refused to delete keys (DeleteObjects listed them, or DeleteObject of one key was refused)."""


class S3Storage(Storage):
    """``s3://bucket[/prefix]``: keys are relative to the prefix."""

    def __init__(
        self,
        url: str,
        region: str | None = None,
        profile: str | None = None,
        *,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_concurrency: int = 8,
        user_agent_extra: str = "",
        max_attempts: int = 10,  # botocore's tries of one request (burst.retry.aws_config)
        endpoint_url: str | None = None,  # an S3-compatible store's; None: boto3's own (AWS_ENDPOINT_URL_S3, config, AWS)
    ):
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an S3 URL: {url!r} (use s3://bucket or s3://bucket/prefix)")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        if multipart_threshold < 1 or multipart_chunksize < 1:
            raise ValueError("multipart_threshold and multipart_chunksize must be positive")
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            # The classic transfer manager: its part sizes are the ones expected_etag predicts.
            preferred_transfer_client="classic",
        )
        self.client = make_client(profile, region, max_concurrency, user_agent_extra, max_attempts, endpoint_url)
        self._opened = dict(region=region, profile=profile, user_agent_extra=user_agent_extra, endpoint_url=endpoint_url)
        self._heard: tuple[float, float] | None = None  # (the store's Date, time.monotonic()) of its last answer
        self.client.meta.events.register("after-call.s3", self._note_date)

    # -- names ---------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        key = key.lstrip("/")
        if not key:
            raise ValueError(f"empty key in {self.url}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def object_url(self, key: str) -> str:
        return f"{self.url}/{key.lstrip('/')}"

    def _not_found(self, error: ClientError, key: str) -> KeyNotFound | None:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return BucketNotFound(f"bucket s3://{self.bucket} does not exist (looking for {self.object_url(key)})")
        if code in _MISSING_KEY_CODES:
            return KeyNotFound(f"{self.object_url(key)} does not exist")
        return None

    # -- objects -------------------------------------------------------------

    def head(self, key: str) -> StoredObject:
        """Size and ETag of one object; ``KeyNotFound`` if it is not there."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            missing = self._not_found(error, key)
            if missing:
                raise missing from None
            raise
        return StoredObject(key=key.lstrip("/"), size=response["ContentLength"], etag=response["ETag"].strip('"'))

    def etag_of(self, key: str) -> str:
        return self.head(key).etag

    def _lost_condition(self, error: ClientError) -> bool:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _PRECONDITION_CODES or status == 412

    def upload_file(self, local_path: Path, key: str) -> None:
        """Below the multipart threshold one ``PutObject`` with ``Content-MD5``, above it s3transfer + verify."""
        local_path = Path(local_path)
        size = local_path.stat().st_size
        if size >= self.multipart_threshold:
            self.client.upload_file(str(local_path), self.bucket, self._full_key(key), Config=self.transfer_config)
            self.verify_upload(local_path, key)
            return
        with open(local_path, "rb") as handle:
            digest = md5_of_range(handle, size)
            handle.seek(0)
            try:
                # S3 refuses (BadDigest) a body whose MD5 is not Content-MD5: nothing corrupt is stored.
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._full_key(key),
                    Body=handle,
                    ContentLength=size,
                    ContentMD5=base64.b64encode(digest).decode("ascii"),
                )
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                if code in ("BadDigest", "InvalidDigest"):
                    raise UploadNotVerified(
                        f"{self.object_url(key)} refused the upload of {local_path} ({code}): "
                        "what arrived is not what was read (did the file change while uploading?)"
                    ) from None
                missing = self._not_found(error, key)
                if isinstance(missing, BucketNotFound):
                    raise missing from None
                raise
        self._check_put_etag(response, digest.hex(), f"after uploading {local_path}", key)

    def verify_upload(self, local_path: Path, key: str) -> None:
        """Raise ``UploadNotVerified`` unless the object holds exactly ``local_path``."""
        local_path = Path(local_path)
        where = self.object_url(key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            if self._not_found(error, key):
                raise UploadNotVerified(f"{where} is missing after uploading {local_path}") from None
            raise
        local_size = local_path.stat().st_size
        if response["ContentLength"] != local_size:
            raise UploadNotVerified(
                f"{where} holds {response['ContentLength']} bytes after uploading {local_path} ({local_size} bytes)"
            )
        if response.get("ServerSideEncryption") in _NOT_MD5_ENCRYPTION:
            return  # ETag is no MD5 under SSE-KMS: size (and boto3's CRC32 on upload) only
        remote = response["ETag"].strip('"')
        expected = expected_etag(local_path, self.multipart_threshold, self.multipart_chunksize)
        if remote != expected:
            raise UploadNotVerified(
                f"{where} has ETag {remote} after uploading {local_path}, whose content gives {expected}: "
                "the object is not what was sent"
            )

    def download_file(self, key: str, local_path: Path) -> None:
        """Download (s3transfer writes a temporary file and renames it when complete)."""
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self._full_key(key), str(local_path), Config=self.transfer_config)
        except ClientError as error:
            missing = self._not_found(error, key)
            if missing:
                raise missing from None
            raise

    def download_many(self, items: list[tuple[StoredObject, Path]], on_done: DownloadDone, workers: int) -> None:
        """One s3transfer manager on this client for all; no HeadObject (``burst.storage.s3_download``)."""
        from burst.storage.s3_download import download_listed

        download_listed(self, items, on_done, workers)

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        """Objects under ``prefix`` (relative to the URL's prefix), sorted by key."""
        prefix = prefix.lstrip("/")
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for item in page.get("Contents", []):
                    modified = item.get("LastModified")
                    found.append(
                        StoredObject(
                            key=self._relative(item["Key"]),
                            size=item["Size"],
                            etag=item.get("ETag", "").strip('"'),
                            modified=modified.timestamp() if modified else 0.0,
                        )
                    )
        except ClientError as error:
            missing = self._not_found(error, prefix or "")
            if isinstance(missing, BucketNotFound):
                raise missing from None
            raise
        return sorted(found, key=lambda obj: obj.key)

    def _note_date(self, http_response=None, **_) -> None:
        date = getattr(http_response, "headers", {}).get("Date") if http_response is not None else None
        if date:
            try:
                self._heard = (email.utils.parsedate_to_datetime(date).timestamp(), time.monotonic())
            except (TypeError, ValueError):
                pass

    def clock(self) -> float:
        """The store's time: the ``Date`` (whole seconds) of its last answer, plus the time since; HeadBucket if none lately."""
        if self._heard is None or time.monotonic() - self._heard[1] > 60:
            self.client.head_bucket(Bucket=self.bucket)
        if self._heard is None:
            raise RuntimeError(f"s3://{self.bucket} answered without a Date header: its clock is unknown")
        date, heard = self._heard
        return date + (time.monotonic() - heard)

    def read_text(self, key: str) -> str:
        return self.read_versioned(key)[0]

    def write_text(self, key: str, text: str) -> str:
        return self._put_text(key, text)

    def _put_text(self, key: str, text: str, **conditions: str) -> str:
        """PutObject of ``text`` (plus ``IfMatch``/``IfNoneMatch``); the verified ETag, no quotes."""
        data = text.encode("utf-8")
        content_type = "application/json" if key.endswith(".json") else "text/plain; charset=utf-8"
        response = self.client.put_object(
            Bucket=self.bucket, Key=self._full_key(key), Body=data, ContentType=content_type, **conditions
        )
        return self._check_put_etag(response, hashlib.md5(data).hexdigest(), "for the text written", key)

    def _check_put_etag(self, response: dict, md5_hex: str, what: str, key: str = "") -> str:
        remote = response.get("ETag", "").strip('"')
        if response.get("ServerSideEncryption") in _NOT_MD5_ENCRYPTION:
            return remote  # no MD5 under SSE-KMS; the ETag still names the version
        if remote != md5_hex:
            raise UploadNotVerified(f"{self.object_url(key)} answered ETag {remote!r} {what}, not {md5_hex}")
        return remote

    def read_object(self, key: str) -> tuple[str, StoredObject]:
        """One GetObject: the text, and the ETag, size and time of exactly that text."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            missing = self._not_found(error, key)
            if missing:
                raise missing from None
            raise
        etag = response["ETag"].strip('"')
        with response["Body"] as body:
            data = body.read()
        obj = StoredObject(key=key.lstrip("/"), size=len(data), etag=etag, modified=response["LastModified"].timestamp())
        return utf8_text(data, key, etag), obj

    def _conditional_put(self, key: str, text: str, **condition: str) -> str:
        """``_put_text`` with a condition; a 409 conflict is retried (``retry_call``), then its ClientError stands."""
        retried: list[float] = []
        try:
            return retry_call(lambda: self._put_text(key, text, **condition), seconds=CONFLICT_SECONDS, tries=CONFLICT_TRIES,
                              retry_on=(ClientError,), retry_if=lambda error: _code(error) == _CONFLICT_CODE,
                              on_retry=lambda _, delay: retried.append(delay), first=0.1, cap=2.0)
        except ClientError as error:
            if retried:  # sent more than once: a 412 now may answer our own write
                error.response.setdefault("ResponseMetadata", {})["RetryAttempts"] = len(retried) + 1
            raise

    def create_if_absent(self, key: str, text: str) -> str:
        try:
            return self._conditional_put(key, text, IfNoneMatch="*")
        except ClientError as error:
            if self._lost_condition(error):
                raise PreconditionFailed(f"{self.object_url(key)} exists already", _retried(error)) from None
            missing = self._not_found(error, key)
            if isinstance(missing, BucketNotFound):
                raise missing from None
            raise

    def replace_if_match(self, key: str, text: str, etag: str) -> str:
        try:
            return self._conditional_put(key, text, IfMatch=etag)
        except ClientError as error:
            if self._lost_condition(error):
                raise PreconditionFailed(f"{self.object_url(key)} changed since it was read (ETag {etag})",
                                         _retried(error)) from None
            missing = self._not_found(error, key)
            if missing:
                raise missing from None
            raise

    def delete_if_match(self, key: str, etag: str) -> bool:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full_key(key), IfMatch=etag)
        except ClientError as error:
            missing = self._not_found(error, key)
            if isinstance(missing, BucketNotFound):
                raise missing from None
            if missing is not None or self._lost_condition(error):
                return False  # gone, or changed (SeaweedFS answers a gone key 412 too)
            raise
        return True

    def delete_keys(self, keys: list[str]) -> None:
        """Delete in batches of 1000; keys already gone are fine."""
        full_keys = list(dict.fromkeys(self._full_key(key) for key in keys))
        if len(full_keys) == 1:  # one key: a DeleteObject (no body to checksum; checked against that key's ARN)
            try:
                self.client.delete_object(Bucket=self.bucket, Key=full_keys[0])
            except ClientError as error:
                missing = self._not_found(error, full_keys[0])
                if isinstance(missing, BucketNotFound):
                    raise missing from None
                detail = error.response.get("Error", {})
                raise DeleteFailed(f"could not delete {self.object_url(keys[0])} "
                                   f"({detail.get('Code')}: {detail.get('Message')})") from None
            return
        failed = []
        for start in range(0, len(full_keys), DELETE_BATCH):
            batch = full_keys[start : start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
                )
            except ClientError as error:
                missing = self._not_found(error, batch[0])
                if isinstance(missing, BucketNotFound):
                    raise missing from None
                raise
            failed.extend(response.get("Errors", []))
        if failed:
            listed = ", ".join(f"{e.get('Key')} ({e.get('Code')}: {e.get('Message')})" for e in failed[:5])
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise DeleteFailed(f"could not delete from {self.url}: {listed}{more}")

    def quick(self, attempts: int = 1) -> "S3Storage":
        return S3Storage(self.url, **self._opened, max_concurrency=1, max_attempts=attempts)

    def close(self) -> None:
        self.client.close()

