"""The AWS fault proxy (tests/awsfaults.py): errors in AWS's own format, everything else untouched."""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from burst.storage.s3 import MiB, S3Storage
from tests.awsfaults import (
    INSUFFICIENT_INSTANCE_CAPACITY,
    INTERNAL_ERROR,
    REQUEST_LIMIT_EXCEEDED,
    SERVICE_UNAVAILABLE,
    SLOW_DOWN,
    THROTTLING,
    VCPU_LIMIT_EXCEEDED,
    FaultRule,
    aws_faults,  # noqa: F401  (fixture)
    classify,
)
from tests.motoserver import moto_ami, moto_server, unsigned_requests_allowed  # noqa: F401  (fixtures)

BUCKET = "burst-fault-bucket"




def client(service: str, attempts: int = 3, user_agent: str | None = None):
    """A client making at most ``attempts`` calls per operation (botocore's ``max_attempts`` counts retries)."""
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, user_agent_extra=user_agent)
    return boto3.client(service, config=config)


def error_code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def test_ec2_standard_retries_survive_two_request_limit_exceeded(aws_faults, backoffs):  # noqa: F811
    rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeInstances", times=2))
    response = client("ec2", attempts=5).describe_instances()
    assert response["Reservations"] == []
    assert aws_faults.fired(rule) == 2
    assert aws_faults.count("DescribeInstances", "ec2") == 3
    assert len(backoffs) == 2 and all(0 <= delay <= 2 for delay in backoffs)  # throttling backoff: 1 s, 2 s scale


def test_ec2_error_exhausts_retries_in_ec2_format(aws_faults, backoffs):  # noqa: F811
    rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeInstances"))
    with pytest.raises(ClientError) as info:
        client("ec2", attempts=3).describe_instances()
    assert error_code(info) == "RequestLimitExceeded"
    assert info.value.response["Error"]["Message"] == "Request limit exceeded."
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["ResponseMetadata"]["RequestId"]  # parsed from <RequestID>
    assert aws_faults.fired(rule) == 3 and aws_faults.count("DescribeInstances") == 3


def test_terminate_fails_only_for_the_matching_user_agent(aws_faults, moto_ami, backoffs):  # noqa: F811
    ec2 = client("ec2")
    instance = ec2.run_instances(ImageId=moto_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1)
    instance_id = instance["Instances"][0]["InstanceId"]
    rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("TerminateInstances", user_agent="burst-dispatcher/7"))

    with pytest.raises(ClientError) as info:
        client("ec2", user_agent="burst-dispatcher/7").terminate_instances(InstanceIds=[instance_id])
    assert error_code(info) == "RequestLimitExceeded"
    assert aws_faults.fired(rule) == 3  # every attempt of the retrying client
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "running"

    ec2.terminate_instances(InstanceIds=[instance_id])  # another user agent: forwarded to moto
    assert aws_faults.fired(rule) == 3
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")


def test_capacity_errors_and_limits_as_ec2_sends_them(aws_faults, moto_ami, backoffs):  # noqa: F811
    ec2 = client("ec2", attempts=3)
    launch = dict(ImageId=moto_ami, InstanceType="c5.large", MinCount=1, MaxCount=1)
    vcpu = aws_faults.add(VCPU_LIMIT_EXCEEDED.on("RunInstances", times=1))
    with pytest.raises(ClientError) as info:
        ec2.run_instances(**launch)
    assert error_code(info) == "VcpuLimitExceeded"
    assert aws_faults.fired(vcpu) == 1  # a 400 that is no throttling: botocore does not retry it

    capacity = aws_faults.add(INSUFFICIENT_INSTANCE_CAPACITY.on("RunInstances"))
    with pytest.raises(ClientError) as info:
        ec2.run_instances(**launch)
    assert error_code(info) == "InsufficientInstanceCapacity"
    assert aws_faults.fired(capacity) == 3  # a 500: botocore retries it as transient
    aws_faults.remove(capacity)
    assert len(ec2.run_instances(**launch)["Instances"]) == 1


def test_iam_throttling_in_iam_format_is_retried(aws_faults, backoffs):  # noqa: F811
    rule = aws_faults.add(THROTTLING.on("ListRoles", times=2))
    assert client("iam").list_roles()["Roles"] == []
    assert aws_faults.fired(rule) == 2 and aws_faults.count("ListRoles", "iam") == 3

    aws_faults.add(THROTTLING.on("GetRole"))
    with pytest.raises(ClientError) as info:
        client("iam", attempts=2).get_role(RoleName="burst-node")
    assert error_code(info) == "Throttling" and info.value.response["Error"]["Type"] == "Sender"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_s3_put_slow_down_is_retried_and_succeeds(aws_faults, backoffs):  # noqa: F811
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    storage = S3Storage(f"s3://{BUCKET}/camp")
    rule = aws_faults.add(SLOW_DOWN.on("PutObject", times=3))
    storage.write_text("t0/status.json", '{"state": "done"}')
    assert aws_faults.fired(rule) == 3 and aws_faults.count("PutObject", "s3") == 4
    assert storage.read_text("t0/status.json") == '{"state": "done"}'


def test_s3_errors_in_s3_format_and_bodyless_head(aws_faults, backoffs):  # noqa: F811
    s3 = client("s3", attempts=2)
    s3.create_bucket(Bucket=BUCKET)
    aws_faults.add(INTERNAL_ERROR.on("GetObject"))
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=BUCKET, Key="k")
    assert error_code(info) == "InternalError" and info.value.response["Error"]["Message"].startswith("We encountered")

    head = aws_faults.add(SERVICE_UNAVAILABLE.on("HeadObject"))
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=BUCKET, Key="k")
    assert error_code(info) == "503"  # HEAD answers carry no body: botocore has only the status
    assert aws_faults.fired(head) == 2

    aws_faults.clear()
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=BUCKET, Key="k")
    assert error_code(info) == "NoSuchKey"  # moto's own answer, forwarded


def test_service_filter_and_operation_names(aws_faults, backoffs):  # noqa: F811
    s3 = client("s3", attempts=1)
    only_ec2 = aws_faults.add(FaultRule(action="CreateBucket", status=503, code="Unavailable", service="ec2"))
    s3.create_bucket(Bucket=BUCKET)
    assert aws_faults.fired(only_ec2) == 0
    s3.put_object(Bucket=BUCKET, Key="a/b c.txt", Body=b"x")
    s3.head_object(Bucket=BUCKET, Key="a/b c.txt")
    s3.get_object(Bucket=BUCKET, Key="a/b c.txt")
    s3.list_objects_v2(Bucket=BUCKET)
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "a/b c.txt"}]})
    client("sts").get_caller_identity()
    assert aws_faults.requests == [
        ("s3", "CreateBucket"), ("s3", "PutObject"), ("s3", "HeadObject"), ("s3", "GetObject"),
        ("s3", "ListObjectsV2"), ("s3", "DeleteObjects"), ("sts", "GetCallerIdentity"),
    ]


@pytest.mark.parametrize(
    "method, target, headers, operation",
    [
        ("PUT", "/b", {}, "CreateBucket"),
        ("GET", "/b?list-type=2&prefix=x", {}, "ListObjectsV2"),
        ("POST", "/b?delete", {}, "DeleteObjects"),
        ("PUT", "/b/k/x.bin", {}, "PutObject"),
        ("PUT", "/b/k?partNumber=2&uploadId=u", {}, "UploadPart"),
        ("PUT", "/b/k", {"x-amz-copy-source": "/b/o"}, "CopyObject"),
        ("POST", "/b/k?uploads", {}, "CreateMultipartUpload"),
        ("POST", "/b/k?uploadId=u", {}, "CompleteMultipartUpload"),
        ("GET", "/b/k?x-id=GetObject", {}, "GetObject"),
        ("HEAD", "/b/k", {}, "HeadObject"),
        ("DELETE", "/b/k", {}, "DeleteObject"),
    ],
)
def test_s3_operations_from_method_path_and_query(method, target, headers, operation):
    assert classify(method, target, headers, b"") == ("s3", operation)


def test_few_mb_uploads_arrive_intact(aws_faults, tmp_path):  # noqa: F811
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    storage = S3Storage(f"s3://{BUCKET}", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    for name, size in [("single.bin", 3 * MiB + 5), ("multi.bin", 11 * MiB + 7)]:
        source = tmp_path / name
        source.write_bytes(os.urandom(size))
        storage.upload_file(source, f"t/{name}")  # verifies the stored ETag against the file
        storage.download_file(f"t/{name}", tmp_path / f"{name}.back")
        assert hashlib.sha256((tmp_path / f"{name}.back").read_bytes()).digest() == hashlib.sha256(
            source.read_bytes()
        ).digest()
    assert aws_faults.count("UploadPart") == 3 and aws_faults.count("CompleteMultipartUpload") == 1


def test_chunked_request_body_is_forwarded_whole(aws_faults, moto_server):  # noqa: F811
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    data = os.urandom(300_000)
    address = urlsplit(aws_faults.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    blocks = (data[i : i + 65_536] for i in range(0, len(data), 65_536))
    with unsigned_requests_allowed(moto_server):  # a raw HTTP request: it carries no signature
        connection.request("PUT", f"/{BUCKET}/chunked.bin", body=blocks, encode_chunked=True)
        response = connection.getresponse()
        response.read()
    connection.close()
    assert response.status == 200
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key="chunked.bin")["Body"].read() == data
    assert aws_faults.requests[-2] == ("s3", "PutObject")


def test_rules_change_while_many_threads_call(aws_faults, backoffs):  # noqa: F811
    ec2 = client("ec2", attempts=10)
    rule = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeRegions", times=5))
    barrier = threading.Barrier(8)

    def call(_):
        barrier.wait()
        return len(ec2.describe_regions()["Regions"])

    with ThreadPoolExecutor(8) as pool:
        assert all(list(pool.map(call, range(8))))
    assert aws_faults.fired(rule) == 5  # exactly k, however the threads interleave
    assert aws_faults.count("DescribeRegions") == 8 + 5

    aws_faults.clear()
    always = aws_faults.add(REQUEST_LIMIT_EXCEEDED.on("DescribeRegions"))
    with pytest.raises(ClientError):
        client("ec2", attempts=1).describe_regions()
    aws_faults.remove(always)
    assert client("ec2", attempts=1).describe_regions()["Regions"]
