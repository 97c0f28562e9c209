"""``burst permissions`` and the policies the EC2 tests sign with (moto enforces IAM in them).

What a user would notice: the command prints JSON that ``aws iam put-user-policy``
takes, the docs show exactly that, and a node can do what a worker does (claim a
released row and forget its marker) but cannot change the campaign.
"""

from __future__ import annotations

import json
import re

import boto3
import pytest
from botocore.exceptions import ClientError

from burst import protocol
from burst.storage.s3 import S3Storage
from tests.conftest import REPO, run_script
from tests.motoserver import moto_server  # noqa: F401  (fixtures)
from tests.node_identity import machine_key


def docs_policy(section_title: str = "## The permissions burst needs") -> str:
    text = (REPO / "docs" / "aws.md").read_text(encoding="utf-8")
    section = text.split(section_title, 1)[1]
    found = re.search(r"```json\n(.*?)```", section, re.S)
    assert found, "docs/aws.md shows no policy"
    return found.group(1)


def test_permissions_prints_the_policy_the_docs_show():
    result = run_script("-m", "burst", "permissions")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    policy = json.loads(result.stdout)  # nothing but the JSON, ready for put-user-policy
    assert policy["Version"] == "2012-10-17"
    assert result.stdout == docs_policy()
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert {"ec2:RunInstances", "iam:PassRole", "s3:PutObject"} <= actions
    assert not any(action.endswith("*") for action in actions)  # named actions only


def test_permissions_node_prints_the_node_policy_the_docs_show():
    result = run_script("-m", "burst", "permissions", "--node", "demo")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout == docs_policy("## The nodes' role")
    writes = next(s for s in json.loads(result.stdout)["Statement"] if s["Sid"] == "WriteWhatAWorkerWrites")
    assert "arn:aws:s3:::demo/state/machines/${aws:userid}/worker.json" in writes["Resource"]  # its own machine's
    assert not any("machines/*" in resource or resource.endswith("/*/*") for resource in writes["Resource"])


def test_the_dispatcher_policy_is_enforced(moto_server):  # noqa: F811
    """The tests' environment (burst's own sessions) signs as the dispatcher: what its policy leaves out is refused."""
    dispatcher = boto3.session.Session()
    with pytest.raises(ClientError) as refused:
        dispatcher.client("iam").create_user(UserName="someone")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    dispatcher.client("s3").create_bucket(Bucket="policy-job")  # what it allows passes


def test_a_node_forgets_released_markers_but_cannot_change_the_campaign(moto_server):  # noqa: F811
    job = "policy-job"
    dispatcher = S3Storage(f"s3://{job}")
    boto3.client("s3").create_bucket(Bucket=job)
    dispatcher.write_text("campaign.json", '{"jobs": []}\n')
    dispatcher.write_text(protocol.released_key("policy-job0"), "attempt 1: lost its machine\n")

    session = machine_key(job, None, "i-1").session()  # what machine i-1's instance profile gives it
    s3 = session.client("s3")
    s3.put_object(Bucket=job, Key=protocol.claim_key("policy-job0"), Body=b"{}")  # rows' records: yes
    folder = session.client("sts").get_caller_identity()["UserId"]  # what its worker asks: <role id>:i-1
    assert folder.endswith(":i-1") and protocol.instance_of(folder) == "i-1"
    s3.put_object(Bucket=job, Key=protocol.worker_key(folder), Body=b"{}")  # its machine's files: yes
    s3.put_object(Bucket=job, Key=protocol.worker_log_key(folder), Body=b"log")
    s3.put_object(Bucket=job, Key=protocol.install_log_key(folder), Body=b"log")
    s3.put_object(Bucket=job, Key=protocol.attempt_status_key("policy-job0", 1), Body=b"{}")  # rows' attempts: yes
    s3.put_object(Bucket=job, Key=protocol.results_prefix("policy-job0", 1) + "out/r.csv", Body=b"1\n")
    dispatcher.write_text(protocol.machine_key("i-1"), '{"state": "ready"}\n')
    s3.delete_object(Bucket=job, Key=protocol.released_key("policy-job0"))  # the marker of a claimed row: yes
    assert protocol.released_key("policy-job0") not in dispatcher.list_keys()
    for attempt in (lambda: s3.put_object(Bucket=job, Key="campaign.json", Body=b'{"jobs": ["mine"]}'),
                    lambda: s3.delete_object(Bucket=job, Key="campaign.json"),
                    lambda: s3.delete_object(Bucket=job, Key=protocol.claim_key("policy-job0")),
                    # the dispatcher's record of a machine (what the reconcile decides of it): no
                    lambda: s3.put_object(Bucket=job, Key=protocol.machine_key("i-1"), Body=b'{"state": "ended"}'),
                    # another machine's files, under its bare id or its own role's name: no
                    lambda: s3.put_object(Bucket=job, Key=protocol.worker_key("i-2"), Body=b"{}"),
                    lambda: s3.put_object(Bucket=job, Key=protocol.worker_key(folder.replace(":i-1", ":i-2")), Body=b"{}"),
                    lambda: s3.put_object(Bucket=job, Key=protocol.worker_log_key("i-2"), Body=b"log"),
                    lambda: s3.put_object(Bucket=job, Key=protocol.install_log_key(folder + "0"), Body=b"log"),
                    lambda: s3.put_object(Bucket=job, Key="elsewhere/anything", Body=b"x"),  # outside the layout: no
                    lambda: s3.put_object(Bucket=job, Key="policy-job0/not-an-attempt", Body=b"x")):
        with pytest.raises(ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert dispatcher.read_text("campaign.json") == '{"jobs": []}\n'
    assert dispatcher.read_text(protocol.machine_key("i-1")) == '{"state": "ready"}\n'
    boto3.client("s3").create_bucket(Bucket="another-job")
    boto3.client("s3").put_object(Bucket="another-job", Key="campaign.json", Body=b"{}")
    with pytest.raises(ClientError) as refused:  # another job's bucket: no
        s3.get_object(Bucket="another-job", Key="campaign.json")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
