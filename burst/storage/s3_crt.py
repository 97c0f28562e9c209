"""Download listed objects through awscrt's native S3 client: no Python per byte, little per object.

botocore costs about 1.5 ms of CPU per GetObject (serialising, signing, event
hooks, parsing, urllib3); s3transfer adds thread hand-offs for every 256 KB. On
2,000 small objects that made ``burst download`` 3x ``s5cmd``. awscrt's
``S3Client`` (the native client behind ``boto3[crt]``) does the HTTP, the SigV4
signing, the retries and the file writes in C, on its own event-loop threads; here Python only builds each GET (method, path, Host,
``If-Match``) and renames the finished file. See docs/benchmarks.md.

boto3's own CRT path (``preferred_transfer_client="crt"``) cannot be used: it
always speaks TLS and ignores the endpoint URL, so it fails against any S3 that
is not AWS (``AWS_IO_SOCKET_CLOSED`` against an http:// endpoint), and it runs
every request through botocore anyway. The URL of each object comes from
botocore (``generate_presigned_url`` for one probe key: endpoint rules, path or
virtual-hosted style), so burst writes no endpoint logic of its own.

Each GET carries the listed ETag as ``If-Match`` (an object above the part size
is ranged GETs, each carrying it), the file is written under a temporary name,
its size checked against the listing, and only then renamed: the same checks as
the classic path, whose ranged GETs s3transfer pins to the listed ETag. awscrt's
own response-checksum validation is not asked for: it costs a HeadObject per
object. An empty object needs no request. awscrt signs for the client's region and
follows no redirect: an object of a bucket in another region is refused
(``ElsewhereRegion``) and fetched again by s3transfer, whose botocore follows. ``available`` says whether this path
can serve a client; otherwise s3transfer's classic manager does
(``burst.storage.s3_download``).
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from burst.storage.base import DownloadDone, KeyNotFound, StoredObject

IN_FLIGHT = 256  # requests queued in the native client at once: memory stays flat on 100,000 objects
PROBE_KEY = "burst-probe"
RETRIES = 9  # the 10 attempts of every botocore client (burst.retry.aws_config), with awscrt's backoff:
BACKOFF_SCALE_MS = 500  # full jitter up to this x 2^attempt, at most 20 s (awscrt's defaults)
_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


class DownloadFailed(RuntimeError):
    """One object not downloaded: the HTTP status, S3's error code, or the transport's error."""


class ElsewhereRegion(DownloadFailed):
    """S3 refused a GET signed for the client's region: the bucket is in another (botocore follows; awscrt does not)."""


# what S3 answers a request signed for, or sent to, another region than the bucket's
_ELSEWHERE = {"PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}


def _verify(client: Any) -> str | bool:
    """botocore's TLS verification of ``client``: the CA bundle's path it resolved, True, or False (none)."""
    return getattr(getattr(getattr(client, "_endpoint", None), "http_session", None), "_verify", True)


def available(client: Any) -> bool:
    """Whether awscrt is installed and can serve ``client``: signed requests, certificates verified."""
    try:
        import awscrt.s3  # noqa: F401
    except ImportError:
        return False
    return client._get_credentials() is not None and _verify(client) is not False


def _native_client(client: Any, part_size: int, https: bool):
    """An awscrt S3Client with ``client``'s region, credentials (refreshed as botocore's are) and CA bundle."""
    from awscrt.io import ClientBootstrap, ClientTlsContext, DefaultHostResolver, EventLoopGroup, TlsContextOptions
    from awscrt.s3 import S3Client, S3RequestTlsMode, S3RetryConfig
    from s3transfer.crt import BotocoreCRTCredentialsWrapper

    loops = EventLoopGroup()
    tls = None
    if https and isinstance(_verify(client), str):  # AWS_CA_BUNDLE, ca_bundle in the profile, or certifi's
        options = TlsContextOptions()
        options.override_default_trust_store_from_path(ca_filepath=_verify(client))
        tls = ClientTlsContext(options).new_connection_options()
    return S3Client(
        bootstrap=ClientBootstrap(loops, DefaultHostResolver(loops)),
        region=client.meta.region_name,
        credential_provider=BotocoreCRTCredentialsWrapper(client._get_credentials()).to_crt_credentials_provider(),
        tls_mode=S3RequestTlsMode.ENABLED if https else S3RequestTlsMode.DISABLED,
        tls_connection_options=tls,
        part_size=part_size,
        retry_config=S3RetryConfig(max_retries=RETRIES, backoff_scale_factor_ms=BACKOFF_SCALE_MS),
    )


class _Batch:
    """The requests in flight, their temporary files, and the wait for the last of them."""

    def __init__(self, on_done: DownloadDone, not_found):
        self.on_done, self.not_found = on_done, not_found
        self.slots = threading.BoundedSemaphore(IN_FLIGHT)
        self.lock = threading.Lock()
        self.pending: dict[int, Any] = {}
        self.idle = threading.Event()
        self.idle.set()

    def finish(self, number: int, obj: StoredObject, target: Path, temp: Path, status: int | None,
               error: BaseException | None, body: bytes | None) -> None:
        failure: BaseException | None = None
        try:
            if error is not None:
                failure = self._failure(obj, status, error, body)
            elif temp.stat().st_size != obj.size:
                failure = DownloadFailed(f"{temp.stat().st_size} bytes received, the listing says {obj.size}")
            else:
                os.replace(temp, target)
        except OSError as problem:
            failure = problem
        if failure is not None:
            temp.unlink(missing_ok=True)
        try:
            self.on_done(obj, failure)
        finally:
            with self.lock:
                self.pending.pop(number, None)
                if not self.pending:
                    self.idle.set()
            self.slots.release()

    def write_empty(self, obj: StoredObject, target: Path) -> None:
        """An object the listing says is empty: its file, made here, reported like the others."""
        try:
            target.write_bytes(b"")
        except OSError as problem:
            self.on_done(obj, problem)
        else:
            self.on_done(obj, None)

    def _failure(self, obj: StoredObject, status: int | None, error: BaseException, body: bytes | None) -> BaseException:
        found = _CODE.search(body or b"")
        code = found.group(1).decode(errors="replace") if found else ""
        if status == 404 or code in ("NoSuchKey", "NoSuchBucket"):
            return self.not_found(code or "NoSuchKey", obj.key)
        if status in (301, 307) or code in _ELSEWHERE:
            return ElsewhereRegion(f"HTTP {status} {code}".strip())
        if status == 412:
            return DownloadFailed("it changed since it was listed (ETag no longer matches)")
        if status:
            return DownloadFailed(f"HTTP {status}{' ' + code if code else ''}")
        return DownloadFailed(str(error) or type(error).__name__)


def download_listed_crt(storage: Any, items: list[tuple[StoredObject, Path]], on_done: DownloadDone) -> None:
    """``S3Storage.download_many`` on awscrt: ``on_done(obj, error)`` from its threads, once per item."""
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.s3 import S3RequestType

    if not items:
        return
    probe = urlsplit(storage.client.generate_presigned_url(
        "get_object", Params={"Bucket": storage.bucket, "Key": PROBE_KEY}, ExpiresIn=60))
    base = probe.path[: -len(PROBE_KEY)]  # "/bucket/" (path style) or "/" (virtual-hosted)
    native = _native_client(storage.client, storage.multipart_chunksize, probe.scheme == "https")

    def not_found(code: str, key: str) -> BaseException:
        from botocore.exceptions import ClientError

        return storage._not_found(ClientError({"Error": {"Code": code}}, "GetObject"), key) or KeyNotFound(key)

    batch = _Batch(on_done, not_found)
    made: set[Path] = set()
    try:
        for number, (obj, target) in enumerate(items):
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            if obj.size == 0:  # nothing to fetch (and a ranged GET of nothing is a 416 on some stores)
                batch.write_empty(obj, target)
                continue
            # the listed key as it is: _full_key would strip a leading "/" and name another object
            full_key = f"{storage.prefix}/{obj.key}" if storage.prefix else obj.key
            headers = [("Host", probe.netloc)]
            if obj.etag:
                headers.append(("If-Match", f'"{obj.etag}"'))
            temp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.burst-part")

            def done(error=None, status_code=None, error_body=None, _n=number, _o=obj, _t=target, _p=temp, **_):
                batch.finish(_n, _o, _t, _p, status_code, error, error_body)

            batch.slots.acquire()
            with batch.lock:
                batch.idle.clear()
                batch.pending[number] = None
            # one GET below the multipart threshold, parts of the chunk size above it: as s3transfer does
            part = storage.multipart_threshold if obj.size < storage.multipart_threshold else storage.multipart_chunksize
            try:
                request = native.make_request(
                    type=S3RequestType.GET_OBJECT, request=HttpRequest("GET", base + quote(full_key, safe="/~"),
                                                                       HttpHeaders(headers)),
                    recv_filepath=str(temp), part_size=part, on_done=done)
            except Exception as refused:  # not started: reported like a failed GET
                batch.finish(number, obj, target, temp, None, refused, None)
                continue
            with batch.lock:
                if number in batch.pending:  # not already done: kept to be cancelled on Ctrl-C
                    batch.pending[number] = request
        batch.idle.wait()
    except BaseException:  # Ctrl-C: end what is in flight; its temporary files go with it
        with batch.lock:
            requests = [request for request in batch.pending.values() if request is not None]
        for request in requests:
            request.cancel()
        batch.idle.wait(timeout=30)
        raise
