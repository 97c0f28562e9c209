"""The Storage seam: a bucket addressed by URL (``s3://bucket/prefix``, ``file:///dir``)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


class KeyNotFound(KeyError):
    """The key is not in the bucket. Storage never answers False for a failure."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the sentence
        return str(self.args[0]) if self.args else "key not found"


class UploadNotVerified(RuntimeError):
    """What the bucket holds after an upload is not what was sent."""


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the storage URL's prefix, '/'-separated
    size: int
    etag: str = ""  # S3 ETag without quotes ("" where the backend has none)


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
    def list_objects(self, prefix: str = "") -> list[StoredObject]: ...

    @abstractmethod
    def read_text(self, key: str) -> str: ...

    @abstractmethod
    def write_text(self, key: str, text: str) -> None: ...

    @abstractmethod
    def delete_keys(self, keys: list[str]) -> None: ...

    def list_keys(self, prefix: str = "") -> list[str]:
        return [obj.key for obj in self.list_objects(prefix)]
