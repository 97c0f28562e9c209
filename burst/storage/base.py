"""The Storage seam: a bucket addressed by URL (``s3://bucket/prefix``, ``file:///dir``)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# What ``download_many`` reports per object as it ends: the object, and its error (None: complete).
DownloadDone = Callable[["StoredObject", "BaseException | None"], None]


class KeyNotFound(KeyError):
    """The key is not in the bucket. Storage never answers False for a failure."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the sentence
        return str(self.args[0]) if self.args else "key not found"


class UploadNotVerified(RuntimeError):
    """What the bucket holds after an upload is not what was sent."""


class PreconditionFailed(RuntimeError):
    """A conditional write lost: the key already exists (create) or changed since it was read (replace).

    This is how claims stay exactly-once: of two workers creating the same claim,
    or renewing the same lease, one gets this error and knows it does not own it.
    ``after_retry``: the request was sent more than once, so the write that won may
    have been this caller's own first try (only then is it worth reading back).
    """

    def __init__(self, message: str, after_retry: bool = False):
        super().__init__(message)
        self.after_retry = after_retry


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the storage URL's prefix, '/'-separated
    size: int
    etag: str = ""  # S3 ETag without quotes; locally a stamp of inode, size and mtime
    modified: float = field(default=0.0, compare=False)  # epoch seconds of the last write (S3 LastModified, local mtime)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Storage(ABC):
    """A job's bucket. Keys are relative to ``url``; missing keys raise ``KeyNotFound``."""

    url: str

    @abstractmethod
    def upload_file(self, local_path: Path, key: str) -> None:
        """Upload and verify (size and checksum); raise ``UploadNotVerified`` otherwise."""

    @abstractmethod
    def download_file(self, key: str, local_path: Path) -> None: ...

    @abstractmethod
    def download_many(self, items: list[tuple[StoredObject, Path]], on_done: DownloadDone, workers: int) -> None:
        """Download each listed object to its path, ``workers`` at a time; ``on_done(obj, error)`` as each ends.

        The listing already gave every object's size and ETag, so no object is
        looked up again: one GET per object (ranged GETs for a large one). A path
        holds the whole object or nothing (written aside and renamed). One failed
        object is reported through ``on_done`` and the others go on.
        """

    @abstractmethod
    def list_objects(self, prefix: str = "") -> list[StoredObject]: ...

    @abstractmethod
    def read_text(self, key: str) -> str:
        """The object as UTF-8 text; ``burst.records.UnreadableRecord`` when it is not UTF-8."""

    @abstractmethod
    def write_text(self, key: str, text: str) -> str:
        """Write ``key`` whole; return its etag (what a later listing shows for it)."""

    @abstractmethod
    def delete_keys(self, keys: list[str]) -> None: ...

    def read_versioned(self, key: str) -> tuple[str, str]:
        """``(text, etag)``: the etag to hand to ``replace_if_match``; ``UnreadableRecord`` (with the etag) when not UTF-8."""
        text, obj = self.read_object(key)
        return text, obj.etag

    @abstractmethod
    def read_object(self, key: str) -> tuple[str, StoredObject]:
        """``(text, what a listing would show of it)``, from one read; ``UnreadableRecord`` as ``read_versioned``."""

    @abstractmethod
    def create_if_absent(self, key: str, text: str) -> str:
        """Write ``key`` only if it does not exist (S3 ``If-None-Match: *``); return its etag.

        Raises ``PreconditionFailed`` when the key exists: somebody else created it first.
        """

    @abstractmethod
    def replace_if_match(self, key: str, text: str, etag: str) -> str:
        """Replace ``key`` only if it still has ``etag`` (S3 ``If-Match``); return the new etag.

        Raises ``PreconditionFailed`` when it changed, ``KeyNotFound`` when it is gone (some S3-compatible
        stores, SeaweedFS among them, answer a gone key 412 too: to a claim both mean "not yours").
        """

    @abstractmethod
    def delete_if_match(self, key: str, etag: str) -> bool:
        """Delete ``key`` only if it still has ``etag`` (S3 ``If-Match`` on DeleteObject); whether it was.

        False when it changed or is gone: somebody wrote it since it was read (a rerun), or deleted it.
        """

    @abstractmethod
    def clock(self) -> float:
        """The store's own time now (epoch seconds): what ``StoredObject.modified`` is measured on.

        Lease ages compare a claim's last write with this, never with this machine's
        clock, which may be minutes off (laptops, WSL2).
        """

    def quick(self, attempts: int = 1) -> "Storage":
        """The same bucket, whose every request is sent at most ``attempts`` times: to learn soon that it is down.

        (A folder answers at once, retried or not: itself.) The caller closes it when it is not ``self``.
        """
        return self

    def list_keys(self, prefix: str = "") -> list[str]:
        return [obj.key for obj in self.list_objects(prefix)]
