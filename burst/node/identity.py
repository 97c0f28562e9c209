"""The folder a machine's worker writes its own files under in the bucket (see ``protocol.MACHINE_LOGS_PREFIX``).

On EC2 that is what IAM calls the caller ``aws:userid``: ``<role id>:<instance id>`` for
instance-profile credentials. The node role's policy lets a node write
``state/machines/${aws:userid}/...`` and ``machines/${aws:userid}/...`` only, so a
machine can write its own worker record and logs but no other machine's (IAM's policy
variables hold no bare instance id). STS's GetCallerIdentity says what the caller is;
it needs no permission. When STS does not answer (a private subnet with an endpoint for
S3 and none for STS), the role id the dispatcher wrote into node.json stands in. Anything
else (a sandbox, credentials that are not this machine's) writes under the bare instance
id, as the first layouts did; readers take the instance id after the last colon either way.

Standard library (+ boto3 on EC2) only; runs on the machine's python3 (3.9 too).
"""

from __future__ import annotations

from typing import Callable

from burst.node.config import NodeConfig
from burst.node.worker_basics import WORKER_AGENT
from burst.retry import aws_config


def machine_folder(config: NodeConfig, log: Callable[[str], None]) -> str:
    """``<role id>:<instance id>`` when this machine's credentials say so, else the instance id."""
    if config.provider != "ec2":
        return config.instance_id
    try:
        import boto3

        session = boto3.session.Session(region_name=config.provider_options.get("region") or None)
        # seconds, not minutes: a machine that cannot reach STS loses only its own files' permission, not its rows
        client = session.client("sts", config=aws_config(max_attempts=3, connect_timeout=5, read_timeout=10,
                                                         user_agent_extra=WORKER_AGENT))
        try:
            user_id = str(client.get_caller_identity().get("UserId", ""))
        finally:
            client.close()
    except Exception as error:  # noqa: BLE001 - e.g. a private subnet with an S3 endpoint and none for STS
        role_id = str(config.provider_options.get("node_role_id") or "")
        folder = f"{role_id}:{config.instance_id}" if role_id else config.instance_id
        log(f"could not ask STS who this machine is ({type(error).__name__}: {error}); "
            f"its own files are written under {folder} (its instance profile's role id, as the dispatcher read it)")
        return folder
    if user_id.endswith(":" + config.instance_id):
        return user_id
    log(f"these credentials are not this machine's instance profile (STS says {user_id or 'nothing'}); "
        f"its own files are written under {config.instance_id}")
    return config.instance_id
