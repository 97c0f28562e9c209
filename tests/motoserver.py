"""moto in server mode, reached over real HTTP through the standard ``AWS_ENDPOINT_URL``.

One ``ThreadedMotoServer`` per test process on a free 127.0.0.1 port (the OS
picks it: port 0); every test gets fresh AWS state (``POST /moto-api/reset``)
and an environment that can only reach that server: fake credentials, a fixed
region, the instance metadata service disabled, no profile or config file of
the user's.

Use in a test module::

    from tests.motoserver import moto_server, moto_ami  # noqa: F401  (fixtures)
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REGION = "us-east-1"


_server_url: str | None = None


def _shared_server_url() -> str:
    """Start one ThreadedMotoServer for the whole test process, on first use.

    Module-level rather than a session fixture so that test modules need to
    import ``moto_server`` only; it is stopped when the interpreter exits.
    """
    global _server_url
    if _server_url is None:
        import atexit
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        atexit.register(server.stop)
        _server_url = f"http://{host}:{port}"
    return _server_url


def aws_test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    """Point every boto3 client at ``endpoint`` with fake credentials, nothing of the user's."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    # moto has no Price List API: a loopback server replays its answers (tests/pricelist.py)
    from tests.pricelist import price_list_server

    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", price_list_server().url)
    # Never ask 169.254.169.254 for anything, even when credentials are missing.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # moto checks instance types in RunInstances only when asked (read at call time).
    import moto.settings

    monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)


def reset_moto(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def _set_auth_after(url: str, requests: float) -> None:
    """moto checks signatures and IAM policies of every request after the next ``requests`` ones."""
    request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=str(requests).encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@contextmanager
def unsigned_requests_allowed(url: str) -> Iterator[None]:
    """For tests of the test tools themselves (raw HTTP through the fault proxy): no signature checked."""
    _set_auth_after(url, float("inf"))
    try:
        yield
    finally:
        _set_auth_after(url, 0)


ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class AccessKey:
    user: str
    key_id: str
    secret: str
    token: str = ""  # session credentials (an assumed role's): tests.node_identity

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                **({"AWS_SESSION_TOKEN": self.token} if self.token else {})}

    def session(self):
        import boto3

        return boto3.session.Session(aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                                     aws_session_token=self.token or None, region_name=REGION)


_admin: AccessKey | None = None  # the current test's administrator (moto_server)


def iam_user(name: str, policy: dict, signer: AccessKey | None = None) -> AccessKey:
    """An IAM user whose only policy is ``policy``, and its access key (made by the test's administrator)."""
    signer = signer or _admin
    assert signer is not None, "iam_user needs the moto_server fixture"
    iam = signer.session().client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return AccessKey(name, key["AccessKeyId"], key["SecretAccessKey"])


def admin() -> AccessKey:
    """The test's administrator: for what a test itself sets up or inspects beyond the dispatcher's policy."""
    assert _admin is not None, "admin() needs the moto_server fixture"
    return _admin


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """URL of a moto server with empty state and IAM enforced; the environment points boto3 at it.

    The environment signs as a user whose only policy is the one ``burst permissions``
    prints, so every call burst's dispatcher makes must be allowed by it; the test's own
    ``boto3.client(...)`` (what it inspects or sets up) signs as :func:`admin`;
    tests.node_identity gives each node its machine's credentials.
    """
    global _admin
    from burst.providers.aws_policy import dispatcher_policy

    url = _shared_server_url()
    _set_auth_after(url, float("inf"))
    reset_moto(url)
    aws_test_environment(monkeypatch, tmp_path, url)
    bootstrap = AccessKey("bootstrap", "testing", "testing")  # unchecked until enforcement starts
    _admin = iam_user("burst-test-admin", ADMIN_POLICY, signer=bootstrap)
    dispatcher = iam_user("burst-dispatcher", dispatcher_policy(), signer=bootstrap)
    for name, value in dispatcher.env().items():
        monkeypatch.setenv(name, value)
    # burst makes its own sessions (the environment: the dispatcher); a test's own ``boto3.client(...)``,
    # which looks at or sets up what burst made, signs as the administrator
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", _admin.session())
    _set_auth_after(url, 0)
    try:
        yield url
    finally:
        _set_auth_after(url, float("inf"))
        _admin = None
        reset_moto(url)


def find_ami(architecture: str = "x86_64") -> str:
    """An available Linux AMI of moto's built-in set (Ubuntu first), by DescribeImages."""
    import boto3

    ec2 = boto3.client("ec2")
    # Narrow by owner and name: describing all of moto's ~1000 images takes seconds.
    images = ec2.describe_images(
        Owners=["099720109477", "137112412989"],  # Canonical, Amazon
        Filters=[
            {"Name": "architecture", "Values": [architecture]},
            {"Name": "state", "Values": ["available"]},
            {"Name": "name", "Values": ["ubuntu/images/*", "al2022-ami-*", "amzn2-ami-*"]},
        ],
    )["Images"]
    linux = [image for image in images if image.get("Platform") != "windows" and not image.get("ProductCodes")]
    linux.sort(key=lambda image: (not image.get("Name", "").startswith("ubuntu/"), image["ImageId"]))
    assert linux, f"moto offers no {architecture} Linux AMI"
    return linux[0]["ImageId"]


@pytest.fixture
def moto_ami(moto_server: str) -> str:
    """An x86_64 Linux AMI id that moto's EC2 knows."""
    return find_ami("x86_64")
