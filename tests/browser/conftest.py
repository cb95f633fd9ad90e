"""A real browser (Debian's Chromium through Playwright) against the local stack in a subprocess."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from e2e_helpers import stack, stack_home  # noqa: F401  (fixtures)

PROJECT_DIR = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_DIR / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Never `playwright install` (it downloads a browser build): Debian's chromium, installed by `make browser`.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class PageErrors(list):
    """Uncaught script errors on the page: every test fails if there is one."""


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors = PageErrors()
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.errors = errors
    yield opened
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture(scope="session")
def screenshot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def jpeg_file(directory: Path, name: str, array) -> Path:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    path = directory / name
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory):
    from skimage import data

    directory = tmp_path_factory.mktemp("browser-uploads")
    return {
        "astronaut": jpeg_file(directory, "astronaut.jpg", data.astronaut()),
        "coffee": jpeg_file(directory, "coffee.jpg", data.coffee()),
    }
