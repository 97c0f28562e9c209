"""The Transport seam: run commands on a node and move files to and from it.

SSH (paramiko) and local (subprocess) share it, as Fabric's ``Connection``
shares Invoke's ``Context``. Remote paths that are not absolute are relative to
the node user's home directory (SFTP's and a login shell's starting folder).
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from burst.protocol import TAIL_LINES, tail  # noqa: F401  (the transports' results show tails)


@dataclass(frozen=True)
class Result:
    exit: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.exit == 0


class CommandFailed(RuntimeError):
    """A command exited non-zero; the message quotes it and the tail of its output."""

    def __init__(self, where: str, cmd: str, result: Result):
        self.where, self.cmd, self.result = where, cmd, result
        output = tail(result.err) or tail(result.out) or "(no output)"
        super().__init__(f"on {where}: `{cmd}` exited with status {result.exit}:\n{output}")


class Transport(ABC):
    """One node. ``where`` names it in messages (tag and host)."""

    where: str = "node"

    @abstractmethod
    def _execute(self, cmd: str, timeout: float | None) -> Result:
        """Run ``cmd`` with bash in the home directory and wait for it."""

    @abstractmethod
    def put(self, local_path: Path, remote_path: str) -> None:
        """Copy one file, creating the remote parent folders; keeps the mode bits."""

    @abstractmethod
    def get(self, remote_path: str, local_path: Path) -> None: ...

    def close(self) -> None:
        """Release the connection; the node keeps running."""

    def run(self, cmd: str, timeout: float | None = 60, check: bool = True) -> Result:
        result = self._execute(cmd, timeout)
        if check and not result.ok:
            raise CommandFailed(self.where, cmd, result)
        return result

    def put_dir(self, local_dir: Path, remote_dir: str) -> None:
        """Copy a folder tree (files and empty folders), skipping caches and VCS data."""
        local_dir = Path(local_dir)
        self.run(f"mkdir -p {shlex.quote(remote_dir)}")
        for path in sorted(local_dir.rglob("*")):
            relative = path.relative_to(local_dir)
            if any(part in SKIPPED_NAMES for part in relative.parts):
                continue
            target = f"{remote_dir}/{relative.as_posix()}"
            if path.is_dir():
                self.run(f"mkdir -p {shlex.quote(target)}")
            elif path.is_file():
                self.put(path, target)

    def start_detached(self, script: str, folder: str, log: str) -> None:
        """Start ``bash script`` in ``folder`` so that it outlives this connection.

        Output goes to ``log`` (in ``folder``); the process gets a session of its
        own, so closing the connection or the dispatcher exiting does not stop it.
        """
        # Not `cd X && cmd &`: that backgrounds a subshell which keeps this
        # session's output open until the script ends.
        self.run(
            f"cd {shlex.quote(folder)} || exit 1; "
            f"nohup setsid bash {shlex.quote(script)} > {shlex.quote(log)} 2>&1 < /dev/null &",
            timeout=30,
        )


SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".hg", ".svn", ".pytest_cache", ".DS_Store"})
