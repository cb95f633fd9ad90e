"""`GET /` (what this API is) and `GET /health` (is every component reachable: chalicelib/services/health.py)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import __version__
from chalicelib.api import responses
from chalicelib.api.routing import ROUTES, MediaBody, route
from chalicelib.api.web import page, wants_html
from chalicelib.config import get_settings
from chalicelib.services import health as health_service

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
    report = health_service.check()
    body = {"status": "ok" if report.healthy else "degraded", "components": report.components}
    return Response(body=body, status_code=200 if report.healthy else 503, headers={"Content-Type": "application/json"})
