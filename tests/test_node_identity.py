"""The folder a machine's worker writes its own files under: what STS says it is, else what the dispatcher knew.

The node policy lets a machine write ``state/machines/${aws:userid}/worker.json`` and its logs only:
a worker that named its folder otherwise would have its record and logs refused (tests/test_permissions.py).
"""

from __future__ import annotations

import socket

from burst.node.config import NodeConfig
from burst.node.identity import machine_folder
from tests.motoserver import admin, moto_server  # noqa: F401  (fixture)
from tests.node_identity import machine_key


def config(instance_id: str, **options) -> NodeConfig:
    return NodeConfig(provider="ec2", job="who", instance_id=instance_id, instance_type="t3.micro",
                      bucket_url="s3://who", results=[], provider_options={"region": "us-east-1", **options})


def test_a_worker_names_its_folder_as_sts_answers_for_its_instance_profile(moto_server, monkeypatch):  # noqa: F811
    key = machine_key("who", None, "i-0abc")
    for name, value in key.env().items():
        monkeypatch.setenv(name, value)
    said: list[str] = []
    folder = machine_folder(config("i-0abc", node_role_id="AROAOLDROLE"), said.append)
    assert folder.endswith(":i-0abc") and not folder.startswith("AROAOLDROLE"), "STS's answer, not the dispatcher's guess"
    assert folder == admin().session().client("iam").get_role(RoleName=key.user)["Role"]["RoleId"] + ":i-0abc"
    assert said == []
    # credentials that are not this machine's (another instance's session): its bare id, and it says why
    assert machine_folder(config("i-0def"), said.append) == "i-0def"
    assert "not this machine's instance profile" in said[-1]


def test_a_worker_that_cannot_reach_sts_names_its_folder_by_the_role_the_dispatcher_knew(monkeypatch):
    with socket.socket() as probe:  # a loopback port nothing listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "node")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "node")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    said: list[str] = []
    assert machine_folder(config("i-0abc", node_role_id="AROAEXAMPLE"), said.append) == "AROAEXAMPLE:i-0abc"
    assert "could not ask STS" in said[0] and "AROAEXAMPLE:i-0abc" in said[0]
    said.clear()
    assert machine_folder(config("i-0abc"), said.append) == "i-0abc", "no role known (an older dispatcher): the bare id"
