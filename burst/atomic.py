"""The one way burst writes a record or status file on a local disk: whole, or not at all.

A temp file in the target's own folder (so the rename never crosses a file
system), its data fsync'ed, then ``os.replace`` onto the target: a reader sees
the old file or the new one, never a truncated one, even if the writer is
killed (SIGKILL, a lost machine) or the power goes mid-write. An S3 PUT is
atomic already; this is what the local folder bucket, the campaign record, the
sandbox registry and the worker's node files use. Temp files are named
``.<name>.<random>.part``; listings skip them. Standard library only: the
worker imports it.

The folder is not fsync'ed after the rename: that would make the *new* version
durable across a power cut, which no reader here needs; without it a crash can
leave the old version, never a partial one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

TEMP_SUFFIX = ".part"

Content = Union[bytes, str, Callable[[BinaryIO], None]]  # Union, not |: evaluated at import, on Python 3.9 too


def write_atomically(target: Path | str, content: Content, exclusive: bool = False) -> os.stat_result:
    """Write ``content`` (bytes, text as UTF-8, or a function writing to the open file) to ``target``.

    ``exclusive``: create only if ``target`` does not exist (``FileExistsError``
    otherwise), by hard-linking the finished temp file: an atomic create-if-absent
    whose winner's file is complete at once. Returns the ``stat`` of the file written (neither a link nor a rename changes its inode or mtime).
    The file's mode is 0600 (``mkstemp``'s): records are the user's own.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(content):
                content(handle)
            else:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
            stat = os.fstat(handle.fileno())  # this very file's, even if another writer replaces it next
        if exclusive:
            os.link(temp, target)  # FileExistsError when another writer was first
            os.unlink(temp)
        else:
            os.replace(temp, target)
        return stat
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
