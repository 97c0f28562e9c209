"""A real OpenSSH ``sshd`` on 127.0.0.1 for tests (never a mock of SSH).

Each :class:`SSHServer` has its own folder with a fresh ed25519 host key, an
``authorized_keys`` file and an ``sshd_config``; it listens on a free port of
127.0.0.1 and logs in as the user running the tests (root in the CI container,
hence ``PermitRootLogin prohibit-password``).

Environment of sessions (``env=``): OpenSSH 9.2 applies the server's ``SetEnv``
after its own defaults, so ``SetEnv PATH=...`` does replace the session's
default ``PATH``. Two traps, both verified and handled here:

* sshd honours only the *first* ``SetEnv`` line (later ones are silently
  ignored), so all variables are written on one line.
* Debian's bash reads ``~/.bashrc`` even for non-interactive commands when it
  is started by sshd and ``SHLVL`` < 2, and this container's ``/root/.bashrc``
  prepends pyenv and cargo to ``PATH`` (so ``python3`` was pyenv's, not the
  venv's). :func:`node_env` sets ``SHLVL=1``: the login shell then counts
  itself as level 2 and skips ``~/.bashrc``, and the ``PATH`` given wins.

Fixtures: ``ssh_keypair`` (a client key pair, private file 0600),
``sshd_factory`` (build servers with a given ``SetEnv`` dict; all stopped at
teardown) and ``sshd_server`` (started, with ``ssh_keypair`` authorized).
Import them into a test module with ``from tests.sshd import sshd_server,
ssh_keypair, sshd_factory  # noqa: F401``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pytest

SSHD_MISSING = (
    "OpenSSH's sshd was not found (looked for `sshd` on PATH and /usr/sbin/sshd). "
    "The SSH tests need a real sshd: run the test command from the README "
    "(.ci/run), which installs Debian's openssh-server."
)


def sshd_path() -> str:
    """Absolute path of sshd (it refuses to run from a relative path)."""
    found = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found and os.path.exists("/usr/sbin/sshd"):
        found = "/usr/sbin/sshd"
    if not found:
        pytest.fail(SSHD_MISSING, pytrace=False)
    return os.path.abspath(found)


def ssh_keygen_path() -> str:
    found = shutil.which("ssh-keygen") or shutil.which("ssh-keygen", path="/usr/bin:/usr/local/bin")
    if not found:
        pytest.fail(SSHD_MISSING.replace("sshd was", "ssh-keygen was"), pytrace=False)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generate_key(path: Path, kind: str = "ed25519", comment: str = "burst-test") -> Path:
    """Write a passphrase-less key pair ``path`` (0600) and ``path.pub``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    args = [ssh_keygen_path(), "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)]
    if kind == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, capture_output=True)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path

    @property
    def public_text(self) -> str:
        return self.public_path.read_text().strip()


def make_keypair(folder: Path, name: str = "id_ed25519", kind: str = "ed25519") -> KeyPair:
    private = generate_key(Path(folder) / name, kind)
    return KeyPair(private, private.with_name(private.name + ".pub"))


def node_env(**extra: str) -> dict[str, str]:
    """``SetEnv`` values that make a session look like a burst node in tests.

    ``PATH`` puts this interpreter's folder (the venv's ``bin``) first, so the
    node's ``python3`` is the venv's python with boto3; ``SHLVL=1`` keeps the
    login user's ``~/.bashrc`` from rewriting that ``PATH`` (see the module
    docstring). ``extra`` adds variables (``AWS_ENDPOINT_URL``, fake
    credentials, ...).
    """
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bin_dir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    env = {"PATH": path, "SHLVL": "1"}
    env.update(extra)
    return env


def _setenv_arg(name: str, value: str) -> str:
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise ValueError(f"bad environment variable name for SetEnv: {name!r}")
    if any(ch in value for ch in '"\n\r\\'):
        raise ValueError(f"SetEnv value for {name} cannot contain quotes, backslashes or newlines: {value!r}")
    return f'"{name}={value}"'


class SSHServer:
    """One sshd process; create it, then :meth:`start` (possibly later, from a timer).

    ``folder`` holds its files (a fresh temporary folder if omitted); ``port``
    is picked free if omitted (pass a previous server's port to restart "the
    same host" with a new host key); ``env`` becomes ``SetEnv`` lines.
    """

    def __init__(
        self,
        folder: Path | None = None,
        *,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        host_key_type: str = "ed25519",
    ):
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="burst-sshd-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.env = dict(env or {})
        self.user = _current_user()
        self.home = Path(pwd.getpwnam(self.user).pw_dir)  # the login home (not $HOME, which tests may change)
        self.sshd = sshd_path()
        self.host_key_path = generate_key(self.folder / f"ssh_host_{host_key_type}_key", host_key_type, "burst-test-host")
        self.authorized_keys_path = self.folder / "authorized_keys"
        self.authorized_keys_path.touch(mode=0o600)
        self.config_path = self.folder / "sshd_config"
        self.log_path = self.folder / "sshd.log"
        self.process: subprocess.Popen | None = None
        self._write_config()

    @property
    def host_public_key(self) -> str:
        """``type base64`` of the host key, as it appears in known_hosts."""
        return " ".join(self.host_key_path.with_name(self.host_key_path.name + ".pub").read_text().split()[:2])

    def authorize(self, public_key_text: str) -> None:
        with self.authorized_keys_path.open("a") as handle:
            handle.write(public_key_text.strip() + "\n")

    def _write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key_path}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "PidFile none",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitUserEnvironment no",
            "X11Forwarding no",
            "PrintMotd no",
            "UseDNS no",
            "MaxStartups 100",
            "MaxSessions 100",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
        ]
        if self.env:  # sshd honours only the first SetEnv line: all variables go on one
            lines.append("SetEnv " + " ".join(_setenv_arg(name, value) for name, value in self.env.items()))
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, wait: bool = True) -> "SSHServer":
        if self.process is not None and self.process.poll() is None:
            return self
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation dir
        self._write_config()
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [self.sshd, "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()
        if wait:
            self.wait_listening()
        return self

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Return once a TCP connection to the port succeeds; fail with sshd's log otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with status {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd is not listening on {self.host}:{self.port} after {timeout} s:\n{self.log()}")
                time.sleep(0.02)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return "(no sshd log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> "SSHServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def write_ssh_config(path: Path, entries: Mapping[str, Mapping[str, str | int]]) -> Path:
    """Write an OpenSSH client config: ``{"i-*": {"HostName": ..., "Port": ..., ...}}``."""
    lines: list[str] = []
    for pattern, options in entries.items():
        lines.append(f"Host {pattern}")
        lines += [f"    {key} {value}" for key, value in options.items()]
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)


def ssh_config_for(path: Path, server: SSHServer, key: Path | str, pattern: str = "*", user: str | None = None) -> Path:
    """Client config mapping ``Host pattern`` to ``server`` (HostName, Port, User, IdentityFile)."""
    return write_ssh_config(
        path,
        {pattern: {"HostName": server.host, "Port": server.port, "User": user or server.user, "IdentityFile": str(key)}},
    )


@pytest.fixture
def ssh_keypair(tmp_path: Path) -> KeyPair:
    return make_keypair(tmp_path / "client-key")


@pytest.fixture
def sshd_factory(tmp_path: Path) -> Iterator[Callable[..., SSHServer]]:
    """``make(env=None, port=None, start=True)`` -> an :class:`SSHServer`; all stopped at teardown."""
    servers: list[SSHServer] = []

    def make(*, env: Mapping[str, str] | None = None, port: int | None = None, start: bool = True) -> SSHServer:
        server = SSHServer(tmp_path / f"sshd{len(servers)}", port=port, env=env)
        servers.append(server)
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def sshd_server(sshd_factory: Callable[..., SSHServer], ssh_keypair: KeyPair) -> SSHServer:
    """A started sshd whose ``SetEnv`` is :func:`node_env`, with ``ssh_keypair`` authorized."""
    server = sshd_factory(env=node_env())
    server.authorize(ssh_keypair.public_text)
    return server
