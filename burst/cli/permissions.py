"""``burst permissions``: print the dispatcher's least-privilege IAM policy (JSON on stdout, nothing else).

Ready for ``aws iam put-user-policy --user-name NAME --policy-name burst
--policy-document "$(burst permissions)"``; docs/aws.md shows the same text.
``--node JOB`` prints the policy of a job's nodes instead (what the role of an
``--instance-profile`` of one's own needs).
"""

from __future__ import annotations

import sys

from burst.providers.aws_iam import node_policy
from burst.providers.aws_names import bucket_name
from burst.providers.aws_policy import dispatcher_policy, policy_text


def print_permissions(node_job: str | None = None, bucket: str | None = None) -> int:
    """The dispatcher's policy; with ``node_job``, the policy of that job's nodes (for ``--instance-profile``)."""
    if node_job is None:
        sys.stdout.write(policy_text(dispatcher_policy()))
    else:
        sys.stdout.write(policy_text(node_policy(node_job, bucket_name(node_job, bucket))))
    return 0
