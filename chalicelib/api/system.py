"""`GET /` (what this API is) and `GET /health` (is every component reachable)."""

from __future__ import annotations

import time

from chalice import Blueprint, Response

from chalicelib import __version__, storage
from chalicelib.api import responses
from chalicelib.api.routing import ROUTES, MediaBody, route
from chalicelib.api.web import page, wants_html
from chalicelib.config import get_settings
from chalicelib.db.session import session_scope

system_api = Blueprint(__name__)


@route(
    system_api,
    "/",
    methods=["GET"],
    tag="system",
    auth=False,
    summary="Name, version and the list of endpoints; the web page for clients that accept text/html",
    response=(responses.Index, MediaBody("text/html")),
)
def index():
    if wants_html(system_api.current_request):
        return page(system_api.current_request)
    body = {
        "name": "Pixelake",
        "description": "Serverless image processing and machine learning API",
        "version": __version__,
        "stage": get_settings().stage,
        "endpoints": [{"method": r.method, "path": r.path, "summary": r.summary} for r in ROUTES],
    }
    return Response(body=body, status_code=200, headers={"Content-Type": "application/json", "Vary": "Accept"})


def _check(probe) -> dict:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # any failure means the component is down; say which and why
        return {"status": "down", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    from sqlalchemy import text

    with session_scope() as session:
        session.execute(text("SELECT 1"))


@route(
    system_api,
    "/health",
    methods=["GET"],
    tag="system",
    auth=False,
    summary="Health of the database and storage: 200 when all are up, 503 otherwise",
    responses={503: "a component is down"},
    response={200: responses.Health, 503: responses.Health},
)
def health():
    components = {"database": _check(_database), "storage": _check(storage.ping)}
    healthy = all(c["status"] == "up" for c in components.values())
    body = {"status": "ok" if healthy else "degraded", "components": components}
    return Response(body=body, status_code=200 if healthy else 503, headers={"Content-Type": "application/json"})
