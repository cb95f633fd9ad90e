"""Which storage keys a principal may read: their own areas of the bucket (admins: any)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import storage
from chalicelib.errors import ApiError

if TYPE_CHECKING:
    from chalicelib.services.identity import Principal


def owned_prefixes(principal: Principal) -> tuple[str, ...]:
    return (storage.dataset_prefix(principal.user_id), storage.user_upload_prefix(principal.user_id))


def check_readable(principal: Principal, key: str) -> None:
    """Users read only their own namespaces of the bucket; admins read anything."""
    if principal.is_admin:
        return
    if ".." in key.split("/") or not key.startswith(owned_prefixes(principal)):
        raise ApiError(
            403,
            "forbidden_prefix",
            f"{key!r} is outside your storage; use a key under one of {list(owned_prefixes(principal))}",
        )
