"""Who is asking. With PIXELAKE_AUTH=off (the local stage's default) requests act as the local user."""
from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    user_id: int
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def owner_filter(self) -> int | None:
        """The owner id to filter by: None for admins, who see everything."""
        return None if self.is_admin else self.user_id


@functools.cache
def _local_principal() -> Principal:
    from chalicelib.db import users
    from chalicelib.db.session import session_scope

    with session_scope() as session:
        user = users.ensure_local_user(session)
        return Principal(user.id, user.role)


def current_principal(request) -> Principal:
    return _local_principal()
