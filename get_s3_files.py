#!/usr/bin/env python3
"""Download a job's results: python get_s3_files.py JOB DIR [--merge]. See README.md."""

from burst.cli.console import exit_with
from burst.cli.download import main

if __name__ == "__main__":
    exit_with(main)
