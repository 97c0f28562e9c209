#!/usr/bin/env python3
"""Run a campaign: python dispatcher.py AMI JOB JOBFILE -c -d [--wait]. See README.md."""

from burst.console import exit_with
from burst.dispatcher_cli import main

if __name__ == "__main__":
    exit_with(main)
