"""``get_s3_files.py JOB DIR [--merge]``: download a job's bucket, merge its result CSVs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from burst.concurrency import parallel
from burst.campaign_record import load_record
from burst.console import console, report
from burst.errors import UserError
from burst.protocol import results_prefix
from burst.storage import Storage, StoredObject, open_storage

MERGED_NAME = "results.csv"
FIRST_COLUMNS = ["job", "tag", "instance_type", "exit_code"]
PROVENANCE = ["state", "attempt", "started", "ended", "seconds", "slot", "cpus", "host", "cpu_model", "cpu_count", "kernel"]


MANIFEST_NAME = ".burst-download.json"


def _is_complete(local: Path, obj: StoredObject, known_etags: dict[str, str]) -> bool:
    """Final name, same size and (where the bucket gives one) the ETag it had when downloaded."""
    if not local.is_file() or local.stat().st_size != obj.size:
        return False
    return not obj.etag or known_etags.get(obj.key) == obj.etag


def download_all(storage: Storage, target: Path) -> tuple[int, int]:
    """Download every object not already complete in ``target``; returns (downloaded, skipped).

    Each file is written as ``name.part`` and renamed when whole, so a file with its
    final name is complete; ``.burst-download.json`` keeps the ETags seen, so an
    object rewritten with the same size (a tag run again) is fetched again.
    """
    manifest = target / MANIFEST_NAME
    known_etags: dict[str, str] = json.loads(manifest.read_text()) if manifest.is_file() else {}
    objects = storage.list_objects()
    todo = [o for o in objects if not _is_complete(target / o.key, o, known_etags)]
    try:
        with Progress(TextColumn("downloading"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("download", total=sum(o.size for o in todo))

            def fetch(obj: StoredObject) -> None:
                local = target / obj.key
                partial = local.with_name(local.name + ".part")
                storage.download_file(obj.key, partial)
                partial.replace(local)
                known_etags[obj.key] = obj.etag
                progress.advance(task, obj.size)

            parallel(fetch, todo, workers=16)
    finally:
        manifest.write_text(json.dumps(known_etags, indent=0, sort_keys=True))
    return len(todo), len(objects) - len(todo)


def merge(folder: Path) -> pd.DataFrame:
    """Every ``<tag>/attempts/<n>/results/**.csv`` of each row's current attempt, with the job's and the machine's facts in front."""
    frames = []
    for status_file in sorted(folder.glob("*/status.json")):
        status = json.loads(status_file.read_text(encoding="utf-8"))
        facts = {
            "job": status.get("job"), "tag": status.get("tag"),
            "instance_type": status.get("instance_type"), "exit_code": status.get("exit_code"),
            "state": status.get("state"), "attempt": status.get("attempt"), "started": status.get("started"),
            "ended": status.get("ended"), "seconds": status.get("seconds"), "slot": status.get("slot"),
            "cpus": " ".join(str(c) for c in status.get("cpus") or []),  # "" = every CPU of the machine
            **{k: v for k, v in status.get("provenance", {}).items()},
        }
        for key, value in status.get("instance", {}).items():
            if key not in ("id", "instance_type", "host"):
                facts[f"instance_{key}"] = value
        facts["instance_id"] = status.get("instance_id")
        attempt = status.get("attempt") or 1
        csvs = sorted((folder / results_prefix(status_file.parent.name, attempt)).rglob("*.csv"))
        tables = [pd.read_csv(path) for path in csvs] or [pd.DataFrame(index=[0])]
        for table in tables:
            for column, value in reversed(list(facts.items())):
                if column in table.columns:
                    table = table.rename(columns={column: f"result_{column}"})
                table.insert(0, column, value)
            frames.append(table)
    if not frames:
        raise UserError(f"{folder} holds no <tag>/status.json: download a job's bucket into it first.")
    # nullable dtypes: a tag without results must not turn the integer columns of the others into floats
    merged = pd.concat(frames, ignore_index=True, sort=False).convert_dtypes()
    front = [c for c in FIRST_COLUMNS + PROVENANCE if c in merged.columns]
    return merged[front + [c for c in merged.columns if c not in front]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="get_s3_files.py", description="Download a job's results (resumable).")
    parser.add_argument("job", help="job name, or a bucket URL (s3://bucket, file:///dir)")
    parser.add_argument("dir", type=Path, help="folder to download into")
    parser.add_argument("--merge", action="store_true", help=f"also write DIR/{MERGED_NAME}: every result CSV, one table")
    parser.add_argument("--region", help="AWS region of the bucket, when giving an s3:// URL")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "://" in args.job:
        storage = open_storage(args.job, **({"region": args.region} if args.job.startswith("s3://") else {}))
    else:
        record = load_record(args.job)
        storage = record.storage()
    args.dir.mkdir(parents=True, exist_ok=True)
    downloaded, skipped = download_all(storage, args.dir)
    report(f"downloaded {downloaded} file(s) into {args.dir}" + (f", {skipped} already complete" if skipped else ""))
    if args.merge:
        merged = merge(args.dir)
        merged.to_csv(args.dir / MERGED_NAME, index=False)
        report(f"merged {len(merged)} row(s) into {args.dir / MERGED_NAME}")
    return 0
