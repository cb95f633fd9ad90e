"""Users: the local user the open (PIXELAKE_AUTH=off) stage acts as."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chalicelib.db.models import User

LOCAL_USER_EMAIL = "local@pixelake.localhost"


def ensure_local_user(session: Session) -> User:
    """The user requests act as when authentication is off (created on first use)."""
    session.execute(
        insert(User).values(email=LOCAL_USER_EMAIL).on_conflict_do_nothing(
            index_elements=[func.lower(User.email)]
        )
    )
    return session.scalars(select(User).where(func.lower(User.email) == LOCAL_USER_EMAIL)).one()


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)
