"""The ETag S3 gives an uploaded file: what an upload is verified against.

Standard library and s3transfer only: the worker uses it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from s3transfer.utils import ChunksizeAdjuster

MiB = 1024 * 1024


def md5_of_range(handle, length: int) -> bytes:
    digest = hashlib.md5()
    remaining = length
    while remaining > 0:
        block = handle.read(min(MiB, remaining))
        if not block:
            break
        digest.update(block)
        remaining -= len(block)
    return digest.digest()


def expected_etag(path: Path, multipart_threshold: int, multipart_chunksize: int) -> str:
    """The ETag S3 gives ``path`` uploaded by s3transfer with these settings (no quotes)."""
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        if size < multipart_threshold:  # s3transfer: multipart when size >= threshold
            return md5_of_range(handle, size).hex()
        part_size = ChunksizeAdjuster().adjust_chunksize(multipart_chunksize, size)
        digests = []
        for _ in range(max(1, -(-size // part_size))):
            digests.append(md5_of_range(handle, part_size))
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
