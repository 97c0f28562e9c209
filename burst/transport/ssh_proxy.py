"""How an SSH connection is carried when the config says so: ProxyCommand or ProxyJump (bastions).

* ``ProxyCommand``: paramiko runs the command; its stdin and stdout are the connection.
* ``ProxyJump``: an SSH connection to the jump host (itself an ``SSHTransport``, with
  its own host key in the campaign's known_hosts and its own hops), and through it a
  ``direct-tcpip`` channel to the machine, which the machine's SSH session runs over.
"""

from __future__ import annotations

from typing import Any, Callable

import paramiko

from burst.transport.ssh_target import SSHTarget


class ProxyRoute:
    """The socket-like object for one connection attempt to ``target``, and what it holds open."""

    def __init__(self, target: SSHTarget, open_hop: Callable[[SSHTarget, float], Any]):
        """``open_hop(jump target, timeout)``: a connected ``SSHTransport`` to the jump host."""
        self.target = target
        self.open_hop = open_hop
        self.hop: Any = None

    def sock(self, timeout: float):
        """None (a direct TCP connection), a ``ProxyCommand``, or a channel through the jump host."""
        target = self.target
        if target.jump is not None:
            if self.hop is None:
                self.hop = self.open_hop(target.jump, timeout)
            transport = self.hop._active_client().get_transport()
            assert transport is not None
            return transport.open_channel("direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0),
                                          timeout=min(timeout, 15.0))
        if target.proxy_command:
            return paramiko.ProxyCommand(target.proxy_command)
        return None

    def close(self) -> None:
        if self.hop is not None:
            self.hop.close()
            self.hop = None
