"""Where a model file comes from: a multipart part, a presigned staging upload, or a URL.

Each ends as an object under models/staging/<user>/ with its sha256 and size, computed while
the bytes stream through (never the whole file in memory: models reach max_model_bytes).
Registration then copies it to models/<owner>/<name>/<version>/model.<ext> and deletes it.

URLs are http or https only, and are checked again on every redirect; outside the local
stage, hosts that resolve to loopback, private or link-local addresses are refused (the
Lambda runtime API listens on 127.0.0.1, the VPC holds the database).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
import urllib.error
import urllib.parse
import uuid
from dataclasses import dataclass

from chalicelib import storage
from chalicelib.config import get_settings
from chalicelib.errors import ApiError

UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
CHUNK = 1 << 20
DOWNLOAD_TIMEOUT_S = 20
HEAD_BYTES = 16


@dataclass(frozen=True)
class StagedArtifact:
    key: str
    sha256: str
    size_bytes: int
    head: bytes  # the first bytes, to tell a model file from an error page


def new_upload(user_id: int) -> tuple[str, str]:
    """(upload_id, staging key) for a direct upload; the client only ever names the id."""
    upload_id = uuid.uuid4().hex
    return upload_id, staging_key(user_id, upload_id)


def staging_key(user_id: int, upload_id: str) -> str:
    if not UPLOAD_ID.match(upload_id or ""):
        raise ApiError(
            400, "invalid_upload_id", "upload_id must be the 32 hex digits POST /api/models/uploads returned"
        )
    return storage.model_staging_key(user_id, upload_id)


def too_large(size: int | None = None) -> ApiError:
    limit = get_settings().max_model_bytes
    said = f"the model file is {size:,} bytes; " if size is not None else "the model file is larger than allowed; "
    return ApiError(413, "model_too_large", f"{said}the limit is {limit:,} bytes")


class _TooLarge(Exception):
    pass


class _HashingReader:
    """A read-only stream that hashes, counts and caps what passes through it."""

    def __init__(self, stream, max_bytes: int):
        self.stream = stream
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        chunk = self.stream.read(size)
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise _TooLarge()
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.digest.update(chunk)
        return chunk


def stage_bytes(user_id: int, data: bytes) -> StagedArtifact:
    """A small file sent through the API (multipart)."""
    if len(data) > get_settings().max_model_bytes:
        raise too_large(len(data))
    _, key = new_upload(user_id)
    storage.put(key, data, "application/octet-stream")
    return StagedArtifact(key, hashlib.sha256(data).hexdigest(), len(data), data[:HEAD_BYTES])


def hash_staged(user_id: int, upload_id: str) -> StagedArtifact:
    """The file a client uploaded with the presigned POST, hashed by streaming it from S3."""
    key = staging_key(user_id, upload_id)
    head = storage.head(key)
    if head is None:
        raise ApiError(
            404,
            "upload_not_found",
            f"no uploaded file for upload_id {upload_id}: POST it to the url and fields that "
            "POST /api/models/uploads returned, then register it",
        )
    # moto does not enforce the POST's content-length-range (S3 does): check again.
    if head["ContentLength"] > get_settings().max_model_bytes:
        storage.delete(key)
        raise too_large(head["ContentLength"])
    body = storage.s3_client().get_object(Bucket=get_settings().bucket, Key=key)["Body"]
    reader = _HashingReader(body, get_settings().max_model_bytes)
    try:
        for _ in iter(lambda: reader.read(CHUNK), b""):
            pass
    except _TooLarge:
        storage.delete(key)
        raise too_large() from None
    finally:
        body.close()
    return StagedArtifact(key, reader.digest.hexdigest(), reader.size, reader.head)


def check_url(url: str) -> None:
    """Raise a 400 unless `url` is http(s) to a host this deployment may fetch from."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError as exc:
        raise ApiError(400, "invalid_url", f"the url is not valid: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ApiError(
            400, "invalid_url", f"only http and https URLs can be downloaded, got {parsed.scheme or 'no'} scheme"
        )
    if not parsed.hostname:
        raise ApiError(400, "invalid_url", "the url has no host")
    if get_settings().model_url_private == "allow":
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, port or 443, type=socket.SOCK_STREAM)}
    except OSError as exc:
        raise ApiError(400, "download_failed", f"cannot resolve {parsed.hostname}: {exc}") from None
    for address in addresses:
        if not ipaddress.ip_address(str(address).split("%")[0]).is_global:
            raise ApiError(400, "invalid_url", f"{parsed.hostname} resolves to a non-public address ({address})")


def _checked_opener():
    """An opener that checks every redirect's URL as the first one was (urllib.request loads
    http.client, ssl and email: the model registration pays for them, not every cold start)."""
    import urllib.request

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            check_url(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(CheckedRedirects)


def stage_url(user_id: int, url: str) -> StagedArtifact:
    """Download `url` straight into S3 (a multipart upload for big files), hashing on the way."""
    check_url(url)
    max_bytes = get_settings().max_model_bytes
    import urllib.request

    opener = _checked_opener()
    request = urllib.request.Request(url, headers={"User-Agent": "pixelake-model-registry"})
    _, key = new_upload(user_id)
    try:
        with opener.open(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            announced = response.headers.get("Content-Length")
            if announced and announced.isdigit() and int(announced) > max_bytes:
                raise too_large(int(announced))
            reader = _HashingReader(response, max_bytes)
            storage.upload_stream(reader, key, "application/octet-stream")
    except _TooLarge:
        raise too_large() from None
    except urllib.error.HTTPError as exc:
        raise ApiError(400, "download_failed", f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiError(400, "download_failed", f"downloading {url} failed: {reason}") from None
    if reader.size == 0:
        storage.delete(key)
        raise ApiError(400, "download_failed", f"{url} answered with an empty file")
    return StagedArtifact(key, reader.digest.hexdigest(), reader.size, reader.head)


def promote(staged: StagedArtifact, key: str) -> None:
    """Copy the staged file to its registered key (a server-side copy, multipart when large)."""
    storage.copy(staged.key, key, "application/octet-stream")


def discard(staged: StagedArtifact) -> None:
    storage.delete(staged.key)
