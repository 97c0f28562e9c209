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
    proxy_command: str | None = None  # ProxyCommand: its stdin/stdout is the connection
    jump: "SSHTarget | None" = None  # ProxyJump: a channel through this host's SSH connection

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def resolve_target(names: list[str], *, user: str, key_file: str | None, ssh_config: str | None) -> SSHTarget:
    """Where and how to reach an instance known by ``names`` (public IP, DNS name, id).

    Without ``ssh_config``: the first non-empty name, port 22, ``user`` and
    ``key_file``. With an OpenSSH client config file, the first name that a
    ``Host`` pattern other than a bare ``*`` matches is looked up (otherwise the
    first name, so ``Host *`` still applies) and its ``HostName``, ``Port``,
    ``User`` and ``IdentityFile`` win over those defaults; its ``ProxyJump`` (hops
    looked up in the same file) or ``ProxyCommand`` say how the connection is made.
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
    proxy_command = options.get("proxycommand")
    jump = None
    hops = [hop.strip() for hop in (options.get("proxyjump") or "").split(",") if hop.strip()]
    if proxy_command and proxy_command.lower() == "none":
        proxy_command = None
    if hops and hops[0].lower() != "none":
        jump = _jump_target(hops, user=user, key_file=key_file, ssh_config=ssh_config, depth=0)
        proxy_command = None  # OpenSSH: the first of the two that is given wins; ProxyJump is read first here
    return SSHTarget(hostname, port, options.get("user") or user, identity or default_keys,
                     proxy_command=proxy_command, jump=jump)


def _jump_target(hops: list[str], *, user: str, key_file: str | None, ssh_config: str, depth: int) -> SSHTarget:
    """The last of ``hops`` (``[user@]host[:port]``, as OpenSSH's ProxyJump), reached through the ones before it.

    Each hop is looked up in the same config (its HostName, Port, User, IdentityFile
    and its own ProxyJump).
    """
    if depth > 8:
        raise SSHError(f"ProxyJump in {ssh_config} loops (more than 8 hops)")
    spec = hops[-1]
    hop_user, _, host_port = spec.rpartition("@")
    host, port = host_port, None
    if host_port.startswith("["):  # [ipv6]:port
        host, _, rest = host_port[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif host_port.count(":") == 1:
        host, port = host_port.split(":")
    base = resolve_target([host], user=user, key_file=key_file, ssh_config=ssh_config)
    try:
        port_number = int(port) if port else base.port
    except ValueError:
        raise SSHError(f"{ssh_config}: ProxyJump {spec!r}: the port is not a number") from None
    through = _jump_target(hops[:-1], user=user, key_file=key_file, ssh_config=ssh_config, depth=depth + 1) \
        if len(hops) > 1 else base.jump
    return SSHTarget(base.hostname, port_number, hop_user or base.user, base.key_files,
                     proxy_command=None if through else base.proxy_command, jump=through)


def routed_by_config(names: list[str], ssh_config: str | None) -> bool:
    """Whether ``ssh_config`` says how to reach one of ``names`` (a HostName, ProxyJump or ProxyCommand for it)."""
    if not ssh_config:
        return False
    try:
        config = paramiko.SSHConfig.from_path(os.path.expanduser(ssh_config))
    except Exception:  # resolve_target says what is wrong with the file
        return False
    for name in (str(n) for n in names if n):
        options = config.lookup(name)
        if options.get("proxyjump") or options.get("proxycommand") or options.get("hostname", name) != name:
            return True
    return False


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
