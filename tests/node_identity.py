"""Each test instance signs as its own machine, as its instance profile's credentials would.

On EC2 a node signs with session credentials of the node role, whose ``aws:userid`` is
``<role id>:<instance id>``; the node policy lets it write its own machine's files by that
name (``${aws:userid}``). moto hands out no instance-profile credentials and knows no policy
variables (it matches a resource as a pattern). So a loopback credential server, in the
test process, answers ``GET /<instance id>``: it makes that instance a role holding the
node policy with ``${aws:userid}`` filled in, assumes it with the instance id as the session
name (so GetCallerIdentity answers ``<role id>:<instance id>``), and returns the session's
credentials. A node's processes reach it through ``credential_process`` in their
``AWS_CONFIG_FILE`` (``tests/node_credentials.py``), which names the instance by
``$BURST_NODE_DIR``: every process of a machine carries it.

Only tests use this; the test's administrator (tests.motoserver.admin) makes the roles,
and no node ever holds its key.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from burst import protocol
from tests.motoserver import AccessKey, admin

SCRIPT = Path(__file__).with_name("node_credentials.py")


def machine_key(job: str, bucket: str, instance_id: str) -> AccessKey:
    """Session credentials of a role holding exactly the node policy, as ``instance_id``'s profile would give."""
    from burst.providers.aws_iam import node_policy
    from burst.providers.aws_names import bucket_name

    iam = admin().session().client("iam")
    name = f"node-{instance_id}-{uuid.uuid4().hex[:6]}"[:64]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }))["Role"]
    policy = json.dumps(node_policy(job, bucket_name(job, bucket)))
    policy = policy.replace(protocol.NODE_FOLDER_VARIABLE, f"{role['RoleId']}:{instance_id}")
    iam.put_role_policy(RoleName=name, PolicyName="burst-node", PolicyDocument=policy)
    session = admin().session().client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=instance_id)
    credentials = session["Credentials"]
    return AccessKey(name, credentials["AccessKeyId"], credentials["SecretAccessKey"], credentials["SessionToken"])


@dataclass
class CredentialServer:
    """The loopback server the nodes of one job ask for their machine's credentials."""

    job: str
    bucket: str | None = None

    def __post_init__(self) -> None:
        self._keys: dict[str, AccessKey] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                instance_id = self.path.strip("/")
                try:
                    key = server.key_of(instance_id)
                    body, status = json.dumps({"Version": 1, "AccessKeyId": key.key_id, "SecretAccessKey": key.secret,
                                               "SessionToken": key.token}).encode(), 200
                except Exception as error:  # noqa: BLE001 - the node's botocore says it
                    body, status = f"no credentials for {instance_id!r}: {error}".encode(), 500
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # no line per request
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, name="node-credentials", daemon=True).start()

    def key_of(self, instance_id: str) -> AccessKey:
        if not instance_id.startswith("i-"):
            raise ValueError("not an instance id")
        with self._lock:  # one role per instance, however many of its processes ask at once
            if instance_id not in self._keys:
                self._keys[instance_id] = machine_key(self.job, self.bucket, instance_id)
            return self._keys[instance_id]

    def config(self, folder: Path, python: str = sys.executable, inside: str | None = None) -> dict[str, str]:
        """The environment that makes a node's processes ask this server: an ``AWS_CONFIG_FILE`` in ``folder``.

        ``inside``: where ``folder`` is seen from the node (a stock machine's chroot), if not here.
        """
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCRIPT, folder / SCRIPT.name)
        seen = inside or str(folder)
        (folder / "aws-config").write_text(f"[default]\ncredential_process = {python} {seen}/{SCRIPT.name} {self.url}\n")
        return {"AWS_CONFIG_FILE": f"{seen}/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def worker_record_key(keys: list[str], instance_id: str) -> str:
    """The key of ``instance_id``'s worker record among a bucket's keys (its worker's folder: burst.node.identity)."""
    found = [key for key in keys if protocol.machine_record(key) == (instance_id, "worker")]
    assert len(found) == 1, f"one worker record of {instance_id}: {found}"
    return found[0]


def own_file(out: Path, instance_id: str, name: str) -> Path:
    """In a downloaded bucket, ``name`` (worker.json, install.log, worker.log) as the machine's worker
    wrote it, into its own folder: ``<role id>:<instance id>``."""
    base = out / ("state/machines" if name == "worker.json" else "machines")
    found = sorted(base.glob(f"*:{instance_id}/{name}"))
    assert len(found) == 1, f"one {name} of {instance_id} in its own folder: {sorted(base.glob('*/' + name))}"
    return found[0]
