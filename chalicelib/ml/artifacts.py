"""Verified model artifacts: the file a worker runs is the file that was registered.

The caller downloads an artifact (into `artifact_path(sha256)` or as bytes); `store_artifact` and
`load_artifact` check it against the sha256 recorded at registration, and `cached_artifact`
re-checks a cached copy (a stat, and a re-hash when the file changed) before it is used.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from chalicelib.errors import InvalidRequest

if TYPE_CHECKING:
    pass

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_TOP_K = 100


class ArtifactMismatch(ValueError):
    """A model file's bytes do not have the sha256 recorded for the model."""


# --- artifacts -------------------------------------------------------------------------------


def sha256_of(path_or_bytes: str | os.PathLike | bytes) -> str:
    """Hex sha256 of bytes or of a file (read in 1 MB chunks)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return hashlib.sha256(path_or_bytes).hexdigest()
    digest = hashlib.sha256()
    with open(path_or_bytes, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked_sha256(expected_sha256: str) -> str:
    expected = str(expected_sha256).lower()
    if not _SHA256.match(expected):
        raise InvalidRequest(f"'sha256' must be 64 hex digits, got {expected_sha256!r}")
    return expected


def load_artifact(path_or_bytes: str | os.PathLike | bytes, expected_sha256: str) -> bytes:
    """The artifact's bytes, after checking their sha256; raises ArtifactMismatch."""
    expected = _checked_sha256(expected_sha256)
    data = (
        bytes(path_or_bytes)
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview))
        else Path(path_or_bytes).read_bytes()
    )
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ArtifactMismatch(f"artifact sha256 is {actual}, expected {expected}")
    return data


def artifact_dir() -> Path:
    """Where verified artifacts are cached: <tmp_dir>/models (Lambda's /tmp survives warm starts)."""
    from chalicelib.config import get_settings

    return Path(get_settings().tmp_dir) / "models"


def artifact_path(sha256: str) -> Path:
    """The cache file of the artifact with this sha256 (the name is the hash: no path tricks)."""
    return artifact_dir() / _checked_sha256(sha256)


def store_artifact(data: bytes, expected_sha256: str) -> Path:
    """Verify `data` and write it to its cache file atomically; returns the path."""
    load_artifact(data, expected_sha256)
    path = artifact_path(expected_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return path


# Files this process has hashed, by (path, size, mtime): a warm container does not hash a
# 100 MB model again for every task.
_verified: set[tuple[str, int, int]] = set()


def cached_artifact(sha256: str) -> Path | None:
    """The cached, verified file for this sha256, or None (a corrupt file is deleted)."""
    path = artifact_path(sha256)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return path
    if sha256_of(path) != sha256.lower():
        path.unlink(missing_ok=True)
        return None
    _verified.add(key)
    return path


# --- ONNX (cv2.dnn) --------------------------------------------------------------------------
