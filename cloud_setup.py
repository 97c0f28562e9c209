#!/usr/bin/env python3
"""Make a job's AWS resources without launching: python cloud_setup.py JOB [--teardown]. See README.md."""

from burst.console import exit_with
from burst.cloud_setup_cli import main

if __name__ == "__main__":
    exit_with(main)
