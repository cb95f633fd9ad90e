"""Upload a folder of images straight to S3 through presigned POSTs, in parallel, resumably.

Resumable: `.pixelake-upload.json` in the folder records every finished file by its SHA-256
(with the image id it became), so a rerun after an interruption uploads only what is missing,
and a file renamed or copied inside the folder is not uploaded twice.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import requests

from pixelake_cli.client import ApiError, PixelakeClient

STATE_FILE = ".pixelake-upload.json"
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
}
CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder` by extension, in a stable order; hidden files and folders skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in CONTENT_TYPES:
                found.append(Path(root) / name)
    return found


class UploadState:
    """The state file: per API URL (stage), sha256 → {path, image_id, size}; rewritten atomically
    after every finished file, so an interruption loses at most the files in flight."""

    def __init__(self, folder: Path, api_url: str):
        self.path = folder / STATE_FILE
        self.api_url = api_url
        self.lock = threading.Lock()
        self.stages: dict[str, dict[str, dict]] = {}
        if self.path.exists():
            try:
                self.stages = dict(json.loads(self.path.read_text())["uploads"])
            except (ValueError, KeyError, TypeError):
                self.stages = {}  # a damaged state file only costs re-uploads
        self.files = self.stages.setdefault(api_url, {})

    def done(self, digest: str) -> bool:
        return digest in self.files

    def record(self, digest: str, relative: str, image_id: int, size: int) -> None:
        with self.lock:
            self.files[digest] = {"path": relative, "image_id": image_id, "size": size}
            text = json.dumps({"version": 1, "uploads": self.stages}, indent=1, sort_keys=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".pixelake-upload.", suffix=".tmp")
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
            os.replace(temporary, self.path)


def upload_file(client: PixelakeClient, path: Path, progress: Callable[[int], None]) -> int:
    """Presign, then POST the file to S3 (streamed, reporting bytes as they are sent); returns the image id."""
    from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

    size = path.stat().st_size
    content_type = (
        CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    presigned = client.post("api/uploads", {"filename": path.name, "content_type": content_type, "size": size})
    with path.open("rb") as stream:
        # S3 ignores fields after the file: the file goes last.
        encoder = MultipartEncoder(fields=[*presigned["fields"].items(), ("file", (path.name, stream, content_type))])
        sent = 0

        def report(monitor: MultipartEncoderMonitor) -> None:
            nonlocal sent
            # The monitor counts the multipart framing too; report file bytes only, at most the file's size.
            now = min(size, monitor.bytes_read)
            progress(now - sent)
            sent = now

        monitor = MultipartEncoderMonitor(encoder, report)
        # Plain requests, not the API session: storage must not receive the API's credentials.
        response = requests.post(
            presigned["url"], data=monitor, headers={"Content-Type": monitor.content_type}, timeout=600
        )
    progress(size - sent)
    if response.status_code >= 300:
        raise ApiError(response.status_code, "storage_rejected", f"storage refused {path.name}: {response.text[:300]}")
    return presigned["image_id"]


@dataclass
class UploadReport:
    uploaded: dict[str, int] = field(default_factory=dict)  # relative path → image id
    skipped: dict[str, int] = field(default_factory=dict)  # already uploaded (by content)
    failed: dict[str, str] = field(default_factory=dict)  # relative path → reason


def upload_folder(
    client: PixelakeClient, folder: Path, *, workers: int = 4, show_progress: bool = True
) -> UploadReport:
    folder = folder.resolve()
    state = UploadState(folder, client.api_url)
    report = UploadReport()
    todo: list[tuple[Path, str, str, int]] = []
    seen: set[str] = set()
    for path in image_files(folder):
        relative = path.relative_to(folder).as_posix()
        digest = sha256_of(path)
        if state.done(digest):
            report.skipped[relative] = state.files[digest]["image_id"]
        elif digest in seen:
            report.skipped[relative] = -1  # the same content twice in this run: uploaded once
        else:
            seen.add(digest)
            todo.append((path, relative, digest, path.stat().st_size))

    bar = _progress_bar(sum(size for *_, size in todo), len(todo), show_progress)
    lock = threading.Lock()

    def advance(count: int) -> None:
        with lock:
            bar.update(count)

    def one(path: Path, relative: str, digest: str, size: int) -> int:
        image_id = upload_file(client, path, advance)
        state.record(digest, relative, image_id, size)
        return image_id

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(one, *job): job for job in todo}
        for future in as_completed(futures):
            path, relative, digest, _size = futures[future]
            try:
                report.uploaded[relative] = future.result()
            except (ApiError, requests.RequestException, OSError) as exc:
                report.failed[relative] = str(exc)
            with lock:
                bar.set_postfix_str(f"{len(report.uploaded)} done, {len(report.failed)} failed", refresh=True)
    bar.close()
    return report


def _progress_bar(total_bytes: int, files: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"uploading {files} files",
        disable=not enabled or files == 0,
        dynamic_ncols=True,
    )
