"""Transport to a local sandbox: bash in the sandbox's home, files copied with shutil."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from burst.protocol import INSTANCE_MARKER
from burst.transport.base import Result, Transport

# All a sandbox gets of the dispatcher's environment, as an EC2 machine gets none of it:
# never AWS_* or any other credential. The burst variables come from node.env, with --env.
PASSED_THROUGH = ("PATH", "LANG", "TERM", "USER")


class LocalTransport(Transport):
    def __init__(self, home: Path, instance_id: str, where: str):
        self.home = Path(home)
        self.instance_id = instance_id
        self.where = where

    def environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        env.setdefault("PATH", os.defpath)
        env["HOME"] = str(self.home)
        env[INSTANCE_MARKER] = self.instance_id
        return env

    def _path(self, remote_path: str) -> Path:
        """Relative and ``~/`` paths are inside the sandbox's home, as over SFTP."""
        if remote_path.startswith("~/"):
            remote_path = remote_path[2:]
        path = Path(remote_path)
        return path if path.is_absolute() else self.home / path

    def _execute(self, cmd: str, timeout: float | None) -> Result:
        completed = subprocess.run(
            ["bash", "-c", cmd],
            cwd=self.home,
            env=self.environment(),
            capture_output=True,
            stdin=subprocess.DEVNULL,  # as over SSH: no terminal; a dispatcher's own terminal must not reach a sandbox
            timeout=timeout,
            start_new_session=True,  # its own process group, like a separate machine
        )
        decode = lambda data: data.decode("utf-8", errors="replace")  # noqa: E731
        return Result(completed.returncode, decode(completed.stdout), decode(completed.stderr))

    def put(self, local_path: Path, remote_path: str) -> None:
        target = self._path(remote_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local_path, target)

    def get(self, remote_path: str, local_path: Path) -> None:
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self._path(remote_path), local_path)
