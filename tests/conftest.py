"""Shared fixtures: every test gets its own BURST_HOME and HOME, and runs the real scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def node_runtime_cache(tmp_path_factory) -> Path:
    """One cache of the node's Python runtime (``burst.control.runtime``) for the whole test session."""
    return tmp_path_factory.mktemp("node-runtime")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, node_runtime_cache):
    """Campaign records, sandboxes, buckets and ~/.ssh of a test stay in its tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("BURST_HOME", str(tmp_path / "burst-home"))
    monkeypatch.setenv("BURST_RUNTIME_CACHE", str(node_runtime_cache))  # built once per session, not per test
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)  # ~/.config/burst/config.toml is the test's HOME's
    monkeypatch.setenv("COLUMNS", "200")  # wide tables: assertions read whole cells
    return home


@pytest.fixture
def backoffs(monkeypatch) -> list[float]:
    """The delays botocore's standard retry asked for; none is waited, so the tests stay fast.

    awscrt's retries (``burst download``) wait at most a millisecond or two each.
    """
    import botocore.retries.standard

    import burst.storage.s3_crt

    monkeypatch.setattr(burst.storage.s3_crt, "BACKOFF_SCALE_MS", 1)

    wanted: list[float] = []
    original = botocore.retries.standard.ExponentialBackoff.delay_amount

    def record(self, context):
        wanted.append(original(self, context))
        return 0

    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", record)
    return wanted


@pytest.fixture
def burst_home(tmp_path) -> Path:
    return tmp_path / "burst-home"


def run_script(*args: str, timeout: float = 240, cwd: Path = REPO, input: str | None = None) -> subprocess.CompletedProcess:
    """Run one of the entry scripts (or ``-m burst``) as a user would, in a new process."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input,
        env=dict(os.environ),
    )


def wait_until(predicate, timeout: float = 60, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def status_report(job: str) -> dict:
    """``python -m burst status JOB --json``: {"job", "rows", "machines"}; its exit code says done (0),
    failed or interrupted (1), or still to run (3)."""
    result = run_script("-m", "burst", "status", job, "--json")
    assert result.stdout.startswith("{"), (result.returncode, result.stderr)
    report = json.loads(result.stdout)
    states = {row["state"] for row in report["rows"]}
    expected = 0 if states <= {"done"} and len(report["rows"]) else (
        3 if states - {"done", "failed", "interrupted", "unknown"} or not report["rows"] else 1)
    assert result.returncode == expected, (result.returncode, states, result.stderr)
    return report


def statuses(job: str) -> dict[str, dict]:
    """The rows of ``python -m burst status JOB --json``, keyed by tag."""
    return {record["tag"]: record for record in status_report(job)["rows"]}


def write_campaign(folder: Path, rows: list[tuple[str, str]], install: str = "#!/bin/bash\necho installed\n",
                   code_files: dict[str, str] | None = None) -> tuple[Path, Path]:
    """A job CSV, its code folder (named like the CSV) and an INSTALL.sh; returns (csv, install)."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    jobfile = folder / "jobs.csv"
    with open(jobfile, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["instance_type", "command"])
        writer.writerows(rows)
    code = folder / "jobs"
    code.mkdir(exist_ok=True)
    for name, text in (code_files or {}).items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(text, encoding="utf-8")
    install_file = folder / "INSTALL.sh"
    install_file.write_text(install, encoding="utf-8")
    return jobfile, install_file


def public_key_of(pem) -> str:
    return subprocess.run(["ssh-keygen", "-y", "-f", str(pem)], capture_output=True, text=True, check=True).stdout


class StartsWhenTheKeyExists:
    """A test's stand-in machine (an sshd, or a stock userland with its own) for every instance of a job.

    It answers only once the dispatcher created the job's key pair: a thread waits for
    the key file, authorises its public key and starts the server. Its error, if any,
    is kept in ``error`` for the test to report; ``thread`` is joined by fixtures.
    """

    def start_when_the_key_exists(self, pem: Path, server) -> None:
        """``server``: anything with ``authorize(public_key)`` and ``start()``."""
        self.pem = pem
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, args=(server,), daemon=True)
        self.thread.start()

    def _start(self, server) -> None:
        try:
            wait_until(lambda: self.pem.exists() and self.pem.stat().st_size > 0, timeout=120, what="the job's key file")
            server.authorize(public_key_of(self.pem))
            server.start()
        except BaseException as error:  # reported by the test
            self.error = error
