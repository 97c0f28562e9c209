"""The least-privilege IAM policy of the person (or CI user) who runs burst on EC2: ``burst permissions``.

One definition, printed by ``burst permissions`` (ready for ``aws iam put-user-policy``),
shown in ``docs/aws.md`` and signed with in every EC2 test (moto enforces the actions of
each call; ``tests/test_permissions.py`` checks that the docs show exactly this policy).

What a dispatcher does, and so may do:

* read the account: its identity, images, instance types, VPCs and subnets, spot prices,
  EC2 quotas and on-demand prices;
* make, find and remove a job's key pair, security group, node role and instance profile
  (``burst-<job>`` and ``burst-<job>-node``); pass that role to EC2 only; let EC2 make
  its spot service-linked role at the first ``--spot`` request;
* start machines, tagged at launch; end machines tagged ``burst=1`` only;
* create, tag and read the job's bucket, and read, write and delete its keys.

Resources: EC2, STS, Service Quotas and Pricing name no resource ARN for most of
these calls, and the job's names are not known in advance, so those statements
say ``*`` and narrow with conditions where AWS offers them (tags that burst sets at
creation, the service a role is passed to). S3 statements name S3 ARNs (``arn:aws:s3:::*``:
a job's bucket may have any name).
"""

from __future__ import annotations

import json
from typing import Any

POLICY_VERSION = "2012-10-17"


def _statement(sid: str, actions: list[str], resource: str | list[str] = "*",
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def dispatcher_policy(partition: str = "aws") -> dict[str, Any]:
    """What ``burst run|status|terminate|cleanup|...`` may call on EC2, IAM, S3 and friends."""
    burst_tagged = {"StringEquals": {"aws:ResourceTag/burst": "1"}}
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            _statement("ReadTheAccount", [
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeKeyPairs",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSpotPriceHistory",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
                "pricing:GetProducts",
                "servicequotas:GetServiceQuota",
                "sts:GetCallerIdentity",
            ]),
            _statement("MakeKeyPairsAndFirewalls", [
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateKeyPair",
                "ec2:CreateSecurityGroup",
                "ec2:CreateTags",
                "ec2:DeleteKeyPair",
                "ec2:DeleteSecurityGroup",
                "ec2:RevokeSecurityGroupIngress",
            ]),
            _statement("StartMachines", ["ec2:RunInstances"]),
            _statement("EndOnlyBurstMachines", ["ec2:TerminateInstances"], condition=burst_tagged),
            _statement("MakeTheNodeRole", [
                "iam:AddRoleToInstanceProfile",
                "iam:CreateInstanceProfile",
                "iam:CreateRole",
                "iam:DeleteInstanceProfile",
                "iam:DeleteRole",
                "iam:DeleteRolePolicy",
                "iam:DetachRolePolicy",
                "iam:GetInstanceProfile",
                "iam:GetRole",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:PutRolePolicy",
                "iam:RemoveRoleFromInstanceProfile",
                "iam:TagInstanceProfile",
                "iam:TagRole",
            ]),
            _statement("PassTheNodeRoleToEC2Only", ["iam:PassRole"],
                       condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
            _statement("LetEC2MakeItsSpotRole", ["iam:CreateServiceLinkedRole"],
                       condition={"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}),
            _statement("MakeAndReadBuckets", [
                "s3:CreateBucket",
                "s3:GetBucketTagging",
                "s3:ListBucket",
                "s3:PutBucketPublicAccessBlock",
                "s3:PutBucketTagging",
            ], f"arn:{partition}:s3:::*"),
            _statement("ReadWriteBucketKeys", [
                "s3:AbortMultipartUpload",
                "s3:DeleteObject",
                "s3:GetObject",
                "s3:ListMultipartUploadParts",
                "s3:PutObject",
            ], f"arn:{partition}:s3:::*"),  # "*" spans the "/": every key (DeleteObjects is checked per key)
        ],
    }


def policy_text(policy: dict[str, Any]) -> str:
    """The JSON that ``burst permissions`` prints and ``docs/aws.md`` shows: two-space indent, a final newline."""
    return json.dumps(policy, indent=2) + "\n"
