"""Per-campaign host keys and key-file login for the SSH transport.

Host keys go to a per-campaign known_hosts file, never ``~/.ssh/known_hosts``:
a host seen for the first time is trusted and recorded (trust on first use), a
host whose key changed is refused. Several transports may connect in parallel
threads (or processes) and share that file; it is read and appended under a
thread lock plus an ``fcntl`` lock on a sidecar ``.lock`` file.

``_KeyFiles`` logs in with the job's private key files, in order.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import paramiko
from paramiko.auth_strategy import AuthStrategy, InMemoryPrivateKey

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- known_hosts

_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextmanager
def _known_hosts_lock(path: Path) -> Iterator[None]:
    key = str(path.resolve())
    with _THREAD_LOCKS_GUARD:
        lock = _THREAD_LOCKS.setdefault(key, threading.Lock())
    with lock:
        fd = os.open(f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def _ensure_known_hosts(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)


def _read_known_hosts(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    return keys


def _load_host_keys(path: Path, name: str, alias: str | None, into: paramiko.HostKeys) -> None:
    """The recorded keys of one machine, filed under ``name`` (what paramiko looks up for this connection).

    With an ``alias`` (the instance id, as OpenSSH's ``HostKeyAlias``) a machine is
    known by it, not by its address: a public IP that AWS gives to a later machine
    is then a new machine with its own entry, and only a changed key of the same
    machine is refused.
    """
    recorded = _read_known_hosts(path).lookup(alias or name)
    for key in (recorded or {}).values():
        into.add(name, key.get_name(), key)


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Record an unknown host's key in the campaign's known_hosts (appending, locked), under its alias if any."""

    def __init__(self, known_hosts: Path, alias: str | None = None):
        self.known_hosts = known_hosts
        self.alias = alias

    def missing_host_key(self, client: paramiko.SSHClient, server_name: str, key: paramiko.PKey) -> None:
        hostname = self.alias or server_name
        with _known_hosts_lock(self.known_hosts):
            # another connection may have recorded this host since we read the file
            recorded = _read_known_hosts(self.known_hosts).lookup(hostname)
            if recorded is not None:
                ours = recorded.get(key.get_name())
                if ours is None or ours != key:
                    raise paramiko.BadHostKeyException(hostname, key, ours or list(recorded.values())[0])
            else:
                with open(self.known_hosts, "a") as handle:
                    handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(server_name, key.get_name(), key)
        log.info("recorded the host key of %s (%s) in %s", hostname, key.get_name(), self.known_hosts)


# ---------------------------------------------------------------- authentication


class _KeyFiles(AuthStrategy):
    """Try the job's keys in order; only the server's refusals count as auth failures.

    (``SSHClient``'s own ``key_filename`` handling reports a refused RSA key as
    "Invalid key", from trying to read it as other key types.) Transport errors
    propagate unchanged, so a connection reset during login is retried as such.
    """

    def __init__(self, user: str, keys: list[tuple[str, paramiko.PKey]]):
        super().__init__(ssh_config=None)
        self.user, self.keys = user, keys

    def get_sources(self) -> Iterator[InMemoryPrivateKey]:
        for _path, key in self.keys:
            yield InMemoryPrivateKey(self.user, key)

    def authenticate(self, transport: paramiko.Transport) -> list:
        refusal: paramiko.AuthenticationException | None = None
        for _path, key in self.keys:
            try:
                return transport.auth_publickey(self.user, key)
            except paramiko.AuthenticationException as exc:
                refusal = exc
        raise refusal or paramiko.AuthenticationException("no key to try")
