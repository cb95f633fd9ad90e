"""The web page in Chromium against the local stack: upload, gallery, image page, forms, dashboard.

Screenshots of the main pages are saved under test-artifacts/screenshots/.
"""

from __future__ import annotations

import base64
import re

import pytest
import requests
from e2e_helpers import wait_for

pytestmark = pytest.mark.e2e
TIMEOUT_MS = 60_000


def images_named(stack, filename: str) -> list[dict]:
    items = requests.get(f"{stack.url}/api/images", params={"limit": 100}, timeout=10).json()["items"]
    return [image for image in items if image["filename"] == filename]


@pytest.fixture(scope="module")
def astronaut(stack, sample_files):
    """The astronaut photo, ready (uploaded through the API when no earlier test did it through the page)."""
    found = [image for image in images_named(stack, "astronaut.jpg") if image["status"] == "ready"]
    if found:
        return found[0]
    data = sample_files["astronaut"].read_bytes()
    post = requests.post(
        f"{stack.url}/api/uploads",
        json={"filename": "astronaut.jpg", "content_type": "image/jpeg", "size": len(data)},
        timeout=10,
    ).json()
    requests.post(post["url"], data=post["fields"], files={"file": ("astronaut.jpg", data)}, timeout=10)
    return stack.wait_until_processed(post["image_id"])


def test_the_api_root_still_answers_json_to_api_clients(stack):
    answer = requests.get(f"{stack.url}/", timeout=10)
    assert answer.headers["Content-Type"] == "application/json" and answer.json()["name"] == "Pixelake"


def test_upload_through_the_page_and_see_the_thumbnails_appear(stack, page, sample_files, screenshot):
    page.goto(stack.url)
    page.get_by_role("heading", name="Images", level=1).wait_for()
    page.set_input_files("#file-input", [str(sample_files["astronaut"]), str(sample_files["coffee"])])

    done = page.locator(".upload-item.is-done")
    done.nth(1).wait_for(timeout=TIMEOUT_MS)
    assert page.locator(".upload-item.is-failed").count() == 0
    assert [
        int(value) for value in page.locator(".upload-item progress").evaluate_all("(all) => all.map((p) => p.value)")
    ] == [100, 100]

    for name in ("astronaut.jpg", "coffee.jpg"):
        tile = page.locator(".tile[data-status='ready']", has=page.get_by_role("img", name=name)).first
        tile.wait_for(timeout=TIMEOUT_MS)
        loaded = tile.locator("img").evaluate("(img) => img.complete && img.naturalWidth > 0")
        assert loaded, f"the thumbnail of {name} did not load from storage"
    # Status changes are announced to screen readers.
    wait_for(lambda: page.locator("#announcer").text_content().strip(), timeout=10, what="an announcement")
    screenshot(page, "gallery")


def test_files_dropped_on_the_zone_are_uploaded(stack, page, sample_files):
    page.goto(stack.url)
    zone = page.locator(".drop-zone")
    zone.wait_for()
    payload = base64.b64encode(sample_files["coffee"].read_bytes()).decode()
    # A real drop event carrying a File, as the browser builds it from a drag out of a file manager.
    zone.evaluate(
        """(zone, payload) => {
        const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }
    }""",
        payload,
    )
    page.locator(".upload-item.is-done", has_text="dropped.jpg").wait_for(timeout=TIMEOUT_MS)
    image = wait_for(lambda: next(iter(images_named(stack, "dropped.jpg")), None), timeout=10, what="the dropped image")
    assert stack.wait_until_processed(image["id"])["status"] == "ready"


def test_the_file_input_is_reachable_with_the_keyboard(stack, page):
    page.goto(stack.url)
    page.locator("#file-input").wait_for(state="attached")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    else:
        pytest.fail("Tab never reached the file input")
    outline = page.locator("label[for='file-input']").evaluate("(label) => getComputedStyle(label).outlineStyle")
    assert outline == "solid", "the focused file input must show a visible focus ring on its button"


def test_the_image_page_draws_the_face_box_over_the_astronaut(stack, page, astronaut, screenshot):
    face = requests.get(f"{stack.url}/api/images/{astronaut['id']}", timeout=10).json()["analyses"]["faces"]["faces"][
        0
    ]["box"]
    page.goto(f"{stack.url}/#/images/{astronaut['id']}")
    box = page.locator(".layer-faces .box-face").first
    box.wait_for(timeout=TIMEOUT_MS)
    picture = page.locator("img.subject")
    picture.evaluate("(img) => img.decode()")
    shown = picture.bounding_box()
    drawn = box.bounding_box()
    scale = shown["width"] / astronaut["width"]
    # The box sits where the detector found the face, scaled from stored-image pixels to the display.
    assert drawn["x"] - shown["x"] == pytest.approx(face["x"] * scale, abs=2)
    assert drawn["y"] - shown["y"] == pytest.approx(face["y"] * scale, abs=2)
    assert drawn["width"] == pytest.approx(face["width"] * scale, abs=2)
    assert drawn["x"] + drawn["width"] <= shown["x"] + shown["width"] + 1
    assert re.match(r"face \d+%", box.get_attribute("aria-label"))
    # The face is listed in text too, and the layer can be switched off.
    assert page.locator(".found-list li").first.text_content().startswith("face")
    page.get_by_label(re.compile(r"^Faces \(\d+\)$")).uncheck()
    assert not box.is_visible()
    page.get_by_label(re.compile(r"^Faces \(\d+\)$")).check()
    # Dominant colours from the ingest analysis are shown as swatches.
    assert page.locator(".swatches li").count() >= 3
    screenshot(page, "image")


def test_the_image_page_lists_a_near_duplicate_from_the_api(stack, page, astronaut, sample_files):
    import io

    from PIL import Image

    smaller = io.BytesIO()
    Image.open(sample_files["astronaut"]).resize((256, 256)).save(smaller, "JPEG", quality=50)
    copy = requests.post(
        f"{stack.url}/api/upload", files={"file": ("astronaut-copy.jpg", smaller.getvalue())}, timeout=10
    ).json()
    assert stack.wait_until_processed(copy["id"])["status"] == "ready"
    page.goto(f"{stack.url}/#/images/{astronaut['id']}")
    entry = page.locator(".duplicates li", has_text="astronaut-copy.jpg")
    entry.wait_for(timeout=TIMEOUT_MS)
    assert re.search(r"(\d+ bits apart|identical hash)", entry.text_content())
    assert entry.locator("a").get_attribute("href") == f"#/images/{copy['id']}"


def test_run_an_operation_from_the_generated_form(stack, page, astronaut):
    page.goto(f"{stack.url}/#/images/{astronaut['id']}")
    form = page.locator("#run-operation")
    form.wait_for(timeout=TIMEOUT_MS)
    page.select_option("#run-operation-name", "resize")
    # The parameters come from the registry's declaration: resize declares width and height.
    form.get_by_label("width").fill("128")
    form.get_by_role("button", name="Run").click()
    status = form.locator(".form-status")
    status.filter(has_text="queued").wait_for(timeout=TIMEOUT_MS)
    task_id = int(re.search(r"#(\d+)", status.text_content()).group(1))
    row = page.locator(f"tr[data-task-id='{task_id}'][data-status='succeeded']")
    row.wait_for(timeout=TIMEOUT_MS)
    assert row.locator("img").evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 128
    task = requests.get(f"{stack.url}/api/tasks/{task_id}", timeout=10).json()
    assert task["operation"] == "resize" and task["params"]["width"] == 128 and task["result"]["width"] == 128


def test_an_out_of_range_parameter_is_refused_with_the_apis_reason(stack, page, astronaut):
    page.goto(f"{stack.url}/#/images/{astronaut['id']}")
    page.locator("#run-analysis").wait_for(timeout=TIMEOUT_MS)
    page.select_option("#run-analysis-name", "properties")
    field = page.locator("#run-analysis").get_by_label("colors")
    field.evaluate("(input) => { input.removeAttribute('max'); input.value = '99'; }")  # past the browser's own check
    page.locator("#run-analysis").get_by_role("button", name="Analyze").click()
    page.locator("#run-analysis .form-status.is-error").filter(has_text="colors").wait_for(timeout=10_000)


def test_a_segmentation_is_drawn_as_a_coloured_mask(stack, page, astronaut):
    page.goto(f"{stack.url}/#/images/{astronaut['id']}")
    page.locator("#run-analysis").wait_for(timeout=TIMEOUT_MS)
    page.select_option("#run-analysis-name", "segment")
    page.locator("#run-analysis").get_by_label("k", exact=True).fill("3")
    page.locator("#run-analysis").get_by_role("button", name="Analyze").click()
    mask = page.locator("canvas.mask[data-ready='true']")
    mask.wait_for(timeout=TIMEOUT_MS)
    # Coloured per segment means the browser could read the mask's pixels: storage answers with CORS.
    assert mask.get_attribute("data-coloured") == "true"
    assert page.locator(".legend li").count() == 3


def test_the_dashboard_draws_charts_from_the_statistics(stack, page, astronaut, screenshot):
    page.goto(f"{stack.url}/#/stats")
    page.locator("figure.chart svg").first.wait_for(timeout=TIMEOUT_MS)
    titles = page.locator("figure.chart figcaption").all_text_contents()
    assert "Images by status" in titles and "Tasks by operation and status" in titles
    ready = requests.get(f"{stack.url}/api/stats", timeout=10).json()["images"]["ready"]
    assert page.locator(".tile-stat", has_text="Ready").locator(".tile-value").text_content() == str(ready)
    assert page.locator("svg.bar-chart rect.bar").count() >= 2
    assert page.locator("figure.chart svg[role='img'] title").count() >= 2  # named for screen readers
    screenshot(page, "dashboard")


@pytest.mark.parametrize("route, title", [("datasets", "Datasets"), ("training", "Training"), ("models", "Models")])
def test_pages_for_the_registries_work_or_say_they_are_not_available_yet(stack, page, route, title, screenshot):
    page.goto(f"{stack.url}/#/{route}")
    page.get_by_role("heading", name=title, level=1).wait_for(timeout=TIMEOUT_MS)
    assert page.locator(".notice-error").count() == 0 and "Something went wrong" not in page.content()
    missing = page.get_by_text("not available on this deployment yet").count()
    ready = page.locator("form").count()
    assert missing or ready, f"the {route} page shows neither its content nor that it is not available yet"
    screenshot(page, route)


def test_usable_on_a_phone(stack, browser, astronaut, screenshot):
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    phone = context.new_page()
    try:
        for name, path, picture in (
            ("gallery-phone", "/", ".tile img"),
            ("image-phone", f"/#/images/{astronaut['id']}", ".layer-faces .box-face"),
        ):
            phone.goto(f"{stack.url}{path}")
            phone.locator(picture).first.wait_for(timeout=TIMEOUT_MS)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} scrolls sideways on a 360 px screen ({width} px)"
            screenshot(phone, name)
    finally:
        context.close()


def test_landmarks_labels_and_alt_text(stack, page, astronaut):
    page.goto(f"{stack.url}/#/images/{astronaut['id']}")
    page.locator("#run-operation").wait_for(timeout=TIMEOUT_MS)
    for role in ("banner", "navigation", "main", "contentinfo"):
        assert page.get_by_role(role).count() >= 1, role
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map((el) => el.outerHTML)""")
    assert unlabelled == []
    assert page.evaluate("[...document.images].filter((img) => !img.hasAttribute('alt')).length") == 0
    assert page.locator("[aria-live]").count() >= 1
    assert page.title().startswith("astronaut.jpg")


def test_sign_in_when_the_api_requires_it(stack, page):
    """A real account signs in with a real token. The stack runs with auth off (credentials that are
    sent are still checked), so the API's 401 for a request without credentials is simulated."""
    import uuid

    email, password = f"ada-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery staple"
    assert (
        requests.post(
            f"{stack.url}/api/auth/register", json={"email": email, "password": password}, timeout=10
        ).status_code
        == 201
    )
    seen, token_requests = [], []

    def images(route):
        authorization = route.request.headers.get("authorization")
        seen.append(authorization)
        if authorization:
            route.continue_()
        else:
            route.fulfill(status=401, json={"error": {"code": "unauthorized", "message": "sign in first"}})

    def token(route):
        token_requests.append(route.request.post_data_json)
        route.continue_()

    page.route(re.compile(r".*/api/images(\?.*)?$"), images)
    page.route(re.compile(r".*/api/auth/token$"), token)
    page.goto(stack.url)
    page.get_by_role("heading", name="Sign in", level=1).wait_for(timeout=TIMEOUT_MS)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Images", level=1).wait_for(timeout=TIMEOUT_MS)
    page.locator(".gallery-section").wait_for(timeout=TIMEOUT_MS)
    assert token_requests == [{"email": email, "password": password}]
    assert seen[0] is None and seen[-1].startswith("Bearer ")
    page.locator("#account", has_text=email).wait_for(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in", level=1).wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate("sessionStorage.getItem('pixelake.token')") is None


def test_a_training_job_shows_live_progress_then_its_confusion_matrix(stack, page, screenshot):
    """The training-jobs API is simulated (its own branch builds it): running at 40%, then finished."""
    job = {
        "id": 7,
        "dataset_id": 2,
        "model_name": "digits",
        "algorithm": "logistic_regression",
        "features": "hog",
        "params": {"C": 1.0},
        "status": "running",
        "progress": {"percent": 40, "stage": "extracting features"},
        "metrics": {},
        "created_at": "2026-11-24T10:00:00Z",
    }
    finished = {
        **job,
        "status": "succeeded",
        "progress": {"percent": 100, "stage": "done"},
        "metrics": {
            "accuracy": 0.9611,
            "macro_f1": 0.9605,
            "confusion_matrix": {"labels": ["0", "1", "2"], "matrix": [[50, 1, 0], [2, 47, 3], [0, 4, 45]]},
        },
    }
    answers = [job, job]

    def training_job(route):
        route.fulfill(status=200, json=answers.pop(0) if answers else finished)

    page.route(re.compile(r".*/api/training-jobs/7$"), training_job)
    page.goto(f"{stack.url}/#/training/7")
    progress = page.locator("#job-progress")
    progress.wait_for(timeout=TIMEOUT_MS)
    assert progress.get_attribute("value") == "40"
    page.locator("svg.confusion").wait_for(timeout=TIMEOUT_MS)
    assert progress.get_attribute("value") == "100"
    cells = page.locator("svg.confusion rect.cell")
    assert cells.count() == 9
    assert page.locator("svg.confusion text.cell-label").all_text_contents()[:3] == ["50", "1", "0"]
    assert "142 of 152" in page.locator("svg.confusion desc").text_content()
    assert "accuracy" in page.locator(".facts").last.text_content()
    screenshot(page, "training-job")


def test_a_training_job_started_from_the_form_is_fitted_as_its_fit_options_say(stack, page):
    """A real job on the stack's own Dask cluster: a dataset of two colours, sgd forced to fit
    incrementally with a sample size of its own through the form; the API records both options
    and the metrics say the fit was incremental."""
    import io

    from PIL import Image

    me = requests.get(f"{stack.url}/api/me", timeout=10).json()
    prefix = f"datasets/{me['id']}/page-training/"
    s3 = stack.s3()
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        for i in range(8):
            buffer = io.BytesIO()
            Image.new("RGB", (16, 16), tuple(max(0, c - 10 * i) for c in colour)).save(buffer, format="PNG")
            s3.put_object(Bucket="pixelake-local", Key=f"{prefix}{label}/{i}.png", Body=buffer.getvalue())
    dataset = requests.post(f"{stack.url}/api/datasets", json={"name": "page-training", "prefix": prefix}, timeout=30)
    assert dataset.status_code == 201, dataset.text

    page.goto(f"{stack.url}/#/training?dataset={dataset.json()['id']}")
    page.get_by_label("Model name").fill("page-colours")
    page.get_by_label("Algorithm").fill("sgd")
    page.get_by_label("Features").fill("color_histogram")
    page.get_by_label("Fit").select_option("incremental")
    page.get_by_label("Sample items").fill("300")
    page.get_by_role("button", name="Start training").click()
    page.wait_for_url(re.compile(r".*#/training/\d+$"), timeout=TIMEOUT_MS)
    job_id = int(page.url.rsplit("/", 1)[1])
    assert requests.get(f"{stack.url}/api/training-jobs/{job_id}", timeout=10).json()["fit"] == {
        "method": "incremental",
        "sample_items": 300,
    }

    def finished():
        job = requests.get(f"{stack.url}/api/training-jobs/{job_id}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, timeout=180, what=f"training job {job_id}")
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["fit"]["method"] == "incremental"
    facts = page.locator(".facts").first
    facts.get_by_text("Fitted").wait_for(timeout=TIMEOUT_MS)
    shown = dict(zip(facts.locator("dt").all_text_contents(), facts.locator("dd").all_text_contents(), strict=True))
    assert shown["Fit"] == "incremental, sample of up to 300 items"
    assert shown["Fitted"] == job["metrics"]["fit"]["description"] and shown["Fitted"].startswith("incremental")


def test_an_import_started_from_the_page_shows_its_counts_and_the_files_that_failed(stack, page, screenshot):
    import io

    from PIL import Image

    me = requests.get(f"{stack.url}/api/me", timeout=10).json()
    prefix = f"datasets/{me['id']}/page-import/"
    s3 = stack.s3()
    for i in range(6):
        buffer = io.BytesIO()
        Image.new("RGB", (12 + i, 9), (40 * i, 120, 200)).save(buffer, format="PNG")
        s3.put_object(Bucket="pixelake-local", Key=f"{prefix}{i}.png", Body=buffer.getvalue())
    s3.put_object(Bucket="pixelake-local", Key=f"{prefix}readme.txt", Body=b"words, not pixels")

    page.goto(f"{stack.url}/#/imports")
    page.get_by_label("Folder in your storage").fill(prefix)
    page.get_by_role("button", name="Start import").click()
    page.get_by_role("heading", name="Files that failed (1)").wait_for(timeout=TIMEOUT_MS)
    assert page.locator("#import-progress").get_attribute("value") == "100"
    failures = page.locator("#import-failures li").all_text_contents()
    assert (
        len(failures) == 1
        and failures[0].startswith(f"{prefix}readme.txt: ")
        and "not a supported image" in failures[0]
    )
    facts = dict(zip(page.locator("dt").all_text_contents(), page.locator("dd").all_text_contents(), strict=True))
    assert (facts["Listed"], facts["Ready"], facts["Failed"], facts["Skipped"]) == ("7", "6", "1", "0")
    assert "completed" in facts["Status"]
    screenshot(page, "import")
    page.get_by_role("link", name="Imports").first.click()
    page.locator("table a", has_text="#").first.wait_for(timeout=TIMEOUT_MS)
    assert prefix in page.locator("table").text_content()


def test_a_running_import_is_cancelled_with_its_button(stack, page):
    """The import is simulated running (a real one of a few files ends before a click): the button
    posts the cancel and the page shows the answer, the button gone."""
    running = {
        "id": 9,
        "status": "running",
        "source": {"prefix": "datasets/1/big/"},
        "listed": 400,
        "listing_done": False,
        "registered": 180,
        "ready": 180,
        "failed": 0,
        "skipped": 0,
        "partitions": 2,
        "partitions_done": 1,
        "progress": {"percent": 22, "finished": 180},
        "error": None,
        "created_at": "2026-12-01T10:00:00Z",
        "started_at": "2026-12-01T10:00:01Z",
        "finished_at": None,
        "duration_ms": None,
    }
    cancelled = {**running, "status": "cancelled", "error": "cancelled", "progress": {"percent": 100, "finished": 180}}
    cancels = []

    def an_import(route):
        route.fulfill(status=200, json=cancelled if cancels else running)

    def cancel(route):
        cancels.append(route.request.method)
        route.fulfill(status=200, json=cancelled)

    page.route(re.compile(r".*/api/imports/9$"), an_import)
    page.route(re.compile(r".*/api/imports/9/cancel$"), cancel)
    page.goto(f"{stack.url}/#/imports/9")
    page.get_by_role("button", name="Cancel import").click()
    page.get_by_text("cancelled", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    assert cancels == ["POST"]
    assert page.get_by_role("button", name="Cancel import").count() == 0
    assert page.locator("#import-progress").get_attribute("value") == "100"
