"""Accounts and credentials: register, sign in (an access token), who am I, API keys.

Sign-ins (ok or failed), registrations and key creations and revocations are audit events;
the route wrapper writes them (they are POSTs and DELETEs), these views say what they were.
Passwords, tokens and keys never reach the audit log or the logs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import Cursor, created, cursor_id, note_audit, paginated, parse_id, route
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope
from chalicelib.errors import ApiError, not_found
from chalicelib.services.identity import (
    API_KEY_SHOWN_CHARS,
    current_principal,
    hash_api_key,
    hash_password,
    issue_access_token,
    new_api_key,
    password_needs_rehash,
    unauthorized,
    verify_password,
)

if TYPE_CHECKING:
    from chalicelib.db.tables import ApiKey

auth_api = Blueprint(__name__)
log = logging.getLogger("pixelake.auth")

# A practical email shape (one @, a dot in the domain, no spaces); delivery is not verified.
Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$",
        description="an email address, compared without regard to case",
    ),
]
# NIST SP 800-63B: at least 8 characters, accept long passphrases; the upper bound keeps hashing cheap to refuse.
Password = Annotated[str, Meta(min_length=8, max_length=256)]


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password


class SignInRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=1, max_length=320)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class NewApiKey(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=100,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="what the key is for; shown in the list of keys",
        ),
    ]


class KeyListQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, Meta(ge=1, le=100)] = 50
    cursor: Cursor | None = None


def _role_for(email: str) -> str:
    return "admin" if email.lower() in get_settings().admin_emails else "user"


def user_json(user, used_bytes: int | None = None) -> dict:
    body = {"id": user.id, "email": user.email, "role": user.role, "created_at": user.created_at}
    if used_bytes is not None:
        quota = get_settings().user_quota_bytes if user.quota_bytes is None else user.quota_bytes
        body.update(quota_bytes=quota or None, used_bytes=used_bytes)
    return body


def api_key_json(api_key: ApiKey) -> dict:
    return {
        "id": api_key.id,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "created_at": api_key.created_at,
        "last_used_at": api_key.last_used_at,
        "revoked_at": api_key.revoked_at,
    }


@route(
    auth_api,
    "/api/auth/register",
    methods=["POST"],
    body=Credentials,
    tag="auth",
    auth=False,
    action="auth.register",
    summary="Create an account with an email and a password",
    responses={201: "the new user", 409: "the email is registered already"},
    response={201: responses.User},
)
def register(body: Credentials):
    from chalicelib.db import users

    request = auth_api.current_request
    note_audit(request, details={"email": body.email.lower()})
    password_hash = hash_password(body.password)
    with session_scope() as session:
        user = users.create(session, email=body.email, password_hash=password_hash, role=_role_for(body.email))
        if user is None:
            raise ApiError(409, "email_taken", "an account with this email exists already; sign in instead")
        note_audit(request, user_id=user.id, resource_type="users", resource_id=str(user.id))
        return created(user_json(user), "/api/me")


@route(
    auth_api,
    "/api/auth/token",
    methods=["POST"],
    body=SignInRequest,
    tag="auth",
    auth=False,
    action="auth.sign_in",
    summary="Sign in: an access token for `Authorization: Bearer <token>`",
    responses={200: "{access_token, token_type: bearer, expires_in}", 401: "wrong email or password"},
    response=responses.AccessToken,
)
def sign_in(body: SignInRequest):
    from chalicelib.db import users

    request = auth_api.current_request
    note_audit(request, details={"email": body.email.lower()})
    with session_scope() as session:
        user = users.get_by_email(session, body.email)
        valid = verify_password(user.password_hash if user else None, body.password)
        if user is not None:
            note_audit(request, user_id=user.id)
        # verify_password is never true without a stored hash; the check also tells the type checker so.
        if not valid or user is None or user.password_hash is None:
            note_audit(request, details={"reason": "unknown email" if user is None else "wrong password"})
            raise unauthorized("wrong email or password")
        if not user.is_active:
            note_audit(request, details={"reason": "disabled"})
            raise unauthorized("wrong email or password")
        if password_needs_rehash(user.password_hash):
            users.set_password_hash(user, hash_password(body.password))
        if user.role != "admin" and _role_for(user.email) == "admin":
            users.set_role(user, "admin")  # PIXELAKE_ADMIN_EMAILS gained this email since it registered
        token, lifetime = issue_access_token(user.id)
    return {"access_token": token, "token_type": "bearer", "expires_in": lifetime}


@route(
    auth_api,
    "/api/me",
    methods=["GET"],
    tag="auth",
    summary="The signed-in user, with storage used and quota",
    response=responses.Me,
)
def me():
    from chalicelib.db import users

    principal = current_principal(auth_api.current_request)
    with session_scope() as session:
        user = users.get(session, principal.user_id)
        if user is None:  # deleted since the credential was checked
            raise unauthorized("the signed-in user no longer exists")
        return {**user_json(user, users.storage_used(session, user.id)), "authenticated_by": principal.via}


@route(
    auth_api,
    "/api/keys",
    methods=["POST"],
    body=NewApiKey,
    tag="auth",
    action="api_key.create",
    summary="Create an API key for `X-API-Key`; the key is in this answer only",
    responses={201: "{id, name, prefix, key, created_at}"},
    response={201: responses.NewApiKey},
)
def create_api_key(body: NewApiKey):
    from chalicelib.db import users

    principal = current_principal(auth_api.current_request)
    key = new_api_key()
    with session_scope() as session:
        api_key = users.create_api_key(
            session,
            user_id=principal.user_id,
            name=body.name.strip() or "key",
            prefix=key[:API_KEY_SHOWN_CHARS],
            key_hash=hash_api_key(key),
        )
        body_json = {**api_key_json(api_key), "key": key}
    return created(body_json, f"/api/keys/{api_key.id}")


@route(
    auth_api,
    "/api/keys",
    methods=["GET"],
    query=KeyListQuery,
    tag="auth",
    summary="Your API keys, newest first (never the keys themselves)",
    response=responses.ApiKeyPage,
)
def list_api_keys(query: KeyListQuery):
    from chalicelib.db import users

    principal = current_principal(auth_api.current_request)
    with session_scope() as session:
        # Keys are personal: an admin lists their own here too.
        rows = users.list_api_keys(session, principal.user_id, limit=query.limit + 1, before_id=cursor_id(query.cursor))
        return paginated(rows, query.limit, api_key_json)


@route(
    auth_api,
    "/api/keys/{key_id}",
    methods=["DELETE"],
    tag="auth",
    action="api_key.revoke",
    summary="Revoke an API key: it stops working at once",
    responses={204: "revoked", 404: "no such key"},
    response={204: None},
)
def revoke_api_key(key_id: str):
    from chalicelib.db import users

    wanted_id = parse_id(key_id, "API key")
    principal = current_principal(auth_api.current_request)
    with session_scope() as session:
        api_key = users.get_api_key_for_owner(session, wanted_id, principal.owner_filter)
        if api_key is None:
            raise not_found("API key", wanted_id)
        users.revoke_api_key(api_key)
    return Response(body="", status_code=204)
