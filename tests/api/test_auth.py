"""Accounts, access tokens, API keys, roles, the audit log, quotas, CORS and secrets in logs."""

import hashlib
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import jwt
import pytest
from accounts import ADMIN_EMAIL, PASSWORD, SECRET_KEY, bearer, new_user, post_json, reconfigure, register, sign_in
from sample_images import jpeg_bytes, multipart
from sqlalchemy import select

from chalicelib.api.routing import ROUTES
from chalicelib.db.session import session_scope
from chalicelib.db.tables import ApiKey, AuditLog, User


def concrete(path: str) -> str:
    """A route's path with every {parameter} replaced by an id."""
    import re

    return re.sub(r"{\w+}", "1", path)


def audit_rows(**where) -> list[AuditLog]:
    with session_scope() as session:
        query = select(AuditLog).order_by(AuditLog.id)
        for column, value in where.items():
            query = query.where(getattr(AuditLog, column) == value)
        return list(session.scalars(query))


# --- register and sign in ---


def test_register_then_sign_in_gives_a_bearer_token_that_authenticates(auth_required):
    client = auth_required
    response = register(client, "Alice@Example.com")
    assert response.status_code == 201, response.body
    assert response.json_body["email"] == "alice@example.com" and response.json_body["role"] == "user"
    token = post_json(client, "/api/auth/token", {"email": "alice@EXAMPLE.com", "password": PASSWORD})
    assert token.status_code == 200
    body = token.json_body
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], SECRET_KEY, algorithms=["HS256"], audience="pixelake-api")
    assert claims["sub"] == str(response.json_body["id"]) and claims["exp"] - claims["iat"] == 3600
    me = client.http.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json_body["email"] == "alice@example.com" and me.json_body["authenticated_by"] == "token"
    with session_scope() as session:
        stored = session.scalars(select(User).where(User.email == "alice@example.com")).one().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_an_email_registers_once_whatever_its_case(auth_required):
    assert register(auth_required, "bob@example.com").status_code == 201
    again = register(auth_required, "BOB@example.com")
    assert again.status_code == 409 and again.json_body["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"email": "not-an-email", "password": PASSWORD}, "$.email"),
        ({"email": "c@example.com", "password": "short"}, "length >= 8"),
        ({"email": "c@example.com", "password": "x" * 257}, "length <= 256"),
        ({"email": "c@example.com", "password": PASSWORD, "role": "admin"}, "unknown field `role`"),
        ({"email": "c@example.com", "password": 12345678}, "Expected `str`"),
        ({"email": "c@example.com"}, "missing required field `password`"),
    ],
)
def test_register_validates_its_body(auth_required, body, fragment):
    response = post_json(auth_required, "/api/auth/register", body)
    assert response.status_code == 400
    assert fragment in response.json_body["error"]["message"]


def test_a_wrong_password_and_an_unknown_email_answer_the_same_401(auth_required):
    client = auth_required
    register(client, "carol@example.com")
    wrong = post_json(client, "/api/auth/token", {"email": "carol@example.com", "password": "not the password"})
    unknown = post_json(client, "/api/auth/token", {"email": "nobody@example.com", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json_body == unknown.json_body
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_disabled_user_cannot_sign_in_or_use_a_token(auth_required):
    client = auth_required
    user = new_user(client, "dave@example.com")
    with session_scope() as session:
        session.get(User, user["id"]).is_active = False
    assert client.http.get("/api/me", headers=user["headers"]).status_code == 401
    assert post_json(client, "/api/auth/token", {"email": "dave@example.com", "password": PASSWORD}).status_code == 401


# --- tokens: expiry, signature, algorithm ---


def _token(user_id: int, *, key: str = SECRET_KEY, algorithm: str = "HS256", **overrides) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "iat": now, "exp": now + 60, "iss": "pixelake", "aud": "pixelake-api", **overrides}
    return jwt.encode(claims, key, algorithm=algorithm)


@pytest.mark.parametrize(
    "forge, message",
    [
        (lambda uid: _token(uid, exp=int(time.time()) - 5, iat=int(time.time()) - 100), "expired"),
        (lambda uid: _token(uid, key="another-key-that-is-also-long-enough-for-hs256"), "not valid"),
        (lambda uid: _token(uid, algorithm="none", key=None), "not valid"),
        (lambda uid: _token(uid, aud="someone-else"), "not valid"),
        (lambda uid: _token(uid, exp=None), "not valid"),
        (lambda uid: _token(uid + 1000), "no longer exists"),
        (lambda uid: _token(uid)[:-4] + "AAAA", "not valid"),
        (lambda uid: "not.a.token", "not valid"),
    ],
)
def test_forged_expired_and_foreign_tokens_are_401(auth_required, forge, message):
    client = auth_required
    user = new_user(client, "erin@example.com")
    response = client.http.get("/api/me", headers=bearer(forge(user["id"])))
    assert response.status_code == 401
    assert response.json_body["error"]["code"] == "unauthorized" and message in response.json_body["error"]["message"]


def test_a_token_expires_after_the_configured_lifetime(auth_required, monkeypatch):
    from chalicelib.services import identity

    client = auth_required
    register(client, "frank@example.com")
    reconfigure(monkeypatch, PIXELAKE_TOKEN_EXPIRY="60")
    now = time.time()
    # Tokens signed 30 and 61 seconds ago: only the issuing module's clock is moved. The fresh one
    # keeps a margin of 30 s for the two sign-ins (Argon2) on a loaded machine.
    monkeypatch.setattr(identity, "time", SimpleNamespace(time=lambda: now - 30))
    fresh = sign_in(client, "frank@example.com")
    monkeypatch.setattr(identity, "time", SimpleNamespace(time=lambda: now - 61))
    stale = sign_in(client, "frank@example.com")
    monkeypatch.setattr(identity, "time", time)
    assert client.http.get("/api/me", headers=bearer(fresh)).status_code == 200
    expired = client.http.get("/api/me", headers=bearer(stale))
    assert expired.status_code == 401 and "expired" in expired.json_body["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"X-API-Key": "not-a-pixelake-key"},
        {"X-API-Key": "pxl_" + "a" * 43},
    ],
)
def test_malformed_credentials_are_401(auth_required, headers):
    response = auth_required.http.get("/api/images", headers=headers)
    assert response.status_code == 401 and response.json_body["error"]["code"] == "unauthorized"


# --- API keys ---


def test_api_key_is_shown_once_stored_hashed_and_works_until_revoked(auth_required):
    client = auth_required
    user = new_user(client, "grace@example.com")
    created = post_json(client, "/api/keys", {"name": "laptop"}, user["headers"])
    assert created.status_code == 201, created.body
    key = created.json_body["key"]
    assert key.startswith("pxl_") and len(key) >= 40 and created.json_body["prefix"] == key[:12]
    assert created.headers["Location"] == f"/api/keys/{created.json_body['id']}"
    with session_scope() as session:
        row = session.get(ApiKey, created.json_body["id"])
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in json.dumps({c.name: str(getattr(row, c.key)) for c in ApiKey.__table__.columns})
    listed = client.http.get("/api/keys", headers=user["headers"]).json_body["items"]
    assert [k["name"] for k in listed] == ["laptop"] and "key" not in listed[0]

    me = client.http.get("/api/me", headers={"X-API-Key": key})
    assert me.status_code == 200 and me.json_body["authenticated_by"] == "api_key"
    assert me.json_body["id"] == user["id"]

    revoked = client.http.delete(f"/api/keys/{created.json_body['id']}", headers=user["headers"])
    assert revoked.status_code == 204
    assert client.http.get("/api/me", headers={"X-API-Key": key}).status_code == 401
    assert client.http.get("/api/keys", headers=user["headers"]).json_body["items"][0]["revoked_at"]


def test_last_used_is_written_at_most_once_a_minute(auth_required):
    client = auth_required
    user = new_user(client, "heidi@example.com")
    created = post_json(client, "/api/keys", {"name": "ci"}, user["headers"]).json_body
    headers = {"X-API-Key": created["key"]}
    client.http.get("/api/me", headers=headers)
    with session_scope() as session:
        first = session.get(ApiKey, created["id"]).last_used_at
    client.http.get("/api/me", headers=headers)
    with session_scope() as session:
        assert session.get(ApiKey, created["id"]).last_used_at == first
        session.get(ApiKey, created["id"]).last_used_at = first - timedelta(minutes=2)
    client.http.get("/api/me", headers=headers)
    with session_scope() as session:
        assert session.get(ApiKey, created["id"]).last_used_at > first


def test_a_user_cannot_revoke_or_list_another_users_key(auth_required):
    client = auth_required
    owner, other = new_user(client, "ivan@example.com"), new_user(client, "judy@example.com")
    key = post_json(client, "/api/keys", {"name": "mine"}, owner["headers"]).json_body
    assert client.http.delete(f"/api/keys/{key['id']}", headers=other["headers"]).status_code == 404
    assert client.http.get("/api/keys", headers=other["headers"]).json_body["items"] == []
    assert client.http.get("/api/me", headers={"X-API-Key": key["key"]}).status_code == 200


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 101}, {"name": "a\nb"}, {"name": "k", "scope": "*"}])
def test_api_key_names_are_validated(auth_required, body):
    user = new_user(auth_required, "ken@example.com")
    assert post_json(auth_required, "/api/keys", body, user["headers"]).status_code == 400


# --- authentication is required on every /api route but health and auth ---


def test_every_api_route_but_the_open_ones_is_401_without_credentials(auth_required):
    client = auth_required
    open_routes = {(r.method, r.path) for r in ROUTES if not r.auth}
    assert open_routes >= {
        ("GET", "/health"),
        ("GET", "/openapi.json"),
        ("POST", "/api/auth/register"),
        ("POST", "/api/auth/token"),
    }
    assert all(not path.startswith("/api/") or path.startswith("/api/auth/") for _, path in open_routes)
    checked = 0
    for doc in ROUTES:
        if not doc.auth:
            continue
        response = getattr(client.http, doc.method.lower())(
            concrete(doc.path), body=b"{}", headers={"Content-Type": doc.content_types[0]}
        )
        assert response.status_code == 401, (doc.method, doc.path, response.body)
        assert response.json_body["error"]["code"] == "unauthorized"
        checked += 1
    assert checked >= 10


def test_with_auth_off_requests_act_as_the_local_user_but_bad_credentials_are_refused(client):
    me = client.http.get("/api/me")
    assert me.status_code == 200 and me.json_body["email"] == "local@pixelake.localhost"
    assert me.json_body["authenticated_by"] == "local"
    assert client.http.get("/api/me", headers=bearer("garbage")).status_code == 401


# --- roles ---


def test_admin_emails_get_the_admin_role_and_only_admins_read_the_audit_log(auth_required):
    client = auth_required
    admin = register(client, ADMIN_EMAIL)
    assert admin.json_body["role"] == "admin"
    admin_headers = bearer(sign_in(client, ADMIN_EMAIL))
    user = new_user(client, "leo@example.com")
    assert client.http.get("/api/audit", headers=admin_headers).status_code == 200
    denied = client.http.get("/api/audit", headers=user["headers"])
    assert denied.status_code == 403 and denied.json_body["error"]["code"] == "forbidden"


def test_an_email_added_to_the_admin_list_later_becomes_admin_at_sign_in(auth_required):
    client = auth_required
    assert register(client, "ops@example.com").json_body["role"] == "admin"
    with session_scope() as session:
        session.scalars(select(User).where(User.email == "ops@example.com")).one().role = "user"
    sign_in(client, "ops@example.com")
    with session_scope() as session:
        assert session.scalars(select(User).where(User.email == "ops@example.com")).one().role == "admin"


def test_roles_are_read_on_every_request_not_from_the_token(auth_required):
    client = auth_required
    user = new_user(client, "mallory@example.com")
    assert client.http.get("/api/audit", headers=user["headers"]).status_code == 403
    with session_scope() as session:
        session.get(User, user["id"]).role = "admin"
    assert client.http.get("/api/audit", headers=user["headers"]).status_code == 200


# --- the audit log ---


def test_auth_events_and_mutations_are_audited_without_secrets(auth_required):
    client = auth_required
    admin = new_user(client, ADMIN_EMAIL)
    user = new_user(client, "nina@example.com")
    post_json(client, "/api/auth/token", {"email": "nina@example.com", "password": "wrong password!"})
    key = post_json(client, "/api/keys", {"name": "robot"}, user["headers"]).json_body
    client.http.delete(f"/api/keys/{key['id']}", headers=user["headers"])
    body, headers = multipart("file", "cat.jpg", jpeg_bytes((64, 48)))
    upload = client.http.post(
        "/api/upload", body=body, headers={**headers, **user["headers"], "User-Agent": "tests/1.0"}
    )
    assert upload.status_code == 202

    entries = client.http.get("/api/audit?limit=200", headers=admin["headers"]).json_body["items"]
    by_action = {}
    for entry in reversed(entries):
        by_action.setdefault(entry["action"], []).append(entry)
    assert [e["outcome"] for e in by_action["auth.register"]] == ["success", "success"]
    sign_ins = [(e["user_id"], e["outcome"], e["details"].get("reason")) for e in by_action["auth.sign_in"]]
    assert sign_ins == [
        (admin["id"], "success", None),
        (user["id"], "success", None),
        (user["id"], "denied", "wrong password"),
    ]
    (created,) = by_action["api_key.create"]
    assert (created["user_id"], created["resource_type"], created["resource_id"]) == (
        user["id"],
        "keys",
        str(key["id"]),
    )
    (revoked,) = by_action["api_key.revoke"]
    assert (revoked["outcome"], revoked["resource_id"]) == ("success", str(key["id"]))
    (uploaded,) = by_action["images.upload"]
    assert (uploaded["user_id"], uploaded["resource_type"], uploaded["resource_id"]) == (
        user["id"],
        "images",
        str(upload.json_body["id"]),
    )
    assert uploaded["user_agent"] == "tests/1.0" and uploaded["ip"] == "127.0.0.1"
    assert all(e["request_id"] for e in entries)
    assert len({e["request_id"] for e in entries}) == len(entries)
    assert "GET" not in {e["details"]["method"] for e in entries}

    dump = json.dumps(entries)
    for secret in (PASSWORD, "wrong password!", key["key"], admin["headers"]["Authorization"].split()[1]):
        assert secret not in dump


def test_failed_and_unauthenticated_mutations_are_audited_with_their_outcome(auth_required):
    client = auth_required
    user = new_user(client, "oscar@example.com")
    post_json(client, "/api/uploads", {"filename": "a.jpg", "content_type": "image/jpeg", "size": 10})
    post_json(
        client, "/api/uploads", {"filename": "a.svg", "content_type": "image/svg+xml", "size": 10}, user["headers"]
    )
    rows = audit_rows(action="images.presign_upload")
    assert [(r.outcome, r.user_id, r.details["status"]) for r in rows] == [
        ("denied", None, 401),
        ("failure", user["id"], 415),
    ]
    assert rows[1].details["error"] == "unsupported_media_type"


def test_audit_filters_and_pagination(auth_required):
    client = auth_required
    admin = new_user(client, ADMIN_EMAIL)
    user = new_user(client, "peggy@example.com")
    for i in range(3):
        post_json(client, "/api/keys", {"name": f"k{i}"}, user["headers"])
    post_json(client, "/api/auth/token", {"email": "peggy@example.com", "password": "nope nope nope"})

    def get(query: str):
        response = client.http.get(f"/api/audit?{query}", headers=admin["headers"])
        assert response.status_code == 200, response.body
        return response.json_body

    keys = get(f"action=api_key.create&user_id={user['id']}")["items"]
    assert [e["details"]["method"] for e in keys] == ["POST"] * 3
    assert [e["outcome"] for e in get("outcome=denied")["items"]] == ["denied"]
    assert {e["user_id"] for e in get(f"user_id={admin['id']}")["items"]} == {admin["id"]}

    first = get("limit=2")
    second = get(f"limit=2&cursor={first['next_cursor']}")
    assert len(first["items"]) == 2 and second["items"][0]["id"] < first["items"][-1]["id"]

    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert get(f"since={future}")["items"] == []
    assert len(get(f"since={past}&until={future}&limit=200")["items"]) == len(audit_rows())
    for bad in (
        "limit=100000",
        "outcome=maybe",
        "since=yesterday",
        "user_id=abc",
        "colour=red",
        f"since={future}&until={past}",
        "since=2024-01-01T00:00:00",
    ):
        response = client.http.get(f"/api/audit?{bad}", headers=admin["headers"])
        assert response.status_code == 400, bad


# --- quota ---


def test_uploads_beyond_the_users_quota_are_refused(auth_required, monkeypatch):
    client = auth_required
    data = jpeg_bytes((64, 48))
    reconfigure(monkeypatch, PIXELAKE_USER_QUOTA_BYTES=str(len(data) * 2 + 10))
    user = new_user(client, "quentin@example.com")
    body, headers = multipart("file", "a.jpg", data)
    for _ in range(2):
        assert client.http.post("/api/upload", body=body, headers={**headers, **user["headers"]}).status_code == 202
    refused = client.http.post("/api/upload", body=body, headers={**headers, **user["headers"]})
    assert refused.status_code == 403 and refused.json_body["error"]["code"] == "quota_exceeded"
    assert refused.json_body["error"]["used_bytes"] == len(data) * 2
    presign = post_json(
        client, "/api/uploads", {"filename": "b.jpg", "content_type": "image/jpeg", "size": 11}, user["headers"]
    )
    assert presign.status_code == 403
    me = client.http.get("/api/me", headers=user["headers"]).json_body
    assert (me["used_bytes"], me["quota_bytes"]) == (len(data) * 2, len(data) * 2 + 10)

    with session_scope() as session:
        session.get(User, user["id"]).quota_bytes = 0  # this user: unlimited
    assert client.http.post("/api/upload", body=body, headers={**headers, **user["headers"]}).status_code == 202


# --- CORS ---


def test_cors_allows_any_origin_on_the_local_stage_by_default(client):
    response = client.http.get("/api/images", headers={"Origin": "http://localhost:3000"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_cors_allows_only_the_configured_origins(auth_required, monkeypatch):
    client = auth_required
    reconfigure(monkeypatch, PIXELAKE_CORS_ORIGINS="https://app.example.com/, https://admin.example.com")
    allowed = client.http.get("/health", headers={"Origin": "https://app.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert allowed.headers["Vary"] == "Origin"
    assert (
        "Access-Control-Allow-Origin"
        not in client.http.get("/health", headers={"Origin": "https://evil.example"}).headers
    )
    denied = client.http.get("/api/images", headers={"Origin": "https://admin.example.com"})
    assert denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == "https://admin.example.com"
    preflight = client.http.request(
        "OPTIONS", "/api/keys", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert set(preflight.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "OPTIONS"}
    assert "X-API-Key" in preflight.headers["Access-Control-Allow-Headers"]


def test_deployed_stages_require_auth_and_listed_origins():
    from chalicelib.config import Settings

    deployed = Settings.from_env({"PIXELAKE_STAGE": "prod", "PIXELAKE_CORS_ORIGINS": "https://app.example.com"})
    assert deployed.auth == "required" and deployed.cors_origins == ("https://app.example.com",)
    assert Settings.from_env({"PIXELAKE_STAGE": "prod"}).cors_origins == ()
    assert Settings.from_env({}).auth == "off" and Settings.from_env({}).cors_origins == ("*",)
    with pytest.raises(ValueError, match="local stage only"):
        Settings.from_env({"PIXELAKE_STAGE": "prod", "PIXELAKE_AUTH": "off"})
    with pytest.raises(ValueError, match="must list origins"):
        Settings.from_env({"PIXELAKE_STAGE": "dev", "PIXELAKE_CORS_ORIGINS": "*"})
    with pytest.raises(ValueError, match="'off' or 'required'"):
        Settings.from_env({"PIXELAKE_AUTH": "maybe"})


# --- validation everywhere ---


@pytest.mark.parametrize(
    "path",
    [
        "/api/me?debug=1",
        "/api/images?limit=100000",
        "/api/images?limit=ten",
        "/api/images?status=gone",
        "/api/images?cursor=1%20OR%201=1",
        "/api/images?sort=name",
        "/api/images?cursor=9999999999999999999",
        "/api/images/0",
        "/api/images/99999999999999999999",
    ],
)
def test_unknown_oversized_and_mistyped_query_and_path_values_are_400(client, path):
    response = client.http.get(path)
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] in ("invalid_query", "invalid_id")


def test_request_bodies_over_the_configured_size_are_413(client, monkeypatch):
    from chalicelib.config import reset_settings

    reconfigure(monkeypatch, PIXELAKE_MAX_REQUEST_BYTES="1000")
    try:
        response = post_json(client, "/api/keys", {"name": "x" * 2000})
        assert response.status_code == 413 and response.json_body["error"]["code"] == "request_too_large"
    finally:
        monkeypatch.undo()
        reset_settings()


# --- no secrets in logs ---


def test_tokens_keys_and_passwords_never_reach_the_logs(auth_required, monkeypatch, caplog):
    from chalicelib.db import users

    client = auth_required
    user = new_user(client, "rupert@example.com")
    key = post_json(client, "/api/keys", {"name": "k"}, user["headers"]).json_body["key"]
    token = user["headers"]["Authorization"].split()[1]

    def explode(*args, **kwargs):
        raise RuntimeError(f'boom: Authorization: Bearer {token} key {key} {{"password": "{PASSWORD}"}}')

    monkeypatch.setattr(users, "storage_used", explode)
    with caplog.at_level(logging.DEBUG):
        response = client.http.get("/api/me", headers={"X-API-Key": key})
        post_json(client, "/api/auth/token", {"email": "rupert@example.com", "password": PASSWORD})
    assert response.status_code == 500 and token not in response.body.decode()
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "boom" in logged
    for secret in (token, key, PASSWORD):
        assert secret not in logged


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/auth/register", {"email": "nul\u0000@example.com", "password": PASSWORD}),
        ("/api/auth/token", {"email": "nul\u0000@example.com", "password": PASSWORD}),
        ("/api/keys", {"name": "a\u0000b"}),
        ("/api/process", {"image_id": 1, "operation": "resize", "params": {"width\u0000": 1}}),
    ],
)
def test_nul_characters_are_refused_at_the_edge_not_by_the_database(client, path, body):
    response = post_json(client, path, body)
    assert response.status_code == 400, response.body
    assert response.json_body["error"]["code"] == "invalid_request"


def test_nul_characters_in_a_query_are_refused(auth_required):
    admin = new_user(auth_required, ADMIN_EMAIL)
    response = auth_required.http.get("/api/audit?action=sign%00in", headers=admin["headers"])
    assert response.status_code == 400 and "NUL" in response.json_body["error"]["message"]
