#!/usr/bin/env python3
"""Run a campaign: python dispatcher.py AMI JOB JOBFILE -c -d [--wait]. See README.md."""

from burst.cli.console import exit_with
from burst.cli.run import main

if __name__ == "__main__":
    exit_with(main)
