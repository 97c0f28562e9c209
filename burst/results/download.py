"""Download a whole bucket into a folder: resumable, parallel, and never outside that folder.

No pandas here: ``get_s3_files.py`` without ``--merge`` must not pay for importing it.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console

from burst.storage import Storage, StoredObject

MANIFEST_NAME = ".burst-download.json"
DOWNLOAD_WORKERS = 16  # threads sharing one client; more only adds contention on a small machine


@dataclass
class DownloadReport:
    downloaded: int = 0
    skipped: int = 0  # already complete in the folder
    unsafe: list[str] = field(default_factory=list)  # "key: why" of keys not written: they would land outside it
    failed: list[str] = field(default_factory=list)  # "key: error" of objects that could not be downloaded

    @property
    def warnings(self) -> list[str]:
        return ([f"skipped the key {entry}" for entry in self.unsafe]
                + [f"could not download {entry}" for entry in self.failed])


class Destinations:
    """Where each key goes in ``target``, or why it must not be written at all.

    S3 keys are free text: ``../x``, ``/etc/x`` or ``a//b`` would name a path outside
    the folder, or another key's file. Only keys made of plain '/'-separated names
    are taken, and the resolved path (symlinks in the folder followed) must still be
    inside ``target``. Each folder is resolved once (a bucket of 100,000 objects has
    a few thousand folders), and each file costs one ``lstat``: resolving every path
    whole was a tenth of a millisecond per object of the download's one Python thread.
    """

    def __init__(self, target: Path):
        self.target = target
        self.root = target.resolve()
        self._folders: dict[str, Path] = {}

    def _resolved_folder(self, folder: str) -> Path:
        found = self._folders.get(folder)
        if found is None:
            found = self._folders[folder] = (self.root.joinpath(*folder.split("/")) if folder else self.root).resolve()
        return found

    def place(self, key: str) -> tuple[Path | None, str]:
        parts = key.split("/")
        if key.startswith("/"):
            return None, "an absolute path"
        if any(part in ("", ".", "..") for part in parts) or "\0" in key:
            return None, "empty, '.' or '..' path segments"
        if key == MANIFEST_NAME:
            return None, "the name of the download manifest"
        path = self.root.joinpath(*parts)
        folder = self._resolved_folder("/".join(parts[:-1]))
        resolved = path.resolve() if os.path.islink(path) else folder / parts[-1]
        if resolved == self.root or self.root not in resolved.parents:
            return None, f"it resolves to {resolved}, outside {self.root}"
        return path, ""


def local_path(target: Path, key: str) -> tuple[Path | None, str]:
    """Where ``key`` goes in ``target``, or ``(None, why)`` (``Destinations``, for one key)."""
    return Destinations(target).place(key)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar of ``total`` bytes on a terminal; nothing (and no cost) otherwise."""
    console = Console(stderr=True)
    if not total or not console.is_terminal:
        yield lambda size: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("download", total=total)
        yield lambda size: progress.advance(task, size)


def _is_complete(path: Path, obj: StoredObject, known_etags: dict[str, str]) -> bool:
    """Final name, same size and (where the bucket gives one) the ETag it had when downloaded."""
    if not path.is_file() or path.stat().st_size != obj.size:
        return False
    return not obj.etag or known_etags.get(obj.key) == obj.etag


def download_all(storage: Storage, target: Path, workers: int = DOWNLOAD_WORKERS) -> DownloadReport:
    """Download every object not already complete in ``target``.

    A file has its final name only when whole (the storage writes it aside and
    renames it); ``.burst-download.json`` keeps the ETag each file had when
    downloaded, so an object rewritten with the same size (a tag run again) is
    fetched again. Keys that would land outside ``target`` are skipped, named in
    the report, and the rest goes on.
    """
    target.mkdir(parents=True, exist_ok=True)
    manifest = target / MANIFEST_NAME
    known_etags: dict[str, str] = json.loads(manifest.read_text()) if manifest.is_file() else {}
    report = DownloadReport()
    todo: list[tuple[StoredObject, Path]] = []
    destinations = Destinations(target)
    for obj in storage.list_objects():
        path, why = destinations.place(obj.key)
        if path is None:
            report.unsafe.append(f"{obj.key!r}: {why}")
        elif _is_complete(path, obj, known_etags):
            report.skipped += 1
        else:
            todo.append((obj, path))
    lock = threading.Lock()
    try:
        with _progress(sum(obj.size for obj, _ in todo) if todo else 0) as advance:

            def done(obj: StoredObject, error: BaseException | None) -> None:
                with lock:
                    if error is None:
                        known_etags[obj.key] = obj.etag
                        report.downloaded += 1
                    else:
                        known_etags.pop(obj.key, None)
                        report.failed.append(f"{obj.key}: {error}")
                advance(obj.size)

            storage.download_many(todo, done, workers)
    finally:
        with lock:
            text = json.dumps(known_etags, indent=0, sort_keys=True)
        temp = manifest.with_name(f"{manifest.name}.{os.getpid()}.part")
        temp.write_text(text)
        os.replace(temp, manifest)
    return report
