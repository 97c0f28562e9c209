#!/usr/bin/env python3
"""Make a job's AWS resources without launching: python cloud_setup.py JOB [--teardown]. See README.md."""

from burst.cli.cloud_setup import main
from burst.cli.console import exit_with

if __name__ == "__main__":
    exit_with(main)
