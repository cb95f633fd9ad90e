"""Accounts and credentials: register, sign in (an access token), who am I, API keys.

Sign-ins (ok or failed), registrations and key creations and revocations are audit events;
the route wrapper writes them (they are POSTs and DELETEs), these views say what they were.
Passwords, tokens and keys never reach the audit log or the logs. The logic is in
chalicelib/services/accounts.py; these views read the request and shape the answer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib.api import responses
from chalicelib.api.routing import Cursor, created, cursor_id, note_audit, paginated, parse_id, route
from chalicelib.services import accounts
from chalicelib.services.identity import current_principal

if TYPE_CHECKING:
    from chalicelib.db.tables import ApiKey, User

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


def user_json(user: User) -> dict:
    return {"id": user.id, "email": user.email, "role": user.role, "created_at": user.created_at}


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
    request = auth_api.current_request
    note_audit(request, details={"email": body.email.lower()})
    user = accounts.register(body.email, body.password)
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
    request = auth_api.current_request
    note_audit(request, details={"email": body.email.lower()})
    try:
        signed_in = accounts.sign_in(body.email, body.password)
    except accounts.SignInRefused as refused:
        if refused.user_id is not None:
            note_audit(request, user_id=refused.user_id)
        note_audit(request, details={"reason": refused.reason})
        raise
    note_audit(request, user_id=signed_in.user_id)
    return {"access_token": signed_in.access_token, "token_type": "bearer", "expires_in": signed_in.expires_in}


@route(
    auth_api,
    "/api/me",
    methods=["GET"],
    tag="auth",
    summary="The signed-in user, with storage used and quota",
    response=responses.Me,
)
def me():
    principal = current_principal(auth_api.current_request)
    account = accounts.account(principal)
    return {
        **user_json(account.user),
        "quota_bytes": account.quota_bytes or None,
        "used_bytes": account.used_bytes,
        "authenticated_by": principal.via,
    }


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
    new = accounts.create_api_key(current_principal(auth_api.current_request), body.name)
    return created({**api_key_json(new.api_key), "key": new.key}, f"/api/keys/{new.api_key.id}")


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
    rows = accounts.api_keys(
        current_principal(auth_api.current_request), limit=query.limit + 1, before_id=cursor_id(query.cursor)
    )
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
    accounts.revoke_api_key(current_principal(auth_api.current_request), parse_id(key_id, "API key"))
    return Response(body="", status_code=204)
