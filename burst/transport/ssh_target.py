"""Where an SSH connection goes: ``SSHTarget`` and ``resolve_target``.

``resolve_target`` turns an instance's names (public IP, DNS name, id) into a
host, port, user and key files, honouring an OpenSSH client config file
(``Host`` patterns matched as OpenSSH does) when one is given.

``SSHError``, the base of every SSH error, lives here because this is the
lowest SSH module; ``burst.transport.ssh`` re-exports it.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

import paramiko

from burst.errors import BurstError


class SSHError(BurstError):
    """Connecting to a node failed (unreachable, authentication, host key)."""


@dataclass(frozen=True)
class SSHTarget:
    hostname: str
    port: int
    user: str
    key_files: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def resolve_target(names: list[str], *, user: str, key_file: str | None, ssh_config: str | None) -> SSHTarget:
    """Where and how to reach an instance known by ``names`` (public IP, DNS name, id).

    Without ``ssh_config``: the first non-empty name, port 22, ``user`` and
    ``key_file``. With an OpenSSH client config file, the first name that a
    ``Host`` pattern other than a bare ``*`` matches is looked up (otherwise the
    first name, so ``Host *`` still applies) and its ``HostName``, ``Port``,
    ``User`` and ``IdentityFile`` win over those defaults.
    """
    candidates = [str(name) for name in names if name]
    if not candidates:
        raise SSHError("the instance has no public IP address or DNS name to connect to")
    default_keys = [os.path.expanduser(key_file)] if key_file else []
    if not ssh_config:
        return SSHTarget(candidates[0], 22, user, default_keys)

    config_path = os.path.expanduser(ssh_config)
    try:
        config = paramiko.SSHConfig.from_path(config_path)
    except FileNotFoundError:
        raise SSHError(f"the ssh config file {config_path} does not exist") from None
    except Exception as exc:  # paramiko raises ConfigParseError and others
        raise SSHError(f"cannot read the ssh config file {config_path}: {exc}") from exc

    patterns = [pattern for pattern in config.get_hostnames() if pattern != "*"]
    chosen = next((name for name in candidates if _matches_any(name, patterns)), candidates[0])
    options = config.lookup(chosen)
    hostname = options.get("hostname") or chosen
    port = options.get("port")
    try:
        port = int(port) if port else 22
    except ValueError:
        raise SSHError(f"{config_path}: Port {port!r} for {chosen} is not a number") from None
    identity = [os.path.expanduser(path) for path in options.get("identityfile", [])]
    return SSHTarget(hostname, port, options.get("user") or user, identity or default_keys)


def ssh_argv(target: SSHTarget, *, known_hosts: str, ssh_config: str | None, remote: str | None,
             host_key_alias: str | None = None) -> list[str]:
    """The system ``ssh`` command for a person at a terminal: the job's key and known hosts, the user's config.

    Host keys recorded by burst are trusted; an unknown one is added and a changed one refused
    (``accept-new``). ``remote`` runs instead of a login shell; a terminal is asked for either way.
    """
    argv = ["ssh", "-t", "-p", str(target.port), "-l", target.user,
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
            "-o", "IdentitiesOnly=yes"]
    for key in target.key_files:
        argv += ["-i", key]
    if host_key_alias:
        argv += ["-o", f"HostKeyAlias={host_key_alias}"]
    if ssh_config:
        argv += ["-F", os.path.expanduser(ssh_config)]
    return argv + [target.hostname] + ([remote] if remote else [])


def _matches_any(name: str, patterns: list[str]) -> bool:
    """OpenSSH's Host matching: any positive pattern matches and no negated one does."""
    positive = [p for p in patterns if not p.startswith("!")]
    negated = [p[1:] for p in patterns if p.startswith("!")]
    return any(fnmatch.fnmatchcase(name, p) for p in positive) and not any(
        fnmatch.fnmatchcase(name, p) for p in negated
    )
