"""The nodes' IAM role and instance profile ``burst-<job>-node``: the job's bucket, and ending its own machines."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from burst import protocol
from burst.errors import UserError
from burst.providers.aws_names import _code, node_role_name


def trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def node_policy(job: str, bucket: str, partition: str = "aws") -> dict[str, Any]:
    """What a node may do (its role's only policy; the same for a row's command, which runs with it).

    * list the job's bucket and read its keys;
    * write what a worker writes, and nothing else: the rows' claims and ``released``
      markers (``state/claims/...``), their statuses (``state/ended/...``), the rows' attempts (logs, results,
      earlier statuses: ``<tag>/attempts/...``, every tag being ``<job><n>``), and its own
      machine's files: ``state/machines/${aws:userid}/worker.json`` and
      ``machines/${aws:userid}/{worker,install}.log``, ``aws:userid`` being
      ``<role id>:<instance id>`` for instance-profile credentials (burst.node.identity).
      No other machine's files, not ``campaign.json``, nor the dispatcher's machine records
      (``state/machines/<id>.json``: launched, ready, ended);
    * delete ``state/claims/<tag>.released`` markers only (a worker that claims a released row
      forgets its marker; the reconcile, not a node, deletes the claims of ended rows);
    * terminate machines tagged with its job.
    """
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ListJobBucket", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arn},
            {"Sid": "ReadJobObjects", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket_arn}/*"},
            {
                "Sid": "WriteWhatAWorkerWrites",
                "Effect": "Allow",
                "Action": ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"],
                "Resource": [  # the keys of burst.protocol: any row's ("*"), this machine's own files
                    f"{bucket_arn}/{protocol.CLAIMS_PREFIX}*",
                    f"{bucket_arn}/{protocol.ENDED_PREFIX}*",
                    f"{bucket_arn}/{job}*/attempts/*",  # protocol.attempt_prefix of every row (each tag is <job><n>)
                    f"{bucket_arn}/{protocol.worker_key(protocol.NODE_FOLDER_VARIABLE)}",
                    f"{bucket_arn}/{protocol.worker_log_key(protocol.NODE_FOLDER_VARIABLE)}",
                    f"{bucket_arn}/{protocol.install_log_key(protocol.NODE_FOLDER_VARIABLE)}",
                ],
            },
            {"Sid": "ForgetReleasedMarkers", "Effect": "Allow", "Action": ["s3:DeleteObject"],
             "Resource": f"{bucket_arn}/{protocol.released_key('*')}"},
            {
                "Sid": "TerminateJobMachines",
                "Effect": "Allow",
                "Action": "ec2:TerminateInstances",
                "Resource": "*",
                "Condition": {"StringEquals": {"ec2:ResourceTag/job": job}},
            },
        ],
    }


NODE_POLICY_NAME = "burst-node"


def ensure_instance_profile(iam, job: str, bucket: str, partition: str,
                            tags: list[dict[str, str]]) -> tuple[str, str, bool, str]:
    """Role and instance profile ``burst-<job>-node``; returns (name, profile ARN, created now, the role's id)."""
    name = node_role_name(job)
    created = False
    try:
        role_id = iam.get_role(RoleName=name)["Role"]["RoleId"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        try:
            role_id = iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=json.dumps(trust_policy()),
                Description=f"burst job {job}: nodes save to their bucket and end their machines",
                Tags=tags,
            )["Role"]["RoleId"]
            created = True
        except ClientError as create_error:
            if _code(create_error) != "EntityAlreadyExists":
                raise
            role_id = iam.get_role(RoleName=name)["Role"]["RoleId"]
    # Always (re)write the inline policy: it follows the current bucket.
    iam.put_role_policy(RoleName=name, PolicyName=NODE_POLICY_NAME, PolicyDocument=json.dumps(node_policy(job, bucket, partition)))
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        try:
            profile = iam.create_instance_profile(InstanceProfileName=name, Tags=tags)["InstanceProfile"]
            created = True
        except ClientError as create_error:
            if _code(create_error) != "EntityAlreadyExists":
                raise
            profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    if name not in [role["RoleName"] for role in profile.get("Roles", [])]:
        try:
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
            created = True
        except ClientError as error:
            if _code(error) != "LimitExceeded":  # the profile already has a role: ours
                raise
    return name, profile["Arn"], created, role_id



def existing_profile(iam, name: str) -> tuple[str, str]:
    """``--instance-profile NAME``: the ARN of a profile the account has (burst creates no role then), and its role's id."""
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        raise UserError(
            f"--instance-profile {name}: the account has no instance profile of that name. Give an existing "
            f"one (`aws iam list-instance-profiles`), or leave the option out and burst makes burst-JOB-node."
        ) from None
    if not profile.get("Roles"):
        raise UserError(f"--instance-profile {name} has no role, so its machines would have no credentials: "
                        f"add one (`aws iam add-role-to-instance-profile`), with the policy `burst permissions --node JOB` prints.")
    return profile["Arn"], profile["Roles"][0].get("RoleId", "")
