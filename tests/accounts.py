"""Accounts for tests: register, sign in, and the headers that carry the credentials."""

from __future__ import annotations

import json

JSON = {"Content-Type": "application/json"}
PASSWORD = "correct horse battery staple"
SECRET_KEY = "a-test-signing-key-that-is-long-enough-for-hs256"
ADMIN_EMAIL = "admin@example.com"  # in PIXELAKE_ADMIN_EMAILS when the auth_required fixture runs


def post_json(client, path: str, body, headers: dict | None = None):
    return client.http.post(path, body=json.dumps(body), headers={**JSON, **(headers or {})})


def register(client, email: str, password: str = PASSWORD):
    return post_json(client, "/api/auth/register", {"email": email, "password": password})


def sign_in(client, email: str, password: str = PASSWORD) -> str:
    response = post_json(client, "/api/auth/token", {"email": email, "password": password})
    assert response.status_code == 200, response.body
    return response.json_body["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_user(client, email: str) -> dict:
    """Register and sign in; the user's id and the headers that act as them."""
    response = register(client, email)
    assert response.status_code == 201, response.body
    return {"id": response.json_body["id"], "email": email, "headers": bearer(sign_in(client, email))}


def reconfigure(monkeypatch, **env: str) -> None:
    """Set environment variables and read the settings again now.

    chalice.test.Client lays the stage's variables (PIXELAKE_AUTH=off) over os.environ during
    each request: settings must be read before the next request, not during it.
    """
    from chalicelib.config import get_settings, reset_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    get_settings()
