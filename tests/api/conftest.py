import pytest
from accounts import ADMIN_EMAIL, SECRET_KEY, reconfigure


@pytest.fixture
def auth_required(client, monkeypatch):
    """PIXELAKE_AUTH=required with a signing key and one admin email, for one test."""
    from chalicelib.config import get_settings, reset_settings

    reconfigure(
        monkeypatch,
        PIXELAKE_AUTH="required",
        SECRET_KEY=SECRET_KEY,
        PIXELAKE_ADMIN_EMAILS=f"{ADMIN_EMAIL.upper()}, ops@example.com",
    )
    assert get_settings().auth_required
    yield client
    monkeypatch.undo()
    reset_settings()
