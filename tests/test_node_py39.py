"""The node package runs on CPython 3.9 with nothing but the bundle: its burst and its own runtime.

Amazon Linux 2023 keeps /usr/bin/python3 at 3.9 for its whole life and has no
boto3 for it. Here a CPython 3.9 of pyenv (found through ``pyenv root``, never a
fixed path) runs with ``-I -S``: no site-packages at all, only the standard
library and the folders of the bundle a machine gets (``agent`` and
``agent/runtime``). It imports every module of the node package and the storage
seam, then claims, renews and releases a row in moto's S3 (over HTTP), with the
conditional writes (``IfNoneMatch``/``IfMatch``) that an old botocore lacks.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import boto3

from burst import protocol
from burst.control.bundle import build_bundle
from burst.control.runtime import PINS, ensure_runtime
from burst.providers.base import burst_home
from tests.motoserver import moto_server  # noqa: F401  (fixture)
from tests.stock import python39 as find_python39


def unpack_agent(folder: Path) -> Path:
    """The ``agent`` folder of a real EC2 bundle (node package and runtime), unpacked into ``folder``."""
    data = build_bundle(None, None, "python3", bootstrap=True, runtime=ensure_runtime(burst_home()))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(folder)
    return folder / "agent"


NODE_ROUND = r"""
import importlib, json, os, pkgutil, sys
agent = sys.argv[1]
sys.path[:0] = [os.path.join(agent, "runtime"), agent]
import burst.node, burst.storage
modules = sorted(m.name for package in (burst.node, burst.storage) for m in pkgutil.iter_modules(package.__path__, package.__name__ + "."))
for name in modules:
    importlib.import_module(name)
import boto3, botocore
from burst.node import claims
from burst.storage import open_storage
storage = open_storage(sys.argv[2])
first = claims.try_claim(storage, "row0", "i-py39", 0, None, "t3.micro", "echo hi")
second = claims.try_claim(storage, "row0", "i-other", 0, None, "t3.micro", "echo hi")
renewed = claims.renew(storage, first)
stale_renewal = "taken over"
try:
    claims.renew(storage, first)  # the etag before the renewal: somebody else's write, as far as S3 knows
    stale_renewal = "accepted"
except claims.PreconditionFailed:
    pass
released = claims.release(storage, renewed, "py39 says goodbye")
print(json.dumps({
    "python": list(sys.version_info[:2]), "site": [p for p in sys.path if "site-packages" in p],
    "modules": modules, "boto3": [boto3.__version__, boto3.__file__], "botocore": [botocore.__version__, botocore.__file__],
    "claimed": first is not None and first.claim.attempt, "second": second is not None,
    "stale_renewal": stale_renewal, "released": released,
}))
"""


def test_the_node_package_claims_renews_and_releases_on_python_3_9_with_only_the_bundle(tmp_path, moto_server):  # noqa: F811
    python39 = find_python39()  # fails (never skips) when pyenv has no 3.9
    agent = unpack_agent(tmp_path / "node")
    assert sorted(p.name for p in (agent / "burst").iterdir() if p.is_dir() and p.name != "__pycache__") == ["node", "storage"], \
        "the bundle ships the node and storage of burst, nothing of the dispatcher"
    boto3.client("s3").create_bucket(Bucket="py39-bucket")

    done = subprocess.run([str(python39), "-I", "-S", "-c", NODE_ROUND, str(agent), "s3://py39-bucket/job"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["python"] == [3, 9] and report["site"] == []
    assert "burst.node.worker" in report["modules"] and "burst.storage.s3" in report["modules"]
    assert report["botocore"][0] == PINS["botocore"] and report["botocore"][1].startswith(str(agent / "runtime"))
    assert report["boto3"][0] == PINS["boto3"] and report["boto3"][1].startswith(str(agent / "runtime"))
    assert report["claimed"] == 1 and report["second"] is False, "of two claims of a new row exactly one wins"
    assert report["stale_renewal"] == "taken over" and report["released"] is True

    claim = json.loads(boto3.client("s3").get_object(Bucket="py39-bucket", Key="job/" + protocol.claim_key("row0"))["Body"].read())
    assert (claim["machine"], claim["state"], claim["reason"]) == ("i-py39", "released", "py39 says goodbye")
