"""How an EC2 machine is reached: who logs in (the AMI's user, or --user), its SSH target, a shell, a transport.

A mixin of ``EC2Provider`` (it uses its ``ec2`` client, ``image``, ``region``,
``options``, ``key_file`` and ``known_hosts``).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from burst.providers import ec2_checks
from burst.providers.ami_user import LoginUser, login_user, refused_verdict
from burst.providers.base import ShellCommand
from burst.records import InstanceInfo

if TYPE_CHECKING:
    from burst.transport.base import Transport


class EC2Access:
    _image: dict[str, Any] | None = None  # DescribeImages' answer, once asked

    def _image_login(self) -> LoginUser:
        """Who logs in to machines of this AMI by default (one DescribeImages, remembered)."""
        if self._image is None:
            self._image = ec2_checks.describe_image(self.ec2, self.image, self.region)
        return login_user(self._image)

    def login_user(self) -> str:
        return self.options.user or self._image_login().user

    def login_note(self) -> str:
        if self.options.user:
            return ""
        login = self._image_login()
        return login.note or f"logging in as {login.user}, the user of this AMI ({login.distribution}); --user changes it"

    def login_refused(self, instance: InstanceInfo, error: Exception) -> str:
        try:
            expected: LoginUser | None = self._image_login()
        except Exception:  # the verdict stands without the AMI's name
            expected = None
        user = self._target(instance).user
        return refused_verdict(instance.id, user, self.image, expected, given=user != (expected.user if expected else None))

    def _target(self, instance: InstanceInfo):
        from burst.providers.ec2_network import unreachable
        from burst.transport.ssh_target import SSHError, resolve_target, routed_by_config

        details = instance.details or {}
        names = [details.get("public_ip"), details.get("public_dns"), details.get("private_ip"), instance.id]
        routed = routed_by_config([details.get("private_ip"), instance.id], self.options.ssh_config)
        reason = unreachable(instance, self.options.public_ip, routed)
        if reason:  # no retry can give it an address: the machine fails at once, saying why
            raise SSHError(reason)
        if instance.host and instance.host not in names:
            names.insert(0, instance.host)
        return resolve_target([name for name in names if name], user=self.login_user(),
                              key_file=str(self.key_file), ssh_config=self.options.ssh_config)

    def shell_command(self, instance: InstanceInfo, workdir: str, command: str | None = None) -> ShellCommand:
        from burst.transport.ssh_target import ssh_argv

        remote = f"cd {shlex.quote(workdir)} && " + (command or 'exec "$SHELL" -l')
        return ShellCommand(ssh_argv(self._target(instance), known_hosts=str(self.known_hosts),
                                     ssh_config=self.options.ssh_config, remote=remote, host_key_alias=instance.id))

    def transport(self, instance: InstanceInfo, connect_timeout: float = 600.0) -> "Transport":
        from burst.transport.ssh import SSHTransport

        target = self._target(instance)
        return SSHTransport(target, known_hosts=self.known_hosts, where=f"machine {instance.id} ({instance.host})",
                            connect_timeout=connect_timeout, host_key_alias=instance.id)

