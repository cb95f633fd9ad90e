"""Who is asking: the principal behind a request, from a bearer token or an API key.

`current_principal(request)` is the one hook every view calls. It reads
`Authorization: Bearer <jwt>` (POST /api/auth/token) or `X-API-Key: <key>` (POST /api/keys).
With PIXELAKE_AUTH=required a request without valid credentials is a 401; with
PIXELAKE_AUTH=off (the local stage's default) a request without credentials acts as the local
user, and a request with credentials is still checked (so two users can be tried on a laptop).

Nothing is cached across requests but the local user: a revoked key, a disabled user or a
changed role takes effect on the next request. The user row is read on every request (one
indexed query) so a token never carries a role that is no longer true.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from dataclasses import dataclass

from chalicelib.config import get_settings
from chalicelib.errors import ApiError
from chalicelib.logs import bind

TOKEN_ALGORITHM = "HS256"
TOKEN_ISSUER = "pixelake"
TOKEN_AUDIENCE = "pixelake-api"
API_KEY_PREFIX = "pxl_"
API_KEY_SHOWN_CHARS = 12  # "pxl_" and 8 characters: enough to tell keys apart in a list
LAST_USED_RESOLUTION_S = 60  # last_used_at is written at most once a minute per key
MIN_SECRET_KEY_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash output


@dataclass(frozen=True)
class Principal:
    user_id: int
    role: str = "user"
    via: str = "local"  # local, token or api_key
    api_key_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def owner_filter(self) -> int | None:
        """The owner id to filter by: None for admins, who see everything."""
        return None if self.is_admin else self.user_id


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="pixelake"'})


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this endpoint is for administrators")


# --- passwords: Argon2id with OWASP's recommended parameters (46 MiB, 1 pass, 1 lane) ---


@functools.cache
def _password_hasher():
    from argon2 import PasswordHasher

    # One lane: a Lambda api function has about one vCPU, where argon2-cffi's default profile
    # (64 MiB, 3 passes, 4 lanes) takes ~0.5 s per sign-in; this one takes ~0.09 s here.
    # Hashes made with other parameters still verify and are upgraded at the next sign-in.
    return PasswordHasher(time_cost=1, memory_cost=46 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _password_hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; costs the same time when there is no hash to check."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = _password_hasher()
    try:
        # An unknown email still pays for one verification, so timing does not reveal which emails exist.
        return hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _password_hasher().check_needs_rehash(password_hash)


@functools.cache
def _dummy_hash() -> str:
    return _password_hasher().hash(secrets.token_urlsafe(16))


# --- access tokens: JWT (HS256) signed with SECRET_KEY, expiry enforced on every request ---


@functools.cache
def _process_secret_key() -> str:
    return secrets.token_urlsafe(48)


def signing_key() -> str:
    settings = get_settings()
    key = settings.secret_key
    if not key:
        if not settings.is_local:
            raise RuntimeError("SECRET_KEY is not set: a deployed stage cannot issue or check tokens")
        # A laptop without SECRET_KEY: tokens last as long as the process (set SECRET_KEY to keep them).
        return _process_secret_key()
    if len(key.encode()) < MIN_SECRET_KEY_BYTES and not settings.is_local:
        raise RuntimeError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes")
    return key


def issue_access_token(user_id: int) -> tuple[str, int]:
    """A signed access token for the user and its lifetime in seconds."""
    import jwt

    lifetime = get_settings().token_expiry_s
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + lifetime,
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, signing_key(), algorithm=TOKEN_ALGORITHM), lifetime


def user_id_from_token(token: str) -> int:
    """The user id a valid token names; raises a 401 ApiError for any invalid, expired or forged token."""
    import jwt

    try:
        claims = jwt.decode(
            token,
            signing_key(),
            algorithms=[TOKEN_ALGORITHM],
            audience=TOKEN_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise unauthorized("the access token has expired; get a new one from POST /api/auth/token") from None
    except jwt.InvalidTokenError:
        raise unauthorized("the access token is not valid") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.isdigit():
        raise unauthorized("the access token is not valid")
    return int(sub)


# --- API keys: random secrets, stored as their SHA-256 ---


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # SHA-256, not a password KDF: a key is 256 random bits, so there is no dictionary to try
    # and a fast hash is as strong as a slow one; it also makes the hash a unique, indexed
    # lookup (a salted KDF would need the salt before the lookup and ~50 ms on every request).
    return hashlib.sha256(key.encode()).hexdigest()


# --- the principal of a request ---

_REQUEST_ATTRIBUTE = "_pixelake_principal"


def current_principal(request) -> Principal:
    """The principal of this request (computed once per request); raises a 401 ApiError."""
    principal = getattr(request, _REQUEST_ATTRIBUTE, None)
    if principal is None:
        principal = _authenticate(request)
        setattr(request, _REQUEST_ATTRIBUTE, principal)
        bind(user_id=principal.user_id)  # every later line of this request names its user
    return principal


def authenticated_principal(request) -> Principal | None:
    """The principal if this request has been authenticated already, else None (never raises)."""
    return getattr(request, _REQUEST_ATTRIBUTE, None)


def _authenticate(request) -> Principal:
    authorization = request.headers.get("authorization")
    api_key = request.headers.get("x-api-key")
    if authorization and api_key:
        raise unauthorized("send one credential: either Authorization: Bearer <token> or X-API-Key, not both")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("the Authorization header must be 'Bearer <access token>'")
        return _principal_from_token(token.strip())
    if api_key:
        return _principal_from_api_key(api_key.strip())
    if get_settings().auth_required:
        raise unauthorized(
            "authentication required: send Authorization: Bearer <token> "
            "(POST /api/auth/token) or X-API-Key: <key> (POST /api/keys)"
        )
    return _local_principal()


def _principal_from_token(token: str) -> Principal:
    # The driver alone (chalicelib/db/direct.py): the first request of a cold start is nearly
    # always authenticated, and the ORM would add SQLAlchemy's import and mapping to it.
    from chalicelib.db import direct

    user = direct.active_user(direct.connection(), user_id_from_token(token))
    if user is None:
        raise unauthorized("the access token's user no longer exists or is disabled")
    return Principal(user["id"], user["role"], via="token")


def _principal_from_api_key(key: str) -> Principal:
    from chalicelib.db import direct

    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        raise unauthorized("the API key is not valid")
    db = direct.connection()
    found = direct.active_api_key(db, hash_api_key(key))
    if found is None:
        raise unauthorized("the API key is not valid or has been revoked")
    direct.touch_api_key(db, found["key_id"], LAST_USED_RESOLUTION_S)
    return Principal(found["user_id"], found["role"], via="api_key", api_key_id=found["key_id"])


@functools.cache
def _local_principal() -> Principal:
    from chalicelib.db import users
    from chalicelib.db.session import session_scope

    with session_scope() as session:
        user = users.ensure_local_user(session)
        return Principal(user.id, user.role)
