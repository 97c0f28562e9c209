"""Open a bucket by URL. Backends are imported lazily so the node agent needs boto3 only for s3://."""

from __future__ import annotations

from urllib.parse import urlparse

from burst.storage.base import KeyNotFound, PreconditionFailed, Storage, StoredObject, UploadNotVerified

__all__ = ["open_storage", "KeyNotFound", "PreconditionFailed", "Storage", "StoredObject", "UploadNotVerified"]


def open_storage(url: str, **options) -> Storage:
    """``file:///abs/dir`` -> LocalDirStorage; ``s3://bucket[/prefix]`` -> S3Storage.

    ``options`` go to the backend (S3: ``region``, ``profile``).
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from burst.storage.localdir import LocalDirStorage

        return LocalDirStorage(url)
    if parsed.scheme == "s3":
        from burst.storage.s3 import S3Storage

        return S3Storage(url, **options)
    raise ValueError(f"unsupported storage URL {url!r}: use s3://bucket/prefix or file:///dir")
