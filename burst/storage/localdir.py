"""A folder as the bucket: what AMI=local uses (``$BURST_HOME/buckets/<job>/``)."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

from burst.atomic import TEMP_SUFFIX, write_atomically
from burst.records import utf8_text
from burst.storage.base import (
    DownloadDone,
    KeyNotFound,
    PreconditionFailed,
    Storage,
    StoredObject,
    UploadNotVerified,
    sha256_of,
)


def _stamp(stat: os.stat_result) -> str:
    """A local etag: every write is a new file (temp + rename), so inode, size and mtime change."""
    return f"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"


class LocalDirStorage(Storage):
    def __init__(self, url: str):
        parsed = urlparse(url)
        self.url = url
        self.root = Path(unquote(parsed.path))
        self._root: Path | None = None
        self._root_exists = False
        self._folders: dict[str, Path] = {}  # key folder -> its resolved path (inside the bucket)

    def _path(self, key: str) -> Path:
        """The file of ``key``, which must stay inside the bucket folder (symlinks followed).

        Each folder is resolved once per storage object and the file costs one ``lstat``:
        resolving every path whole was half of what `status` spent on 10,000 rows.
        """
        key = key.lstrip("/")
        folder, _, name = key.rpartition("/")
        root = self._resolved_root()
        parent = self._folder(root, folder) if folder else root
        return self._inside(root, parent / name, key)

    def _folder(self, root: Path, folder: str) -> Path:
        """``folder``'s resolved path, inside the bucket; from its parent's (kept) and one ``lstat`` of its own
        name when that is no link (resolving each row's folder whole cost ``status`` a second per 10,000 rows)."""
        resolved = self._folders.get(folder)
        if resolved is not None:
            return resolved
        above, _, name = folder.rpartition("/")
        parent = self._folder(root, above) if above else root
        resolved = self._folders[folder] = self._inside(root, parent / name, folder)
        return resolved

    def _inside(self, root: Path, path: Path, key: str) -> Path:
        """``path`` (whose parent is resolved already), resolved when it is a link or a dot name; never outside ``root``."""
        if path.name in ("", ".", "..") or os.path.islink(path):
            path = path.resolve()
            if path != root and root not in path.parents:
                raise ValueError(f"key {key!r} leaves the bucket {self.url}")
        return path

    def _resolved_root(self) -> Path:
        if self._root is None or not self._root_exists:
            self._root = self.root.resolve()
            self._root_exists = self.root.is_dir()  # resolved again until the folder exists
            self._folders = {}
        return self._root

    def _write(self, target: Path, content, exclusive: bool = False) -> str:
        """Whole or not at all (``burst.atomic``): readers never see half a file. Returns the etag.

        ``exclusive``: a create-if-absent, atomic and complete at once (the claim of a row).
        """
        try:
            return _stamp(write_atomically(target, content, exclusive=exclusive))
        except FileExistsError:
            raise PreconditionFailed(f"{self.url}/{self._key_of(target)} exists already") from None

    def _key_of(self, path: Path) -> str:
        return path.relative_to(self.root.resolve()).as_posix()

    @contextmanager
    def _key_lock(self, target: Path) -> Iterator[None]:
        """Serialise compare-and-swap on one key between processes (flock on a sidecar file)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / f".{target.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def upload_file(self, local_path: Path, key: str) -> None:
        local_path = Path(local_path)
        target = self._path(key)

        def copy(handle):
            with open(local_path, "rb") as source:
                shutil.copyfileobj(source, handle)

        self._write(target, copy)
        if target.stat().st_size != local_path.stat().st_size or sha256_of(target) != sha256_of(local_path):
            raise UploadNotVerified(f"{self.url}/{key} differs from {local_path} after upload")

    def download_file(self, key: str, local_path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise KeyNotFound(f"{self.url}/{key} does not exist")
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, local_path)

    def download_many(self, items: list[tuple[StoredObject, Path]], on_done: DownloadDone, workers: int) -> None:
        """Copies in ``workers`` threads, each to a temporary name beside its target, renamed when whole."""

        def copy(item: tuple[StoredObject, Path]) -> None:
            obj, target = item
            error: BaseException | None = None
            try:
                source = self._path(obj.key)
                if not source.is_file():
                    raise KeyNotFound(f"{self.url}/{obj.key} does not exist")
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as handle, open(source, "rb") as data:
                        shutil.copyfileobj(data, handle)
                    os.replace(temp, target)
                except BaseException:
                    Path(temp).unlink(missing_ok=True)
                    raise
            except Exception as failure:  # reported, and the other copies go on
                error = failure
            on_done(obj, error)

        if not items:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
            list(pool.map(copy, items))

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        if not self.root.is_dir():  # an unreachable bucket is an error, never an empty one
            raise KeyNotFound(f"the bucket folder {self.root} does not exist")
        found: list[StoredObject] = []
        # only the folders that can hold keys with this prefix: a listing of state/ never walks the logs
        base = "/".join(prefix.split("/")[:-1])
        self._list_folder(os.path.join(str(self.root), *base.split("/")) if base else str(self.root),
                          base + "/" if base else "", prefix, found)
        found.sort(key=lambda obj: obj.key)
        return found

    def _list_folder(self, folder: str, base: str, prefix: str, found: list[StoredObject]) -> None:
        """The keys under ``folder`` (whose keys start with ``base``) that start with ``prefix``, into ``found``.

        One ``scandir`` per folder and one ``stat`` per file: what ``status`` spends listing 100,000 rows.
        """
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return  # removed while listing, or no such folder yet
        for entry in entries:
            key = base + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                        self._list_folder(entry.path, key + "/", prefix, found)
                    continue
                if not key.startswith(prefix) or (entry.name.startswith(".") and entry.name.endswith((TEMP_SUFFIX, ".lock"))):
                    continue  # not asked for, a write in progress, or a key's lock
                stat = entry.stat()
                if entry.is_dir():
                    continue  # a link to a folder: not followed, as no key is a folder
            except FileNotFoundError:
                continue  # replaced or deleted while listing
            found.append(StoredObject(key=key, size=stat.st_size, etag=_stamp(stat), modified=stat.st_mtime))

    def clock(self) -> float:
        """The file system's time: the mtime the kernel gives a file made now (a temporary one, not listed)."""
        if not self.root.is_dir():
            raise KeyNotFound(f"the bucket folder {self.root} does not exist")
        handle, name = tempfile.mkstemp(prefix=".clock.", suffix=TEMP_SUFFIX, dir=self.root)
        try:
            return os.fstat(handle).st_mtime
        finally:
            os.close(handle)
            os.unlink(name)

    def read_text(self, key: str) -> str:
        path = self._path(key)
        try:
            return utf8_text(path.read_bytes(), key)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.url}/{key} does not exist") from None

    def write_text(self, key: str, text: str) -> str:
        return self._write(self._path(key), text)

    def read_object(self, key: str) -> tuple[str, StoredObject]:
        path = self._path(key)
        try:
            with open(path, "rb") as handle:  # the etag of exactly what was read
                stat = os.fstat(handle.fileno())
                obj = StoredObject(key=key, size=stat.st_size, etag=_stamp(stat), modified=stat.st_mtime)
                return utf8_text(handle.read(), key, obj.etag), obj
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.url}/{key} does not exist") from None

    def create_if_absent(self, key: str, text: str) -> str:
        return self._write(self._path(key), text, exclusive=True)

    def replace_if_match(self, key: str, text: str, etag: str) -> str:
        target = self._path(key)
        with self._key_lock(target):
            try:
                current = _stamp(target.stat())
            except FileNotFoundError:
                raise KeyNotFound(f"{self.url}/{key} does not exist") from None
            if current != etag:
                raise PreconditionFailed(f"{self.url}/{key} changed since it was read")
            return self._write(target, text)

    def delete_if_match(self, key: str, etag: str) -> bool:
        target = self._path(key)
        with self._key_lock(target):
            try:
                if _stamp(target.stat()) != etag:
                    return False
                target.unlink()
            except FileNotFoundError:
                return False
        return True

    def delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        # drop folders left empty, deepest first
        if self.root.is_dir():
            for folder in sorted((p for p in self.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(folder.iterdir()):
                    folder.rmdir()
