"""Pick a provider from the AMI argument: ``local`` or an EC2 image id."""

from __future__ import annotations

from burst.node.config import NodeConfig
from burst.providers.base import LaunchSpec, Provider, ProviderOptions, burst_home

__all__ = ["LaunchSpec", "NodeConfig", "Provider", "ProviderOptions", "make_provider", "burst_home"]


def make_provider(image: str, job: str, options: ProviderOptions) -> Provider:
    if image == "local":
        from burst.providers.local import LocalProvider

        return LocalProvider(job, burst_home(), node_root=options.node_root)
    from burst.providers.ec2 import EC2Provider

    return EC2Provider(job, image, options, burst_home())
