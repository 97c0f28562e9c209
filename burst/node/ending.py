"""The worker ends its own machine: TerminateInstances on EC2, its processes in a local sandbox.

No instance metadata lookup (the dispatcher wrote ``instance_id`` into node.json)
and no OS shutdown: the TerminateInstances call, through the instance profile's
permission, is all. (An OS-level shutdown exists only in EC2 user-data, as the
watchdog of a machine whose worker never got to end it.)
"""

from __future__ import annotations

from pathlib import Path

from burst.node.config import NodeConfig
from burst.node.worker_basics import WORKER_AGENT
from burst.retry import aws_config


def terminate_self(config: NodeConfig) -> None:
    if config.provider == "local":
        from burst.node.sandbox import end_sandbox

        end_sandbox(Path(config.provider_options["burst_home"]), [config.instance_id])
        return
    import boto3

    session = boto3.session.Session(region_name=config.provider_options.get("region") or None)
    client = session.client("ec2", config=aws_config(max_attempts=3, user_agent_extra=WORKER_AGENT))
    try:
        client.terminate_instances(InstanceIds=[config.instance_id])
    finally:
        client.close()
