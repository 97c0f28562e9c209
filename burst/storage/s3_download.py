"""Download listed objects, with no HeadObject: small ones through awscrt, the rest through one s3transfer manager.

s3transfer looks an object up (HeadObject) only when it does not know its size
and ETag. The listing knows both, so ``_Listed`` hands them over: a small object
is one GetObject, a large one ranged GETs pinned to the listed ETag (``If-Match``).
s3transfer writes each file under a temporary name and renames it when complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import ClientError
from s3transfer.subscribers import BaseSubscriber

from burst.storage.base import DownloadDone, StoredObject
from burst.storage.s3_client import POOL_WORKERS


# Objects below this size go through awscrt (burst.storage.s3_crt) where it is installed: botocore's
# ~1.5 ms of CPU per request is what limits small objects. Larger ones stream through s3transfer's
# reused 256 KB buffers, which cost less CPU per MB here than awscrt's part buffers (docs/benchmarks.md).
NATIVE_BELOW = 1024 * 1024


class _Listed(BaseSubscriber):
    """Tells s3transfer the listed size and ETag of one object and reports its end."""

    def __init__(self, obj: StoredObject, on_done: DownloadDone, storage: Any):
        self.obj, self.report, self.storage = obj, on_done, storage

    def on_queued(self, future, **kwargs) -> None:
        future.meta.provide_transfer_size(self.obj.size)
        future.meta.provide_object_etag(f'"{self.obj.etag}"' if self.obj.etag else None)

    def on_done(self, future, **kwargs) -> None:
        error: BaseException | None = None
        try:
            future.result()
        except ClientError as failure:
            error = self.storage._not_found(failure, self.obj.key) or failure
        except Exception as failure:  # reported per object; the transfer of the others goes on
            error = failure
        self.report(self.obj, error)


def download_listed(storage: Any, items: list[tuple[StoredObject, Path]], on_done: DownloadDone,
                    workers: int) -> None:
    """``S3Storage.download_many``: every object through one manager on the storage's client.

    ``storage`` is that S3Storage (its client, bucket, prefix and part sizes); not
    imported here, so that s3.py may import this module and not the other way round.
    """
    if not items:
        return
    from burst.storage.s3_crt import ElsewhereRegion, available, download_listed_crt

    if available(storage.client):
        targets = {obj.key: target for obj, target in items}
        elsewhere: list[tuple[StoredObject, Path]] = []  # a bucket in another region: botocore follows

        def native_done(obj: StoredObject, error: BaseException | None) -> None:
            if isinstance(error, ElsewhereRegion):
                elsewhere.append((obj, targets[obj.key]))
            else:
                on_done(obj, error)

        download_listed_crt(storage, [item for item in items if item[0].size < NATIVE_BELOW], native_done)
        items = [item for item in items if item[0].size >= NATIVE_BELOW] + sorted(elsewhere, key=lambda item: item[0].key)
        if not items:
            return
    config = TransferConfig(
        multipart_threshold=storage.multipart_threshold, multipart_chunksize=storage.multipart_chunksize,
        max_concurrency=max(1, min(workers, POOL_WORKERS)), preferred_transfer_client="classic",
    )
    made: set[Path] = set()
    with create_transfer_manager(storage.client, config) as manager:
        for obj, target in items:
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            # the listed key as it is: _full_key would strip a leading "/" and name another object
            full_key = f"{storage.prefix}/{obj.key}" if storage.prefix else obj.key
            manager.download(storage.bucket, full_key, str(target), subscribers=[_Listed(obj, on_done, storage)])
