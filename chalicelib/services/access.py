"""Which storage keys a principal may read: their own areas of the bucket (admins: any)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import storage
from chalicelib.errors import ApiError

if TYPE_CHECKING:
    from chalicelib.services.identity import Principal


def owned_prefixes(principal: Principal) -> tuple[str, ...]:
    return storage.user_areas(principal.user_id)


def in_own_area(principal: Principal, key: str) -> bool:
    """True when the key (or prefix) lies in the principal's own areas of the bucket."""
    return storage.in_user_area(principal.user_id, key)


def check_readable(principal: Principal, key: str) -> None:
    """Users read only their own namespaces of the bucket; admins read anything."""
    if not principal.is_admin:
        check_own_area(principal, key)


def check_own_area(principal: Principal, key: str) -> None:
    """A 403 unless the key is in the principal's own areas (admins too: what they import, they own)."""
    if not in_own_area(principal, key):
        raise ApiError(
            403,
            "forbidden_prefix",
            f"{key!r} is outside your storage; use a key under one of {list(owned_prefixes(principal))}",
        )
