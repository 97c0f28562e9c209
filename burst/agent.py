"""The node agent (``save_results.py``): status, outputs, logs, then the machine's end.

Runs on the node with the standard library (and boto3 for ``s3://`` buckets).
The runner calls ``start`` before the user's command and ``finish`` after it,
whatever its exit status. ``finish`` uploads the declared outputs and the logs,
verifies every upload, writes the final status and only then ends its machine.
If an upload cannot be verified the machine is left running, so nothing is lost,
and the status says so.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from burst.providers.base import NodeConfig
from burst.records import DONE, FAILED, RUNNING, SAVING, JobStatus, utc_now
from burst.status_store import load_status, save_status
from burst.storage import Storage, open_storage
from burst.transport.base import tail

LOG_NAMES = ("install.log", "stdout.log", "stderr.log")
UPLOAD_ATTEMPTS = 3


@dataclass
class NodeFolder:
    """A tag's folder on its node: node.json, code/, logs/."""

    root: Path

    @property
    def config(self) -> NodeConfig:
        return NodeConfig(**json.loads((self.root / "node.json").read_text()))

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict:
    """What the numbers were measured on: benchmark timings mean nothing without it."""
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def _status(storage: Storage, config: NodeConfig) -> JobStatus:
    return load_status(storage, config.tag) or JobStatus(
        job=config.job, tag=config.tag, state=RUNNING, instance_type=config.instance_type,
        command=config.command, instance_id=config.instance_id,
    )


def start(folder: NodeFolder) -> int:
    config = folder.config
    storage = open_storage(config.bucket_url, **_storage_options(config))
    status = _status(storage, config)
    status.state, status.started, status.ended, status.exit_code = RUNNING, utc_now(), None, None
    status.instance_id, status.note, status.warnings = config.instance_id, "", []
    status.provenance = provenance()
    save_status(storage, status)
    return 0


def find_outputs(code: Path, patterns: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Files matching the result globs, keyed by their path below the pattern's fixed folder.

    ``results/**`` saves ``results/a/b.csv`` as ``a/b.csv``; ``*.csv`` saves ``x.csv`` as ``x.csv``.
    """
    outputs: dict[str, Path] = {}
    warnings = []
    for pattern in patterns:
        fixed = []
        for part in Path(pattern).parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        base = code.joinpath(*fixed) if fixed else code
        if base.is_file():  # a plain file name: keep its name
            base = base.parent
        matches = [Path(m) for m in glob.glob(pattern, root_dir=code, recursive=True)]
        files = [code / m for m in matches if (code / m).is_file()]
        if not files:
            warnings.append(f"no output matches {pattern!r} in the code folder")
        for path in sorted(files):
            outputs[path.relative_to(base).as_posix()] = path
    return outputs, warnings


def upload_verified(storage: Storage, path: Path, key: str) -> str | None:
    """Upload with retries; None when verified, else the last error."""
    error = None
    for attempt in range(UPLOAD_ATTEMPTS):
        try:
            storage.upload_file(path, key)
            return None
        except Exception as exc:  # any failure is retried, then reported in the status
            error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5 * 2**attempt)
    return error


def _iso(nanoseconds: int) -> str:
    return datetime.fromtimestamp(nanoseconds / 1e9, timezone.utc).isoformat(timespec="milliseconds")


def finish(folder: NodeFolder, exit_code: int, started_ns: int, ended_ns: int) -> int:
    """``started_ns``/``ended_ns``: the runner's clock right around the command, so
    ``seconds`` is the command's own wall time, without the agent's start-up."""
    config = folder.config
    storage = open_storage(config.bucket_url, **_storage_options(config))
    status = _status(storage, config)
    status.exit_code = exit_code
    status.started, status.ended = _iso(started_ns), _iso(ended_ns)
    status.seconds = round((ended_ns - started_ns) / 1e9, 3)
    status.state = SAVING
    save_status(storage, status)

    outputs, warnings = find_outputs(folder.code, config.results)
    uploads = {f"{config.tag}/results/{name}": path for name, path in outputs.items()}
    for log in LOG_NAMES:
        if (folder.logs / log).is_file():
            uploads[f"{config.tag}/logs/{log}"] = folder.logs / log
    failures = []
    for key, path in uploads.items():
        error = upload_verified(storage, path, key)
        if error:
            failures.append(f"{key}: {error}")

    status.warnings = warnings
    if failures:
        status.state = FAILED
        status.note = (
            f"upload failed, so the machine was left running to keep the outputs "
            f"(collect them from {folder.root}, then `python -m burst terminate {config.job}`): "
            + "; ".join(failures)
        )
        save_status(storage, status)
        return 1
    if exit_code == 0:
        status.state, status.note = DONE, ""
    else:
        stderr = (folder.logs / "stderr.log")
        last = tail(stderr.read_text(errors="replace"), 5) if stderr.is_file() else ""
        status.state = FAILED
        status.note = f"command exited with status {exit_code}" + (f": {last}" if last else "")
    save_status(storage, status)
    _terminate_self(config)
    return 0


def _storage_options(config: NodeConfig) -> dict:
    return {"region": config.provider_options["region"]} if config.provider == "ec2" else {}


def _terminate_self(config: NodeConfig) -> None:
    if config.provider == "local":
        from burst.providers.local import terminate_self
    else:
        from burst.providers.ec2 import terminate_self
    terminate_self(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="save_results.py", description=__doc__.splitlines()[0])
    parser.add_argument("--node-dir", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the tag's folder on the node (default: two levels above this file)")
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("start", help="record that the command starts, with the machine's provenance")
    finish_parser = sub.add_parser("finish", help="save outputs and logs, write the status, end the machine")
    finish_parser.add_argument("--exit-code", type=int, required=True)
    finish_parser.add_argument("--started-ns", type=int, required=True, help="epoch nanoseconds when the command started")
    finish_parser.add_argument("--ended-ns", type=int, required=True, help="epoch nanoseconds when the command ended")
    args = parser.parse_args(argv)
    folder = NodeFolder(args.node_dir)
    if args.step == "start":
        return start(folder)
    return finish(folder, args.exit_code, args.started_ns, args.ended_ns)


if __name__ == "__main__":
    sys.exit(main())
