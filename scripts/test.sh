#!/usr/bin/env bash
# The test command: sets up everything the tests need on a fresh machine, then runs pytest.
#   bash scripts/test.sh [pytest arguments]
# - Debian's openssh-server and debootstrap when missing (real sshd processes; a stock Debian 12 userland)
# - a virtualenv in .venv with requirements-dev.txt (reinstalled when the requirements change)
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need: sshd (real SSH servers on 127.0.0.1) and debootstrap (the stock Debian 12
# userland of tests/stock.py, built once under /var/tmp/burst-test-userlands)
missing=()
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing+=(openssh-server)
[ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: installing Debian's ${missing[*]} for the SSH and stock-machine tests"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v faketime >/dev/null 2>&1; then
    echo "scripts/test.sh: installing Debian's faketime (libfaketime) for the clock-skew tests"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends faketime >/dev/null
fi

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "scripts/test.sh: burst needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 2; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
    echo "$wanted" > "$stamp"
fi
exec .venv/bin/python -m pytest "$@"
