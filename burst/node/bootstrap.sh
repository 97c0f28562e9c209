#!/usr/bin/env bash
# burst bootstrap: find a Python for the worker, before the user's INSTALL.sh.
#   bash bootstrap.sh FILE    writes the interpreter's path into FILE
#
# The worker brings its own packages (agent/runtime: boto3 and what it needs), so
# all a machine needs is a python3 >= 3.9. When one is there (python3, or a
# python3.X beside it) nothing is installed. Only when none is does this install
# one, with apt-get (Debian/Ubuntu) or dnf/yum (Amazon Linux, RHEL, Fedora), through
# `sudo -n` unless already root, and it says what it did. Output goes to install.log.
set -euo pipefail

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

out=${1:?usage: bootstrap.sh FILE}
candidates=(python3 python3.13 python3.12 python3.11 python3.10 python3.9)

# The first interpreter of the candidates that is Python >= 3.9, as an absolute path; nothing when none is.
find_python() {
    local name found
    for name in "${candidates[@]}"; do
        found=$(command -v "$name" 2>/dev/null) || continue
        if "$found" -c 'import sys; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1; then
            echo "$found"
            return 0
        fi
    done
    return 0
}

describe() { echo "$1 ($("$1" --version 2>&1))"; }

python=$(find_python)
if [ -n "$python" ]; then
    say "nothing to install: the worker runs on $(describe "$python") with its own packages"
    printf '%s\n' "$python" > "$out"
    exit 0
fi
if command -v python3 >/dev/null 2>&1; then
    say "$(describe "$(command -v python3)") is older than 3.9: installing a newer python3"
else
    say "no python3 on this machine: installing one"
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    die "need to install python3 >= 3.9 but $(id -un) is not root and cannot use sudo without a password"
fi

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
    apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -q)
    say "running: apt-get update"
    retry "${apt[@]}" update || die "apt-get update kept failing"
    say "running: apt-get install -y python3"
    retry "${apt[@]}" install -y --no-install-recommends python3 || die "apt-get install python3 kept failing"
elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then
    dnf=$(command -v dnf || command -v yum)
    # dnf and yum wait for each other's lock themselves; a distribution whose python3 stays
    # old (Amazon Linux 2: 3.7) may offer a newer one beside it
    for package in python3 python3.11 python3.9; do
        say "running: $dnf install -y $package"
        "${SUDO[@]}" "$dnf" install -y "$package" || say "$dnf install $package failed"
        [ -z "$(find_python)" ] || break
    done
else
    die "no apt-get, dnf or yum on this machine: the AMI needs a python3 >= 3.9"
fi

python=$(find_python)
[ -n "$python" ] || die "no python3 >= 3.9 after installing one; the AMI needs a python3 >= 3.9"
say "installed: the worker runs on $(describe "$python")"
printf '%s\n' "$python" > "$out"
