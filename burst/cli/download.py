"""``get_s3_files.py JOB DIR [--merge]``: download a job's bucket (``burst.results.download``), merge its result CSVs (``burst.results.merge``).

pandas is imported only for ``--merge``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from burst.cli.arguments import Parser
from burst.cli.console import errors, report
from burst.errors import BurstError, UserError
from burst.results.download import DownloadReport, download_all
from burst.storage import KeyNotFound, Storage, open_storage

MERGED_NAME = "results.csv"
# botocore's, named rather than imported: a file:// download never loads botocore
_CREDENTIAL_ERRORS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError",
                      "UnauthorizedSSOTokenError", "TokenRetrievalError", "SSOError"}


def build_parser(prog: str = "get_s3_files.py") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description="Download a job's results (resumable).")
    parser.add_argument("job", help="job name, or a bucket URL (s3://bucket, file:///dir)")
    parser.add_argument("dir", type=Path, help="folder to download into")
    parser.add_argument("--merge", action="store_true", help=f"also write DIR/{MERGED_NAME}: every result CSV, one table")
    parser.add_argument("--region", help="AWS region of the bucket, when giving an s3:// URL")
    return parser


def open_bucket(job: str, region: str | None) -> Storage:
    """The job's bucket, by campaign name or URL; a URL burst cannot read is a UserError."""
    if "://" not in job:
        from burst.control.campaign_record import load_record  # providers and all: only for a job name

        return load_record(job).storage()
    try:
        return open_storage(job, **({"region": region} if job.startswith("s3://") else {}))
    except ValueError as error:
        raise UserError(f"{error}.") from None


def download(storage: Storage, folder: Path) -> DownloadReport:
    """``download_all``, with a missing bucket or missing AWS credentials as one message (exit status 2)."""
    try:
        return download_all(storage, folder)
    except KeyNotFound as error:  # the bucket (or bucket folder) is not there
        raise UserError(f"{error}: check the job name or URL (and --region / AWS_PROFILE for S3).") from None
    except Exception as error:
        if type(error).__module__ == "botocore.exceptions" and type(error).__name__ in _CREDENTIAL_ERRORS:
            from burst.providers.aws_setup import credentials_help

            raise credentials_help(str(error)) from None
        raise


def warn(message: str) -> None:
    errors.print(f"warning: {message}", markup=False, soft_wrap=True)


def main(argv: list[str] | None = None, prog: str = "get_s3_files.py") -> int:
    args = build_parser(prog).parse_args(argv)
    if args.dir.exists() and not args.dir.is_dir():
        raise UserError(f"{args.dir} exists and is not a folder: download writes a folder (made if missing) of "
                        f"the job's files; give a new or existing folder's path.")
    storage = open_bucket(args.job, args.region)
    result = download(storage, args.dir)
    for message in result.warnings:
        warn(message)
    report(f"downloaded {result.downloaded} file(s) into {args.dir}"
           + (f", {result.skipped} already complete" if result.skipped else ""))
    if args.merge:
        from burst.results.merge import merge

        merged = merge(args.dir)
        for message in merged.warnings:
            warn(message)
        merged.table.to_csv(args.dir / MERGED_NAME, index=False)
        report(f"merged {len(merged.table)} row(s) into {args.dir / MERGED_NAME}")
    if result.failed:
        raise BurstError(f"{len(result.failed)} file(s) could not be downloaded (see the warnings); "
                         "run the same command again to fetch them.")
    return 0
