"""The web page: an HTML shell at `GET /` for browsers and its static files under `/ui/{name}`.

The page is plain ES modules and CSS packaged in chalicelib/web/ (Chalice deploys chalicelib/
whole), so there is no separate web server and no build step. Files are read on first request,
not at import, to keep the api function's cold start small. Only the names in ASSETS are served:
a request names a key of that table, never a path.

Caching: the shell is never cached (it names the current version of every file); it loads each
module through an import map that adds `?v=<content hash>` to its URL, and a file requested with
its current hash is cached for a year. Without the hash (or with an old one) a file is revalidated
with its ETag on every use.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from chalice import Blueprint, Response
from msgspec import Meta

from chalicelib import __version__
from chalicelib.api.routing import MediaBody, route
from chalicelib.config import get_settings
from chalicelib.errors import ApiError

web_api = Blueprint(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
SHELL = "index.html"
JS = "text/javascript; charset=utf-8"
# name → content type: the only files /ui/{name} serves.
ASSETS = {
    "app.js": JS,
    "api.js": JS,
    "dom.js": JS,
    "auth.js": JS,
    "upload.js": JS,
    "gallery.js": JS,
    "image.js": JS,
    "overlays.js": JS,
    "forms.js": JS,
    "charts.js": JS,
    "stats.js": JS,
    "datasets.js": JS,
    "imports.js": JS,
    "training.js": JS,
    "models.js": JS,
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


@functools.cache
def asset(name: str) -> tuple[bytes, str]:
    """(content, short content hash) of an allowed file, read once per container."""
    data = (WEB_DIR / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:16]


def wants_html(request) -> bool:
    """True when the client prefers HTML (a browser) over JSON; curl, requests and fetch send */*."""
    ranks: dict[str, float] = {}
    for item in (request.headers.get("accept") or "").split(","):
        media, *params = [part.strip() for part in item.split(";")]
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        ranks[media.lower()] = max(quality, ranks.get(media.lower(), 0.0))
    html_rank = ranks.get("text/html", 0.0)
    return html_rank > 0 and html_rank >= ranks.get("application/json", 0.0)


def base_path(request) -> str:
    """The URL path the page is served under: "/" locally, "/api/" on an API Gateway stage.

    API Gateway's request context carries the full path, stage (or custom domain base path)
    included; every URL in the page is relative to it, so the same page works on any stage.
    """
    path = (request.context or {}).get("path") or "/"
    return path if path.endswith("/") else path + "/"


def storage_origin() -> str:
    """Where presigned URLs point: the page loads thumbnails from there and POSTs uploads to it."""
    endpoint = get_settings().aws_endpoint_url
    if endpoint:
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}"
    return "https://*.amazonaws.com"


def import_map(base: str) -> str:
    modules = {f"{base}ui/{name}": f"{base}ui/{name}?v={asset(name)[1]}" for name, kind in ASSETS.items() if kind == JS}
    return json.dumps({"imports": modules}, indent=1)


def page(request) -> Response:
    """The HTML shell: landmarks and the navigation; app.js renders each view into <main>."""
    base = base_path(request)
    settings = get_settings()
    imports = import_map(base)
    template = asset(SHELL)[0].decode()
    body = (
        template.replace("%BASE%", html.escape(base, quote=True))
        .replace("%IMPORTMAP%", imports)
        .replace("%APP%", html.escape(f"{base}ui/app.js?v={asset('app.js')[1]}", quote=True))
        .replace("%CSS%", html.escape(f"{base}ui/style.css?v={asset('style.css')[1]}", quote=True))
        .replace("%ICON%", html.escape(f"{base}ui/icon.svg?v={asset('icon.svg')[1]}", quote=True))
        .replace("%VERSION%", html.escape(__version__))
        .replace("%STAGE%", html.escape(settings.stage))
        .replace("%AUTH%", html.escape(settings.auth))
    )
    # The import map is the only inline script: allow exactly it, by hash.
    map_hash = "sha256-" + base64.b64encode(hashlib.sha256(imports.encode()).digest()).decode()
    storage = storage_origin()
    policy = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' '{map_hash}'",
            "style-src 'self'",
            f"img-src 'self' data: blob: {storage}",
            f"connect-src 'self' {storage}",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ]
    )
    return Response(
        body=body,
        status_code=200,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Cache-Control": REVALIDATE,
            "Vary": "Accept",
            "Content-Security-Policy": policy,
            **SECURITY_HEADERS,
        },
    )


class AssetQuery(msgspec.Struct, forbid_unknown_fields=True):
    v: Annotated[str, Meta(max_length=64, description="the file's content hash: cached for a year")] | None = None


@route(
    web_api,
    "/ui/{name}",
    methods=["GET"],
    tag="web",
    auth=False,
    query=AssetQuery,
    summary="A file of the web page (scripts, styles, icon); only the page's own files are served",
    responses={304: "not modified", 404: "no such file"},
    response={200: MediaBody(*sorted({t.split(";")[0] for t in ASSETS.values()})), 304: None},
)
def ui_file(name: str, query: AssetQuery):
    content_type = ASSETS.get(name)
    if content_type is None:
        raise ApiError(404, "not_found", f"the web page has no file {name!r}")
    data, digest = asset(name)
    request = web_api.current_request
    etag = f'"{digest}"'
    versioned = query.v == digest
    headers: dict[str, str | list[str]] = {
        "ETag": etag,
        "Cache-Control": IMMUTABLE if versioned else REVALIDATE,
        **SECURITY_HEADERS,
    }
    if etag in [tag.strip() for tag in (request.headers.get("if-none-match") or "").split(",")]:
        return Response(body="", status_code=304, headers=headers)
    return Response(body=data.decode(), status_code=200, headers={"Content-Type": content_type, **headers})
