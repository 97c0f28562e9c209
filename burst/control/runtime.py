"""The node's own Python runtime: boto3 and what it needs, pure Python, at pinned versions.

A stock machine's site-packages cannot be trusted: Debian 12 has botocore 1.29
(no ``IfNoneMatch``/``IfMatch``), Amazon Linux 2023 has no boto3 for its Python
3.9 at all. So the bundle carries the worker's dependencies, and the worker puts
them first on ``sys.path``; any python3 >= 3.9 then runs it.

The versions are pinned to the last releases that still support Python 3.9
(and that do conditional writes: botocore >= 1.35.69). urllib3 stays on 1.26,
which botocore requires on Python 3.9 and accepts on 3.10 and later: one tree
serves every node Python from 3.9 to 3.13.

Where the files come from: the dispatcher's own environment, for each package
installed at the pinned version (read through ``importlib.metadata``); for the
others, wheels that ``pip download`` fetches once. The tree is built once, under
``$BURST_HOME/runtime/<key>/`` (or ``$BURST_RUNTIME_CACHE/<key>/``), in a temporary folder renamed when complete (a
half-built tree is never used), and trimmed: botocore's data only for the
services the worker calls, in their newest API version, and its own files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable

from burst.errors import BurstError

# distribution -> the version shipped (the newest that runs on Python 3.9 to 3.13)
PINS = {
    "boto3": "1.42.97",
    "botocore": "1.42.97",
    "s3transfer": "0.16.1",
    "jmespath": "1.1.0",
    "python-dateutil": "2.9.0.post0",
    "six": "1.17.0",
    "urllib3": "1.26.20",
}
# the AWS services the worker calls (S3 for the bucket, EC2 to end its machine, STS for credentials)
SERVICES = ("s3", "ec2", "sts")
LAYOUT_VERSION = "1"  # bump when the trimming changes: a new key, a new tree
MINIMUM_PYTHON = "3.9"


def runtime_key() -> str:
    text = ";".join(f"{name}=={version}" for name, version in sorted(PINS.items())) + f";{SERVICES};{LAYOUT_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _parts(path: str) -> list[str]:
    return path.replace("\\", "/").split("/")


def newest_api_versions(paths: Iterable[str]) -> dict[tuple[str, str], str]:
    """(package, service) -> its newest API version folder, for botocore/data and boto3/data."""
    newest: dict[tuple[str, str], str] = {}
    for path in paths:
        parts = _parts(path)
        if len(parts) >= 5 and parts[0] in ("botocore", "boto3") and parts[1] == "data":
            key = (parts[0], parts[2])
            newest[key] = max(newest.get(key, ""), parts[3])
    return newest


def keep(path: str, newest: dict[tuple[str, str], str]) -> bool:
    """Whether a file of a distribution belongs in the node's runtime."""
    parts = _parts(path)
    if parts[0] in ("..", "bin") or parts[0].endswith((".dist-info", ".data")) or "__pycache__" in parts:
        return False
    if path.endswith((".pyc", ".pyi")) or parts[-1] == "examples-1.json":
        return False
    if len(parts) >= 3 and parts[0] in ("botocore", "boto3") and parts[1] == "data":
        if len(parts) == 3:
            return True  # endpoints, partitions, _retry, sdk-default-configuration: botocore itself needs them
        service = parts[2]
        if service not in SERVICES:
            return False
        return len(parts) == 4 or parts[3] == newest.get((parts[0], service))
    return True


def _installed_files(name: str, version: str) -> tuple[Path, list[str]] | None:
    """The files of an installed distribution at exactly ``version``: (its root, relative paths)."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version or not dist.files:
        return None
    root = Path(dist.locate_file(""))
    return root, [str(file) for file in dist.files]


def _copy_installed(root: Path, files: list[str], target: Path) -> None:
    newest = newest_api_versions(files)
    for relative in files:
        if keep(relative, newest) and (root / relative).is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / relative, destination)


def _extract_wheel(wheel: Path, target: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        newest = newest_api_versions(names)
        for name in names:
            if keep(name, newest):
                destination = target / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)


def _download_wheels(requirements: list[str], folder: Path) -> list[Path]:
    """``pip download`` the pinned wheels (pure Python, for Python 3.9 and later); no dependency resolution."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", MINIMUM_PYTHON, "--implementation", "py", "--abi", "none", "--platform", "any",
               "--dest", str(folder), *requirements]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BurstError(f"could not fetch the node's runtime ({', '.join(requirements)}) with pip: {error}") from error
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("WARNING")]
        raise BurstError(
            f"could not fetch the node's runtime ({', '.join(requirements)}) with pip (exit {done.returncode}): "
            f"{' '.join(lines[-3:]) or 'no message'}. Install them in this environment "
            f"(pip install {' '.join(requirements)}) or make the package index reachable.")
    return sorted(folder.glob("*.whl"))


def build_runtime(target: Path, say: Callable[[str], None] | None = None) -> None:
    """Fill ``target`` with the pinned, trimmed packages: installed ones copied, the others downloaded."""
    missing = []
    for name, version in PINS.items():
        found = _installed_files(name, version)
        if found is None:
            missing.append(f"{name}=={version}")
        else:
            _copy_installed(*found, target)
    if missing:
        if say:
            say(f"fetching the node's Python runtime once: {', '.join(missing)}")
        with tempfile.TemporaryDirectory(prefix="wheels-", dir=target.parent) as wheels:
            for wheel in _download_wheels(missing, Path(wheels)):
                _extract_wheel(wheel, target)
    for package in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3"):
        if not (target / package / "__init__.py").is_file():
            raise BurstError(f"the node's runtime lacks the package {package} after building it in {target}")


def ensure_runtime(home: Path, say: Callable[[str], None] | None = None) -> Path:
    """``$BURST_HOME/runtime/<key>/``, built once (into a temporary folder, renamed when complete).

    ``$BURST_RUNTIME_CACHE``, when set, is the folder of runtimes instead: several
    ``BURST_HOME``s (CI, tests) then share one.
    """
    folder = Path(os.environ.get("BURST_RUNTIME_CACHE") or home / "runtime").expanduser() / runtime_key()
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        build_runtime(building, say)
        try:
            building.rename(folder)
        except OSError:
            if not folder.is_dir():  # not another dispatcher that finished first
                raise
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return folder
