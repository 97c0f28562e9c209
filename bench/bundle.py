"""The bundle a stock machine gets: its size, the time to build it, the time to upload it over SSH.

    .venv/bin/python bench/bundle.py [--repeats 5]

Builds the EC2 bundle of an empty campaign (no INSTALL.sh, no code folder: what
burst itself adds to every machine) with and without the node's Python runtime
(``burst.control.runtime``: boto3, botocore trimmed to s3/ec2/sts, s3transfer,
jmespath, dateutil, six, urllib3), then uploads each with burst's own SSH
transport (paramiko SFTP) to a real OpenSSH sshd on 127.0.0.1, REPEATS times,
and prints the best and median times. The runtime is built once under
``$BURST_RUNTIME_CACHE`` or a temporary folder (the first build is timed too).
Loopback has no latency and no bandwidth limit: on a real link add size /
bandwidth (1.8 MB at 100 Mbit/s is ~0.15 s) and a few round trips.
Needs Debian's openssh-server (bash scripts/test.sh installs it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from burst.control.bundle import build_bundle  # noqa: E402
from burst.control.runtime import ensure_runtime  # noqa: E402
from burst.transport.ssh import SSHTransport  # noqa: E402
from burst.transport.ssh_target import SSHTarget  # noqa: E402
from tests.sshd import SSHServer, make_keypair  # noqa: E402


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="burst-bench-bundle-") as temp:
        folder = Path(temp)
        cache = Path(os.environ.get("BURST_RUNTIME_CACHE") or folder / "runtime")
        os.environ["BURST_RUNTIME_CACHE"] = str(cache)
        first_build, runtime = timed(lambda: ensure_runtime(folder / "home"))
        files = [p for p in Path(runtime).rglob("*") if p.is_file()]
        unpacked = sum(p.stat().st_size for p in files)
        bundles = {}
        for name, with_runtime in (("without runtime", None), ("with runtime", runtime)):
            seconds, data = timed(lambda: build_bundle(None, None, "python3", True, runtime=with_runtime))
            path = folder / f"{name.replace(' ', '-')}.tar.gz"
            path.write_bytes(data)
            bundles[name] = (path, seconds)
        keys = make_keypair(folder / "key")
        with SSHServer(folder / "sshd") as server:
            server.authorize(keys.public_text)
            transport = SSHTransport(SSHTarget(server.host, server.port, server.user, [str(keys.private_path)]),
                                     known_hosts=folder / "known_hosts", where="bench sshd", connect_timeout=20)
            try:
                remote = folder / "remote"
                transport.put(keys.public_path, str(remote / "warm-up"))  # the SFTP channel opens once, untimed
                print(f"node runtime: {len(files)} files, {unpacked / 1e6:.1f} MB unpacked; first build "
                      f"{first_build:.2f} s (cached afterwards)")
                print(f"{'bundle':<16} {'bytes':>10} {'MB':>6} {'build s':>8} {'upload best s':>14} {'median s':>9}")
                for name, (path, build_seconds) in bundles.items():
                    times = []
                    for n in range(args.repeats):
                        target = remote / f"{n}-{path.name}"
                        times.append(timed(lambda: transport.put(path, str(target)))[0])
                        assert target.stat().st_size == path.stat().st_size
                    size = path.stat().st_size
                    print(f"{name:<16} {size:>10} {size / 1e6:>6.2f} {build_seconds:>8.2f} {min(times):>14.3f} "
                          f"{statistics.median(times):>9.3f}")
            finally:
                transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
