"""The web page's HTTP side: content negotiation at GET /, the static files' allow-list, types and caching."""

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from chalice.test import Client

import app
from chalicelib.api import web

PROJECT_DIR = Path(__file__).resolve().parents[2]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.fixture(scope="module")
def client():
    """The local stage's Client. (chalice.test.Client's default stage is dev: its requests ran with
    PIXELAKE_STAGE=dev patched into os.environ, and the page's get_settings() kept those settings
    cached after the patch was undone: every later test's queues were pixelake-dev-*.)"""
    from chalicelib.config import reset_settings

    with Client(app.app, stage_name="local", project_dir=str(PROJECT_DIR)) as c:
        yield c
    reset_settings()  # the settings read under the Client's patched environment go with it


def test_browsers_get_the_page_and_everyone_else_the_json(client):
    page = client.http.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Vary"] == "Accept" and page.headers["Cache-Control"] == "no-cache"
    html = page.body.decode()
    assert '<base href="/">' in html and '<main id="main"' in html and 'lang="en"' in html
    for accept in ("*/*", "application/json", "", "application/json, text/html;q=0.5"):
        answer = client.http.get("/", headers={"Accept": accept} if accept else {})
        assert answer.headers["Content-Type"] == "application/json", accept
        assert answer.headers["Vary"] == "Accept"
        assert json.loads(answer.body)["name"] == "Pixelake"


@pytest.mark.parametrize(
    "accept, wanted",
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("TEXT/HTML; q=1", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("text/html;q=0", False),
        ("application/json;q=0.9, text/html", True),
        ("text/html;q=0.4, application/json", False),
        ("text/html;q=bogus", False),
    ],
)
def test_wants_html(accept, wanted):
    assert web.wants_html(SimpleNamespace(headers={"accept": accept})) is wanted


@pytest.mark.parametrize(
    "context, base",
    [
        ({"path": "/"}, "/"),
        ({"path": "/api/"}, "/api/"),
        ({"path": "/api"}, "/api/"),
        ({}, "/"),
        (None, "/"),
    ],
)
def test_urls_in_the_page_are_relative_to_the_stage(context, base):
    assert web.base_path(SimpleNamespace(context=context)) == base


def test_the_page_under_an_api_gateway_stage_points_every_url_under_the_stage():
    request = SimpleNamespace(context={"path": "/api/"}, headers={"accept": "text/html"})
    html = web.page(request).body
    assert '<base href="/api/">' in html
    urls = re.findall(r'(?:href|src)="([^"#]+)"', html)
    assert urls and all(url.startswith("/api/ui/") or url == "/api/" for url in urls), urls
    imports = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1))["imports"]
    assert set(imports) == {f"/api/ui/{name}" for name, kind in web.ASSETS.items() if kind == web.JS}


def test_the_content_security_policy_allows_exactly_the_inline_import_map(client):
    import base64
    import hashlib

    page = client.http.get("/", headers={"Accept": "text/html"})
    policy = page.headers["Content-Security-Policy"]
    inline = re.search(r'<script type="importmap">(.*?)</script>', page.body.decode(), re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "unsafe-inline" not in policy


@pytest.mark.parametrize(
    "name, content_type",
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_files_are_served_with_their_type_and_cached_by_version(client, name, content_type):
    plain = client.http.get(f"/ui/{name}")
    assert plain.status_code == 200 and plain.headers["Content-Type"] == content_type
    assert plain.headers["Cache-Control"] == "no-cache" and plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.body == (PROJECT_DIR / "chalicelib" / "web" / name).read_bytes()
    version = plain.headers["ETag"].strip('"')
    versioned = client.http.get(f"/ui/{name}?v={version}")
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    stale = client.http.get(f"/ui/{name}?v=0000000000000000")
    assert stale.headers["Cache-Control"] == "no-cache"
    again = client.http.get(f"/ui/{name}", headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status_code == 304 and again.body == b""


@pytest.mark.parametrize(
    "name", ["index.html", "nope.js", "..%2Fconfig.py", "%2E%2E%2Fhandlers%2Fweb.py", "APP.JS", "app.js.map"]
)
def test_only_the_allowed_files_are_served(client, name):
    answer = client.http.get(f"/ui/{name}")
    assert answer.status_code == 404
    assert json.loads(answer.body)["error"]["code"] == "not_found"


def test_every_file_of_the_page_is_allowed_and_every_import_names_an_allowed_file():
    on_disk = {p.name for p in (PROJECT_DIR / "chalicelib" / "web").iterdir()} - {web.SHELL}
    assert on_disk == set(web.ASSETS), "chalicelib/web and ASSETS must list the same files"
    for name in web.ASSETS:
        if not name.endswith(".js"):
            continue
        source = (PROJECT_DIR / "chalicelib" / "web" / name).read_text()
        for imported in re.findall(r'^import .* from "\./([^"]+)";$', source, re.M):
            assert imported in web.ASSETS, f"{name} imports {imported}, which /ui/ does not serve"
        assert ".innerHTML" not in source, f"{name}: build nodes with dom.h, never parse API text as markup"
        assert 'setAttribute("style"' not in source, f"{name}: inline style attributes break the CSP"


def test_the_api_reads_no_web_file_until_the_page_is_asked_for():
    code = "import app, json; from chalicelib.api import web; print(json.dumps(web.asset.cache_info().currsize))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PIXELAKE_STAGE": "local"},
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == 0


# Keys of free-form bodies (`dict[str, Any]` in chalicelib/api/responses.py) that the page shows:
# what produces them, so that a rename there is found here.
FREE_FORM_KEYS = {
    "confusion_matrix": "training metrics (chalicelib/ml/training.py)",
    "per_class": "training metrics (chalicelib/ml/training.py)",
    "dominant_colors": "the properties analyzer (chalicelib/imaging/analyzers.py)",
    "css_name": "the properties analyzer (chalicelib/imaging/analyzers.py)",
    "pixel_percentage": "the properties analyzer (chalicelib/imaging/analyzers.py)",
    "mask_value": "the segment analyzer (chalicelib/imaging/segmentation.py)",
    "manifest_key": "an import's source (chalicelib/services/imports.py)",
    "sample_items": "a training job's fit options (chalicelib/services/training.py)",
}


def test_the_page_reads_only_fields_the_api_documents():
    """API fields are snake_case, the page's own names camelCase: every snake_case property the
    page reads is a field of a response type, or a key of a free-form body named above."""
    import msgspec

    from chalicelib.api import responses

    documented = {
        field.encode_name
        for struct in vars(responses).values()
        if isinstance(struct, type) and issubclass(struct, msgspec.Struct)
        for field in msgspec.structs.fields(struct)
    }
    read = {}
    for path in (PROJECT_DIR / "chalicelib" / "web").glob("*.js"):
        for match in re.finditer(
            r'(?:\?\.|\.)([a-z][a-z0-9]*_[a-z0-9_]+)\b|\[\s*"([a-z][a-z0-9]*_[a-z0-9_]+)"\s*\]', path.read_text()
        ):
            read.setdefault(match.group(1) or match.group(2), path.name)
    assert len(read) > 10
    assert {name: where for name, where in read.items() if name not in documented | set(FREE_FORM_KEYS)} == {}
    sources = {
        name: (PROJECT_DIR / where.split("(")[1].rstrip(")")).read_text() for name, where in FREE_FORM_KEYS.items()
    }
    assert [name for name, source in sources.items() if name not in source] == []
