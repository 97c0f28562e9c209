#!/usr/bin/env bash
# burst bootstrap: make the node agent runnable, before the user's INSTALL.sh.
#
# The agent needs python3 and, when BURST_NEEDS_BOTO3=1 (EC2 nodes upload to
# S3), the boto3 module. Idempotent: when everything is there it changes nothing.
# Installs with apt-get (Debian/Ubuntu) or dnf/yum (Amazon Linux), through
# `sudo -n` unless already root. Output goes to the node's install.log.
set -euo pipefail

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

needs_boto3=${BURST_NEEDS_BOTO3:-0}

missing() {
    # prints what is missing, one word per line; nothing when all is there
    if ! command -v python3 >/dev/null 2>&1; then
        echo python3
        [ "$needs_boto3" = 1 ] && echo boto3
        return 0
    fi
    if [ "$needs_boto3" = 1 ] && ! python3 -c 'import boto3' >/dev/null 2>&1; then
        echo boto3
    fi
    return 0
}

todo=$(missing)
if [ -z "$todo" ]; then
    if [ "$needs_boto3" = 1 ]; then
        say "nothing to do: $(command -v python3) ($(python3 --version 2>&1)) already imports boto3"
    else
        say "nothing to do: $(command -v python3) ($(python3 --version 2>&1)) is there"
    fi
    exit 0
fi
say "missing: $(echo $todo)"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    die "need to install $(echo $todo) but $(id -un) is not root and cannot use sudo without a password"
fi

packages=(python3)
[ "$needs_boto3" = 1 ] && packages+=(python3-boto3)

# Retry a command while another package manager run (often cloud-init's) holds the lock.
retry() {
    local attempt
    for attempt in $(seq 1 12); do
        if "$@"; then
            return 0
        fi
        say "attempt $attempt of \`$*\` failed (package manager busy?); retrying in 10 s"
        sleep 10
    done
    return 1
}

if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -q)
    say "running: apt-get update"
    retry "${apt[@]}" update || die "apt-get update kept failing"
    say "running: apt-get install -y ${packages[*]}"
    retry "${apt[@]}" install -y --no-install-recommends "${packages[@]}" \
        || die "apt-get install ${packages[*]} kept failing"
elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then
    dnf=$(command -v dnf || command -v yum)
    say "running: $dnf install -y ${packages[*]}"
    if ! retry "${SUDO[@]}" "$dnf" install -y "${packages[@]}"; then
        [ "$needs_boto3" = 1 ] || die "$dnf install ${packages[*]} kept failing"
        say "python3-boto3 is not installable; falling back to pip install --user boto3"
        retry "${SUDO[@]}" "$dnf" install -y python3 python3-pip || die "$dnf install python3-pip kept failing"
        python3 -m pip install --user --quiet boto3 || die "pip install --user boto3 failed"
    fi
else
    die "no apt-get, dnf or yum on this machine: install $(echo $todo) in the AMI"
fi

todo=$(missing)
[ -z "$todo" ] || die "still missing after installing: $(echo $todo)"
say "done: $(command -v python3) ($(python3 --version 2>&1))$([ "$needs_boto3" = 1 ] && echo ' imports boto3')"
