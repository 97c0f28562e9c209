"""A folder as the bucket: what AMI=local uses (``$BURST_HOME/buckets/<job>/``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from burst.storage.base import KeyNotFound, Storage, StoredObject, UploadNotVerified, sha256_of


class LocalDirStorage(Storage):
    def __init__(self, url: str):
        parsed = urlparse(url)
        self.url = url
        self.root = Path(unquote(parsed.path))

    def _path(self, key: str) -> Path:
        key = key.lstrip("/")
        path = (self.root / key).resolve()
        if path != self.root.resolve() and self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} leaves the bucket {self.url}")
        return path

    def _write_atomically(self, target: Path, writer) -> None:
        """Write beside the target and rename: readers never see half a file."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                writer(handle)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def upload_file(self, local_path: Path, key: str) -> None:
        local_path = Path(local_path)
        target = self._path(key)

        def copy(handle):
            with open(local_path, "rb") as source:
                shutil.copyfileobj(source, handle)

        self._write_atomically(target, copy)
        if target.stat().st_size != local_path.stat().st_size or sha256_of(target) != sha256_of(local_path):
            raise UploadNotVerified(f"{self.url}/{key} differs from {local_path} after upload")

    def download_file(self, key: str, local_path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise KeyNotFound(f"{self.url}/{key} does not exist")
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, local_path)

    def list_objects(self, prefix: str = "") -> list[StoredObject]:
        if not self.root.is_dir():
            return []
        found = []
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.name.endswith(".part"):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                found.append(StoredObject(key=key, size=path.stat().st_size))
        return found

    def read_text(self, key: str) -> str:
        path = self._path(key)
        try:
            return path.read_text(encoding="utf-8")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFound(f"{self.url}/{key} does not exist") from None

    def write_text(self, key: str, text: str) -> None:
        self._write_atomically(self._path(key), lambda handle: handle.write(text.encode("utf-8")))

    def delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        # drop folders left empty, deepest first
        if self.root.is_dir():
            for folder in sorted((p for p in self.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                if not any(folder.iterdir()):
                    folder.rmdir()
