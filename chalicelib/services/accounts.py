"""Accounts: register, sign in, who am I, and API keys.

The credentials themselves (password hashes, access tokens, API key hashes) are in
chalicelib/services/identity.py; this module creates and reads the rows that hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, not_found
from chalicelib.services.identity import (
    API_KEY_SHOWN_CHARS,
    hash_api_key,
    hash_password,
    issue_access_token,
    new_api_key,
    password_needs_rehash,
    unauthorized,
    verify_password,
)
from chalicelib.services.quota import quota_of

if TYPE_CHECKING:
    from chalicelib.db.tables import ApiKey, User
    from chalicelib.services.identity import Principal


class SignInRefused(ApiError):
    """A failed sign-in: the caller always gets the same 401; which account and why are for the audit log."""

    def __init__(self, user_id: int | None, reason: str):
        refusal = unauthorized("wrong email or password")
        super().__init__(refusal.status, refusal.code, refusal.message, headers=refusal.headers)
        self.user_id = user_id
        self.reason = reason


@dataclass(frozen=True)
class SignedIn:
    user_id: int
    access_token: str
    expires_in: int  # seconds


@dataclass(frozen=True)
class Account:
    """A user with the storage they use and may use (quota_bytes 0: unlimited)."""

    user: User
    used_bytes: int
    quota_bytes: int


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    key: str  # the secret itself: shown once, stored only as its hash


def role_for(email: str) -> str:
    return "admin" if email.lower() in get_settings().admin_emails else "user"


def register(email: str, password: str) -> User:
    """A new user (an admin when PIXELAKE_ADMIN_EMAILS names the email); 409 when the email is taken."""
    from chalicelib.db import users

    password_hash = hash_password(password)
    with session_scope() as session:
        user = users.create(session, email=email, password_hash=password_hash, role=role_for(email))
        if user is None:
            raise ApiError(409, "email_taken", "an account with this email exists already; sign in instead")
        return user


def sign_in(email: str, password: str) -> SignedIn:
    """An access token for the account, else SignInRefused (a 401 that does not say which part was wrong)."""
    from chalicelib.db import users

    with session_scope() as session:
        user = users.get_by_email(session, email)
        valid = verify_password(user.password_hash if user else None, password)
        if user is None:
            raise SignInRefused(None, "unknown email")
        # verify_password is never true without a stored hash; the check also tells the type checker so.
        if not valid or user.password_hash is None:
            raise SignInRefused(user.id, "wrong password")
        if not user.is_active:
            raise SignInRefused(user.id, "disabled")
        if password_needs_rehash(user.password_hash):
            users.set_password_hash(user, hash_password(password))
        if user.role != "admin" and role_for(user.email) == "admin":
            users.set_role(user, "admin")  # PIXELAKE_ADMIN_EMAILS gained this email since it registered
        token, lifetime = issue_access_token(user.id)
        return SignedIn(user_id=user.id, access_token=token, expires_in=lifetime)


def account(principal: Principal) -> Account:
    """The signed-in user with their storage; 401 when the user was deleted since the credential was checked."""
    from chalicelib.db import users

    with session_scope() as session:
        user = users.get(session, principal.user_id)
        if user is None:
            raise unauthorized("the signed-in user no longer exists")
        return Account(user, used_bytes=users.storage_used(session, user.id), quota_bytes=quota_of(user))


def create_api_key(principal: Principal, name: str) -> CreatedApiKey:
    from chalicelib.db import users

    key = new_api_key()
    with session_scope() as session:
        api_key = users.create_api_key(
            session,
            user_id=principal.user_id,
            name=name.strip() or "key",
            prefix=key[:API_KEY_SHOWN_CHARS],
            key_hash=hash_api_key(key),
        )
        session.refresh(api_key)  # created_at, which the database filled in, for the answer
        return CreatedApiKey(api_key, key)


def api_keys(principal: Principal, *, limit: int, before_id: int | None) -> list[ApiKey]:
    """The caller's API keys, newest first. Keys are personal: an admin lists their own too."""
    from chalicelib.db import users

    with session_scope() as session:
        return users.list_api_keys(session, principal.user_id, limit=limit, before_id=before_id)


def revoke_api_key(principal: Principal, key_id: int) -> None:
    """Revoke one of the caller's keys (404 otherwise): it stops working at once."""
    from chalicelib.db import users

    with session_scope() as session:
        api_key = users.get_api_key_for_owner(session, key_id, principal.owner_filter)
        if api_key is None:
            raise not_found("API key", key_id)
        users.revoke_api_key(api_key)
