#!/bin/bash
# Set up one machine before it runs rows. burst runs this once per machine, in the
# job's code folder, with JOB, INSTANCE_ID, INSTANCE_TYPE and BURST_PROVIDER (local
# or ec2) exported. Exit non-zero to mark the machine failed; the last lines of this
# script's output are shown in `python -m burst status`. Each row then runs in a
# fresh copy of the code folder as it is after this script.
set -euo pipefail

echo "setting up $INSTANCE_ID ($INSTANCE_TYPE) on $BURST_PROVIDER"

if [ "$BURST_PROVIDER" = "ec2" ]; then
    # A fresh EC2 machine: install system packages your benchmark needs here, e.g.
    # sudo apt-get update -q && sudo apt-get install -y -q build-essential
    :
fi

# Per-job setup that stays inside the code folder works everywhere, e.g.
# python3 -m pip install --user -r requirements.txt
echo "ready"
