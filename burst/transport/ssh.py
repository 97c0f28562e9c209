"""SSH transport (paramiko): commands through ``bash -c``, files through SFTP.

Only the dispatcher imports this module (the node agent never does), so
paramiko stays out of the agent's imports.

Host keys go to a per-campaign known_hosts file (trust on first use, a changed
key is refused): see ``burst.transport.ssh_trust``, which also holds the
key-file login. Where to connect (``SSHTarget``, ``resolve_target`` with an
OpenSSH client config) is in ``burst.transport.ssh_target``; both are
re-exported here, with ``SSHError``.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import shlex
import socket
import stat
import threading
import time
from pathlib import Path

import paramiko

from burst.retry import backoff
from burst.transport.base import SKIPPED_NAMES, Result, Transport
from burst.transport.ssh_proxy import ProxyRoute
from burst.transport.ssh_target import SSHError, SSHTarget, resolve_target
from burst.transport.ssh_trust import (
    _ensure_known_hosts,
    _KeyFiles,
    _known_hosts_lock,
    _load_host_keys,
    _TrustOnFirstUse,
)

__all__ = [
    "SSHAuthenticationFailed",
    "SSHError",
    "SSHHostKeyChanged",
    "SSHTarget",
    "SSHTransport",
    "SSHUnreachable",
    "resolve_target",
]

log = logging.getLogger(__name__)
# paramiko logs every refused banner read of a booting machine at ERROR level;
# without a handler Python would print those to stderr. Applications that
# configure logging still receive them through propagation.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

AUTH_GRACE = 60.0  # how long authentication failures are retried (cloud-init installing the key)
CHUNK = 1 << 16


class SSHUnreachable(SSHError, TimeoutError):
    """sshd did not answer within the connect timeout."""


class SSHAuthenticationFailed(SSHError):
    """The node refused the key files."""


class SSHHostKeyChanged(SSHError):
    """The node's host key differs from the one recorded in the campaign's known_hosts."""


# ---------------------------------------------------------------- transport


class SSHTransport(Transport):
    """A node reached over SSH; connects (with retries) when constructed."""

    def __init__(
        self,
        target: SSHTarget,
        *,
        known_hosts: Path,
        where: str,
        connect_timeout: float = 600.0,
        auth_grace: float = AUTH_GRACE,
        host_key_alias: str | None = None,
    ):
        self.target = target
        self.host_key_alias = host_key_alias  # the instance id: host keys are known by machine, not by address
        self.known_hosts = Path(known_hosts).expanduser()
        self.where = where
        self.connect_timeout = connect_timeout
        self.auth_grace = auth_grace
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()
        self._keys = self._load_keys()
        self._route = ProxyRoute(target, self._open_hop)
        _ensure_known_hosts(self.known_hosts)
        self._connect(connect_timeout)

    def _open_hop(self, jump: SSHTarget, timeout: float) -> "SSHTransport":
        """The connection to a ProxyJump host (its host key recorded under its own name)."""
        return SSHTransport(jump, known_hosts=self.known_hosts, where=f"the jump host {jump.hostname} (ProxyJump)",
                            connect_timeout=timeout, auth_grace=self.auth_grace)

    # -- connection

    def _load_keys(self) -> list[tuple[str, paramiko.PKey]]:
        if not self.target.key_files:
            raise SSHError(
                f"no SSH key file to log in to {self.where} as {self.target.user}: "
                "give the key pair's private key file (or an IdentityFile in the ssh config)"
            )
        keys = []
        for path in self.target.key_files:
            try:
                keys.append((path, paramiko.PKey.from_path(path)))
            except FileNotFoundError:
                raise SSHError(f"the SSH key file {path} does not exist") from None
            except paramiko.PasswordRequiredException:
                raise SSHError(f"the SSH key file {path} is protected by a passphrase; burst needs a key without one") from None
            except (paramiko.SSHException, OSError, ValueError) as exc:
                raise SSHError(f"cannot read the SSH key file {path}: {exc}") from None
        return keys

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        port = self.target.port
        name = self.target.hostname if port == 22 else f"[{self.target.hostname}]:{port}"  # paramiko's lookup name
        with _known_hosts_lock(self.known_hosts):
            _load_host_keys(self.known_hosts, name, self.host_key_alias, client.get_host_keys())
        client.set_missing_host_key_policy(_TrustOnFirstUse(self.known_hosts, self.host_key_alias))
        return client

    def _connect(self, timeout: float) -> None:
        target = self.target
        start = time.monotonic()
        deadline = start + timeout
        delays = backoff(first=0.5, factor=2.0, cap=10.0)  # the one policy (burst.retry)
        first_auth_failure: float | None = None
        attempts = 0
        last_error: BaseException | None = None
        while True:
            attempts += 1
            remaining = max(deadline - time.monotonic(), 0.1)
            client = self._new_client()
            try:
                sock = self._route.sock(remaining)  # None: a plain TCP connection
                client.connect(
                    target.hostname,
                    port=target.port,
                    sock=sock,
                    username=target.user,
                    auth_strategy=_KeyFiles(target.user, self._keys),
                    timeout=min(remaining, 15.0),
                    banner_timeout=min(remaining, 30.0),
                    auth_timeout=min(remaining, 30.0),
                    allow_agent=False,
                    look_for_keys=False,
                )
            except paramiko.BadHostKeyException as exc:
                client.close()
                raise SSHHostKeyChanged(
                    f"the host key of {self.where} ({target.hostname} port {target.port}) is not the one recorded "
                    f"{'for ' + self.host_key_alias + ' ' if self.host_key_alias else ''}"
                    f"in {self.known_hosts}: recorded {exc.expected_key.get_name()} "
                    f"{exc.expected_key.fingerprint}, offered {exc.key.get_name()} {exc.key.fingerprint}. "
                    "Another machine may now answer at this address. If you know why the key changed, "
                    f"delete the line for {self.host_key_alias or 'this host'} from {self.known_hosts} and retry."
                ) from None
            except paramiko.AuthenticationException as exc:
                client.close()
                last_error = exc
                now = time.monotonic()
                if first_auth_failure is None:
                    first_auth_failure = now
                if now - first_auth_failure >= self.auth_grace or now >= deadline:
                    raise SSHAuthenticationFailed(
                        f"{self.where} refused the SSH login as {target.user} at {target.hostname} port "
                        f"{target.port} with key file(s) {', '.join(target.key_files)} ({str(exc).rstrip('.')}). "
                        "Check that the key pair is the one the instance was launched with and the user "
                        "is right for the AMI (ubuntu for Ubuntu, ec2-user for Amazon Linux)."
                    ) from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                # refused / timed out / reset while booting, no banner yet, DNS not there yet
                client.close()
                last_error = exc
            else:
                transport = client.get_transport()
                if transport is not None:
                    transport.set_keepalive(30)
                self._client = client
                log.debug("connected to %s (%s) after %d attempt(s)", self.where, target, attempts)
                return
            now = time.monotonic()
            if now >= deadline:
                raise SSHUnreachable(
                    f"could not connect to {self.where} by SSH ({target.user}@{target.hostname} port {target.port}) "
                    f"within {timeout:g} s ({attempts} attempts); last error: {_describe(last_error)}"
                )
            delay = next(delays)
            log.debug("SSH to %s not ready (%s); retrying in %.1f s", self.where, _describe(last_error), delay)
            time.sleep(min(delay, deadline - now))

    def _active_client(self) -> paramiko.SSHClient:
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is None or not transport.is_active():
                # the connection dropped (network blip, sshd restarted): reconnect once
                self._drop_connection()
                self._connect(min(self.connect_timeout, 120.0))
                client = self._client
            assert client is not None
            return client

    def _sftp_client(self) -> paramiko.SFTPClient:
        with self._lock:
            client = self._active_client()
            if self._sftp is None or self._sftp.get_channel() is None or self._sftp.get_channel().closed:
                self._sftp = client.open_sftp()
            return self._sftp

    def _drop_connection(self) -> None:
        sftp, client = self._sftp, self._client
        self._sftp = self._client = None
        for closable in (sftp, client):
            if closable is not None:
                try:
                    closable.close()
                except Exception:  # closing a dead connection may fail; nothing to release then
                    pass

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
            self._route.close()

    # -- commands

    def _execute(self, cmd: str, timeout: float | None) -> Result:
        client = self._active_client()
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=30)
        try:
            channel.exec_command(f"exec bash -c {shlex.quote(cmd)}")
            channel.shutdown_write()  # no stdin: commands reading it see end of file
            return self._collect(channel, cmd, timeout)
        finally:
            channel.close()

    def _collect(self, channel: paramiko.Channel, cmd: str, timeout: float | None) -> Result:
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[bytes] = []
        err: list[bytes] = []
        done = threading.Event()
        channel.settimeout(0.2)

        def read_stderr() -> None:  # stdout and stderr drain in parallel: no window fills up
            while not done.is_set():
                try:
                    data = channel.recv_stderr(CHUNK)
                except socket.timeout:
                    continue
                if not data:
                    return
                err.append(data)

        reader = threading.Thread(target=read_stderr, name=f"ssh-stderr {self.where}", daemon=True)
        reader.start()
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"on {self.where}: `{cmd}` did not finish within {timeout:g} s")
                try:
                    data = channel.recv(CHUNK)
                except socket.timeout:
                    continue
                if not data:
                    break
                out.append(data)
            while reader.is_alive():
                reader.join(0.2)
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"on {self.where}: `{cmd}` did not finish within {timeout:g} s")
            while not channel.exit_status_ready():
                if not channel.status_event.wait(0.2) and deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"on {self.where}: `{cmd}` did not finish within {timeout:g} s")
            status = channel.recv_exit_status()  # -1 when killed by a signal
        finally:
            done.set()
        return Result(status, b"".join(out).decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace"))

    # -- files

    @staticmethod
    def _remote(path: str) -> str:
        """Remote paths that are not absolute are relative to the home folder (SFTP's start)."""
        path = str(path)
        if path == "~":
            return "."
        if path.startswith("~/"):
            return path[2:] or "."
        return path

    def _makedirs(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        folder = posixpath.normpath(folder)
        if folder in ("", ".", "/"):
            return
        try:
            if stat.S_ISDIR(sftp.stat(folder).st_mode):
                return
            raise OSError(errno.ENOTDIR, f"on {self.where}: {folder} exists and is not a folder")
        except FileNotFoundError:
            pass
        self._makedirs(sftp, posixpath.dirname(folder))
        try:
            sftp.mkdir(folder)
        except OSError:
            # created meanwhile by someone else is fine; anything else is not
            if not stat.S_ISDIR(sftp.stat(folder).st_mode):
                raise

    def _put_file(self, sftp: paramiko.SFTPClient, local_path: Path, remote: str) -> None:
        sftp.put(str(local_path), remote)
        sftp.chmod(remote, stat.S_IMODE(os.stat(local_path).st_mode))

    def put(self, local_path: Path, remote_path: str) -> None:
        remote = self._remote(remote_path)
        with self._lock:
            sftp = self._sftp_client()
            try:
                self._makedirs(sftp, posixpath.dirname(remote))
                self._put_file(sftp, Path(local_path), remote)
            except OSError as exc:
                raise OSError(exc.errno, f"on {self.where}: cannot copy {local_path} to {remote_path}: {exc}") from exc

    def get(self, remote_path: str, local_path: Path) -> None:
        remote = self._remote(remote_path)
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            sftp = self._sftp_client()
            try:
                mode = stat.S_IMODE(sftp.stat(remote).st_mode or 0o644)
                sftp.get(remote, str(local_path))
            except OSError as exc:
                raise OSError(exc.errno, f"on {self.where}: cannot copy {remote_path} to {local_path}: {exc}") from exc
        os.chmod(local_path, mode)

    def put_dir(self, local_dir: Path, remote_dir: str) -> None:
        """Copy a folder tree over SFTP (files and empty folders), skipping caches and VCS data."""
        local_dir = Path(local_dir)
        remote_root = self._remote(remote_dir).rstrip("/") or "/"
        with self._lock:
            sftp = self._sftp_client()
            try:
                self._makedirs(sftp, remote_root)
                for path in sorted(local_dir.rglob("*")):
                    relative = path.relative_to(local_dir)
                    if any(part in SKIPPED_NAMES for part in relative.parts):
                        continue
                    target = posixpath.join(remote_root, relative.as_posix())
                    if path.is_dir():
                        self._makedirs(sftp, target)
                    elif path.is_file():
                        self._put_file(sftp, path, target)
            except OSError as exc:
                raise OSError(exc.errno, f"on {self.where}: cannot copy {local_dir} to {remote_dir}: {exc}") from exc


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "none"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text
