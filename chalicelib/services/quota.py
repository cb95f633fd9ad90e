"""Per-user storage quota: the sum of the sizes of a user's images.

users.quota_bytes overrides PIXELAKE_USER_QUOTA_BYTES for one user; 0 (in either) means
unlimited. The check locks the user's row, so two concurrent uploads cannot both squeeze
under the limit. A bulk import checks each file it registers (`import_refusals`, called by
chalicelib/services/import_runs.py under the same lock): a file that would take the user over
the quota is one of the import's failed files, with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.config import get_settings
from chalicelib.errors import ApiError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chalicelib.db.tables import User


def quota_of(user: User) -> int:
    """The user's storage quota in bytes; 0 means unlimited."""
    return get_settings().user_quota_bytes if user.quota_bytes is None else user.quota_bytes


def enforce_upload_quota(session: Session, user_id: int, size_bytes: int) -> None:
    """Raise a 403 `quota_exceeded` unless the user may store size_bytes more (call in the upload's transaction)."""
    from chalicelib.db import users

    user = users.lock_for_upload(session, user_id)
    if user is None:
        return
    quota = quota_of(user)
    if not quota:
        return
    used = users.storage_used(session, user_id)
    if used + size_bytes > quota:
        raise ApiError(
            403,
            "quota_exceeded",
            f"this upload ({size_bytes:,} bytes) would exceed your storage quota: {used:,} of {quota:,} bytes used",
            used_bytes=used,
            quota_bytes=quota,
        )


def import_refusals(used: int, quota: int, sizes: list[int]) -> list[str | None]:
    """For each file an import would register, in order: None when it fits in the quota with the
    files taken before it, else why not (each file that fits is taken: a smaller one after a
    refused one may still fit). quota 0: unlimited."""
    refusals: list[str | None] = []
    for size in sizes:
        if not quota or used + size <= quota:
            used += size
            refusals.append(None)
        else:
            refusals.append(
                f"over your storage quota of {quota:,} bytes: this file is {size:,} bytes and {used:,} are used"
            )
    return refusals
