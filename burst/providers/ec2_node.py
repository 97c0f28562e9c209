"""What the worker on an EC2 machine asks of EC2 itself: to end its machine. boto3 only."""

from __future__ import annotations

import boto3

from burst.node_config import NodeConfig
from burst.retry import aws_config


def terminate_self(config: NodeConfig) -> None:
    """The node agent ends its own machine through the instance profile's permission.

    No instance metadata lookup (the dispatcher wrote ``instance_id`` into
    node.json) and no OS shutdown: the TerminateInstances call is all.
    """
    session = boto3.session.Session(region_name=config.provider_options.get("region") or None)
    client = session.client("ec2", config=aws_config(max_attempts=3, user_agent_extra="burst-worker"))
    try:
        client.terminate_instances(InstanceIds=[config.instance_id])
    finally:
        client.close()
