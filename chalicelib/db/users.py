"""Users, their API keys and their storage use.

Emails are stored lower-cased (the unique index is on lower(email) too). API keys are stored
as their SHA-256 only; the key itself is shown once, when it is created.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from chalicelib.db.tables import ApiKey, Image, User

LOCAL_USER_EMAIL = "local@pixelake.localhost"


def ensure_local_user(session: Session) -> User:
    """The user requests act as when authentication is off (created on first use)."""
    session.execute(
        insert(User).values(email=LOCAL_USER_EMAIL).on_conflict_do_nothing(index_elements=[func.lower(User.email)])
    )
    return session.scalars(select(User).where(func.lower(User.email) == LOCAL_USER_EMAIL)).one()


def get(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(func.lower(User.email) == email.lower())).one_or_none()


def create(session: Session, *, email: str, password_hash: str, role: str = "user") -> User | None:
    """A new user, or None when the email is taken (atomically: two registrations cannot both win)."""
    user_id = session.scalar(
        insert(User)
        .values(email=email.lower(), password_hash=password_hash, role=role)
        .on_conflict_do_nothing(index_elements=[func.lower(User.email)])
        .returning(User.id)
    )
    return None if user_id is None else session.get(User, user_id)


def set_role(user: User, role: str) -> None:
    user.role = role


def set_password_hash(user: User, password_hash: str) -> None:
    user.password_hash = password_hash


# --- API keys ---


def create_api_key(session: Session, *, user_id: int, name: str, prefix: str, key_hash: str) -> ApiKey:
    api_key = ApiKey(user_id=user_id, name=name, prefix=prefix, key_hash=key_hash)
    session.add(api_key)
    session.flush()
    return api_key


def list_api_keys(session: Session, owner_id: int | None, *, limit: int, before_id: int | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id.desc()).limit(limit)
    if owner_id is not None:
        query = query.where(ApiKey.user_id == owner_id)
    if before_id is not None:
        query = query.where(ApiKey.id < before_id)
    return list(session.scalars(query))


def get_api_key_for_owner(session: Session, key_id: int, owner_id: int | None) -> ApiKey | None:
    query = select(ApiKey).where(ApiKey.id == key_id)
    if owner_id is not None:
        query = query.where(ApiKey.user_id == owner_id)
    return session.scalars(query).one_or_none()


def revoke_api_key(api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        api_key.revoked_at = datetime.now(UTC)


# --- storage quota ---


def lock_for_upload(session: Session, user_id: int) -> User | None:
    """The user row, locked until the transaction ends: one user's uploads check their quota one at a time."""
    return session.scalars(select(User).where(User.id == user_id).with_for_update()).one_or_none()


def storage_used(session: Session, user_id: int) -> int:
    """Bytes of every image the user has (pending ones count with the size they announced)."""
    return int(session.scalar(select(func.coalesce(func.sum(Image.size_bytes), 0)).where(Image.owner_id == user_id)))
