"""Stock machines for tests: a Debian 12 userland from ``debootstrap``, each machine with its own sshd in a chroot.

What a user launches is a stock AMI: Debian's python3 (3.11) and python3-boto3
(1.26, whose botocore knows no conditional writes), or Amazon Linux 2023's bare
python3 3.9. The tests stand in for those with real userlands:

* ``debian_userland()`` builds, once, ``debootstrap --variant=minbase
  --include=python3,python3-boto3,openssh-server,sudo bookworm`` from the Debian
  mirror this machine's apt uses, with an ``admin`` user (Debian's AMIs log in
  as ``admin``) that may ``sudo`` without a password. It is cached outside the
  checkout (``/var/tmp/burst-test-userlands``, or ``$BURST_TEST_USERLANDS``),
  built in a temporary folder and renamed when complete: a half build is never
  used. debootstrap runs in a private mount namespace, so the /proc it mounts
  vanishes with it.
* ``python39_layer()`` is a second layer, also built once: pyenv's CPython 3.9
  (found through ``pyenv root``) as ``/opt/python3.9``, and ``/usr/bin/python3``
  pointing at it. No boto3: a bare interpreter, as on Amazon Linux 2023.
* ``StockMachine`` starts the userland's own sshd (Debian's OpenSSH) on a
  loopback port: ``unshare --mount --propagation private`` makes a mount
  namespace of its own, in which an overlay (the cached layers read-only, the
  test's own folder on top: every test gets a fresh machine, and the cache is
  never written) is mounted with /proc and /dev, and ``chroot`` starts sshd in
  it. Those mounts exist only in that namespace and vanish with its last
  process; no host file system is ever mounted below a folder of the test.
  ``stop()`` ends, by pid, the processes whose root is this machine (sshd, and
  everything the sessions started), nothing else.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Mapping

import pytest

from tests.sshd import _setenv_arg, free_port, generate_key

SUITE = "bookworm"
PACKAGES = ("python3", "python3-boto3", "openssh-server", "sudo")
LOGIN_USER = "admin"  # as on Debian's own AMIs
USERLAND_FORMAT = "1"  # bump when the build below changes: a new folder, a new build
BUILD_TIMEOUT = 1200


def userlands_root() -> Path:
    return Path(os.environ.get("BURST_TEST_USERLANDS") or "/var/tmp/burst-test-userlands")


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        pytest.fail(f"`{name}` was not found: the stock-machine tests need debootstrap, unshare and chroot "
                    f"(bash scripts/test.sh installs Debian's debootstrap).", pytrace=False)
    return found


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses for bookworm (not the security archive)."""
    sources = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for source in sources:
        try:
            text = source.read_text(errors="replace")
        except OSError:
            continue
        for uri in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, flags=re.MULTILINE):
            if re.search(r"/debian/?$", uri) and "security" not in uri:
                return uri.rstrip("/")
    pytest.fail("no Debian mirror found in /etc/apt/sources.list*: the stock-machine tests build a Debian 12 "
                "userland with debootstrap from the mirror apt uses", pytrace=False)


def mounts_below(folder: Path) -> list[str]:
    """Mount points at or below ``folder`` in this mount namespace (there should never be any)."""
    prefix = str(folder.resolve()).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if (point + "/").startswith(prefix):
            found.append(point)
    return found


def remove_tree(folder: Path) -> None:
    """Delete ``folder``, unless anything is mounted below it (then it stays, and the test says so)."""
    mounted = mounts_below(folder)
    if mounted:
        raise AssertionError(f"not deleting {folder}: {', '.join(mounted)} is mounted below it")
    shutil.rmtree(folder, ignore_errors=True)


def _build_once(name: str, build) -> Path:
    """``<userlands>/<name>``, made by ``build(folder)`` into a temporary folder renamed when complete.

    A lock file keeps two test processes from building the same thing at once.
    """
    root = userlands_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.is_dir():
        return final
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return final
        building = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=root))
        building.chmod(0o755)  # it becomes a machine's "/" (mkdtemp made it 0700)
        try:
            build(building)
            building.rename(final)
        finally:
            if building.exists():
                remove_tree(building)
    return final


def _in_private_namespace(script: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``script`` (bash) in a mount namespace of its own: whatever it mounts vanishes when it ends."""
    return subprocess.run([_tool("unshare"), "--mount", "--propagation", "private", "bash", "-euc", script],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def debian_userland() -> Path:
    """The stock Debian 12 userland (built once, then reused), with its ``admin`` user."""
    key = hashlib.sha256(f"{SUITE};{','.join(PACKAGES)};{USERLAND_FORMAT}".encode()).hexdigest()[:10]

    def build(folder: Path) -> None:
        mirror = debian_mirror()
        debootstrap = _tool("debootstrap")
        done = _in_private_namespace(
            f"{debootstrap} --variant=minbase --include={','.join(PACKAGES)} {SUITE} {folder} {mirror}\n"
            # Debian's AMIs: a login user with password-less sudo; no host keys of the build (each machine makes its own)
            f"chroot {folder} useradd --create-home --shell /bin/bash {LOGIN_USER}\n"
            f"chroot {folder} usermod --password '*' {LOGIN_USER}\n"  # no password, yet not locked (sshd refuses locked)
            f"echo '{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL' > {folder}/etc/sudoers.d/90-{LOGIN_USER}\n"
            f"chmod 0440 {folder}/etc/sudoers.d/90-{LOGIN_USER}\n"
            f"rm -f {folder}/etc/ssh/ssh_host_*\n"
            f"rm -rf {folder}/var/cache/apt/archives/*.deb {folder}/var/lib/apt/lists/*\n",
            timeout=BUILD_TIMEOUT)
        if done.returncode != 0:
            raise AssertionError(f"debootstrap of Debian {SUITE} from {mirror} failed (exit {done.returncode}):\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    return _build_once(f"debian-{SUITE}-{key}", build)


def python39() -> Path:
    """pyenv's CPython 3.9 (``$(pyenv root)/versions/3.9.*``), the newest patch release; fails when there is none."""
    login_home = Path(pwd.getpwuid(os.getuid()).pw_dir)  # $HOME is the test's own
    places = [Path(os.environ["PYENV_ROOT"]) / "bin" / "pyenv"] if os.environ.get("PYENV_ROOT") else []
    places.append(login_home / ".pyenv" / "bin" / "pyenv")
    pyenv = shutil.which("pyenv") or next((str(place) for place in places if place.is_file()), None)
    why = ("no CPython 3.9 was found: the tests look for `pyenv root`/versions/3.9.*/bin/python3 (the node "
           "package must run on Python 3.9, the python3 of Amazon Linux 2023); install one with `pyenv install 3.9`")
    if pyenv is None:
        pytest.fail(why + " (pyenv itself is not on PATH)", pytrace=False)
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip()
    found = sorted(Path(root).glob("versions/3.9.*/bin/python3"),
                   key=lambda p: [int(n) for n in p.parent.parent.name.split(".")[:3] if n.isdigit()])
    if not root or not found:
        pytest.fail(why + f" (pyenv root is {root or 'unknown'!r}; it holds no 3.9)", pytrace=False)
    return found[-1]


def python39_layer() -> Path:
    """A layer over the userland whose python3 is a bare CPython 3.9 (pyenv's copy, no boto3)."""
    interpreter = python39()
    prefix = interpreter.parent.parent
    version = prefix.name

    def build(folder: Path) -> None:
        skipped = shutil.ignore_patterns("test", "tests", "__pycache__", "idlelib", "tkinter", "turtledemo",
                                         "site-packages", "*.a", "pkgconfig")
        shutil.copytree(prefix, folder / "opt" / "python3.9", symlinks=True, ignore=skipped)
        (folder / "opt" / "python3.9" / "lib" / "python3.9" / "site-packages").mkdir()
        # pyenv links python3.9 against its libpython by an absolute RUNPATH under pyenv's root; in the
        # userland the library sits in the system's own library folder, where the loader looks next
        libraries = folder / "usr" / "lib" / "x86_64-linux-gnu"
        libraries.mkdir(parents=True)
        for library in (prefix / "lib").glob("libpython3.9*.so*"):
            shutil.copy2(library, libraries / library.name, follow_symlinks=True)
        (folder / "usr" / "bin").mkdir(parents=True)
        (folder / "usr" / "bin" / "python3").symlink_to("/opt/python3.9/bin/python3.9")

    return _build_once(f"python-{version}-layer", build)


class StockMachine:
    """One stock machine: an overlay of ``layers`` with the test's own folder on top, and its own sshd."""

    def __init__(self, folder: Path, layers: list[Path], env: Mapping[str, str] | None = None, user: str = LOGIN_USER):
        self.folder = Path(folder)
        self.layers = list(layers)  # top first
        self.root = self.folder / "root"  # the machine's / (mounted only inside its namespace)
        self.upper = self.folder / "upper"
        self.user = user
        self.env = dict(env or {})
        self.port = free_port()
        self.host = "127.0.0.1"
        self.home = Path("/home") / user  # inside the machine
        self.process: subprocess.Popen | None = None
        self.log_path = self.folder / "sshd.log"
        for made in (self.root, self.upper, self.folder / "work"):
            made.mkdir(parents=True, exist_ok=True)
        self._prepare()

    def _prepare(self) -> None:
        """The machine's own files, in the top layer: host keys, sshd's config, the login's .ssh folder."""
        ssh = self.upper / "etc" / "ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        generate_key(ssh / "ssh_host_ed25519_key", "ed25519", "burst-stock-host")
        lines = [
            f"Port {self.port}", "ListenAddress 127.0.0.1", "HostKey /etc/ssh/ssh_host_ed25519_key",
            "AuthorizedKeysFile .ssh/authorized_keys", "PidFile none", "UsePAM no", "PermitRootLogin no",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "X11Forwarding no", "PrintMotd no", "UseDNS no", "MaxStartups 100", "MaxSessions 100",
            "LogLevel VERBOSE", "Subsystem sftp internal-sftp",
        ]
        if self.env:
            lines.append("SetEnv " + " ".join(_setenv_arg(name, value) for name, value in self.env.items()))
        (ssh / "sshd_config_burst").write_text("\n".join(lines) + "\n")
        # the host's name (a chroot shares it), so that sudo can resolve it, as cloud-init's /etc/hosts does
        (self.upper / "etc" / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {socket.gethostname()}\n")
        self.authorized_keys_path.parent.mkdir(parents=True, exist_ok=True)
        self.authorized_keys_path.touch()

    @property
    def authorized_keys_path(self) -> Path:
        return self.upper / "home" / self.user / ".ssh" / "authorized_keys"

    def path(self, inside: str | Path) -> Path:
        """Where a file the machine wrote at ``inside`` is, seen from here (its top layer)."""
        return self.upper / str(inside).lstrip("/")

    def authorize(self, public_key_text: str) -> None:
        with self.authorized_keys_path.open("a") as handle:
            handle.write(public_key_text.strip() + "\n")

    def start(self) -> "StockMachine":
        lower = ":".join(str(layer) for layer in self.layers)
        user_id = f"$(chroot {self.root} id -u {self.user}):$(chroot {self.root} id -g {self.user})"
        script = (
            f"mount -t overlay overlay -o lowerdir={lower},upperdir={self.upper},workdir={self.folder / 'work'} {self.root}\n"
            f"mount -t proc proc {self.root}/proc\n"
            f"mount --rbind /dev {self.root}/dev\n"
            f"mkdir -p {self.root}/run/sshd && chmod 0755 {self.root}/run/sshd\n"
            f"chown -R {user_id} {self.root}/home/{self.user}\n"  # the top layer made its folders as root

            f"exec chroot {self.root} /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config_burst\n"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([_tool("unshare"), "--mount", "--propagation", "private", "bash", "-euc", script],
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stock machine's sshd exited with status {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stock machine's sshd is not listening after {timeout} s:\n{self.log()}")
                time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return "(no sshd log)"

    def pids(self) -> list[int]:
        """Processes whose root directory is this machine's: its sshd and all that its sessions started."""
        wanted = str(self.root)
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "root") == wanted:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def kill(self, predicate=None) -> int:
        """SIGKILL, by pid, this machine's processes (those whose environment passes ``predicate``); how many."""
        killed = 0
        for pid in self.pids():
            if predicate is not None:
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if not predicate(environ):
                    continue
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed

    def stop(self) -> None:
        """End every process of this machine, by pid; its namespace, and with it its mounts, then vanish."""
        deadline = time.monotonic() + 30
        while True:
            self.kill()
            if self.process is not None and self.process.poll() is None:
                try:
                    self.process.kill()
                except ProcessLookupError:
                    pass
            if not self.pids() and (self.process is None or self.process.poll() is not None):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of the stock machine in {self.root} would not end: {self.pids()}")
            time.sleep(0.1)
        if self.process is not None:
            self.process.wait(timeout=10)
