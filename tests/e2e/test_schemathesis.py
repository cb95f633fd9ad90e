"""schemathesis against GET /openapi.json on the running local stack: no request gets a 5xx.

For every operation the API declares, schemathesis generates valid (positive) and invalid
(negative) requests from the document the stack serves; a bounded number of examples per
operation and mode keeps the run under two minutes. Hypothesis drives the generation directly
(`operation.as_strategy`): schemathesis's pytest plugin does not run under pytest 9.
"""

import os
import tempfile
from collections import Counter
from pathlib import Path

import pytest
import requests
import schemathesis
from e2e_helpers import StackProcess
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import app  # noqa: F401  (importing the app declares every route into ROUTES)
from chalicelib.api.routing import ROUTES

pytestmark = pytest.mark.e2e

EXAMPLES = 20  # per operation and mode: about 1000 requests, under a minute
STATUSES: Counter = Counter()


@pytest.fixture(scope="module")
def open_stack():
    """The local stack as `make dev` runs it (PIXELAKE_AUTH=off), with `wait` capped at 1 s."""
    saved = os.environ.get("PIXELAKE_MAX_WAIT")
    os.environ["PIXELAKE_MAX_WAIT"] = "1"  # a generated ?wait=25 must not hold the run for 25 s
    try:
        stack = StackProcess(Path(tempfile.mkdtemp(prefix="pixelake-schemathesis-"))).start()
    finally:
        if saved is None:
            os.environ.pop("PIXELAKE_MAX_WAIT")
        else:
            os.environ["PIXELAKE_MAX_WAIT"] = saved
    yield stack
    stack.stop()
    print(f"\nschemathesis: {sum(STATUSES.values())} requests, statuses {dict(sorted(STATUSES.items()))}")


@pytest.fixture(scope="module")
def api_schema(open_stack):
    return schemathesis.openapi.from_url(f"{open_stack.url}/openapi.json")


@pytest.fixture(scope="module")
def signed_in(open_stack):
    """A user with a ready image (so generated ids can hit a real one), and the header that acts as them."""
    from sample_images import jpeg_bytes

    account = {"email": "fuzz@example.com", "password": "fuzzing the api for 5xx"}
    assert requests.post(f"{open_stack.url}/api/auth/register", json=account, timeout=10).status_code == 201
    token = requests.post(f"{open_stack.url}/api/auth/token", json=account, timeout=10).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    image = requests.post(
        f"{open_stack.url}/api/upload", files={"file": ("a.jpg", jpeg_bytes((96, 64)))}, headers=headers, timeout=10
    ).json()
    open_stack.wait_until_processed(image["id"], headers=headers)
    return headers


CREDENTIAL_HEADERS = ("authorization", "x-api-key")
# positive and negative: generated requests sent as a signed-in user, so they reach validation and
# the views; credentials: positive requests with the credentials schemathesis made up (garbage).
MODES = {
    "positive": GenerationMode.POSITIVE,
    "negative": GenerationMode.NEGATIVE,
    "credentials": GenerationMode.POSITIVE,
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    "method, path", [(r.method, r.path) for r in ROUTES], ids=[f"{r.method} {r.path}" for r in ROUTES]
)
def test_no_generated_request_gets_a_server_error(api_schema, open_stack, signed_in, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=MODES[mode]))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        if mode != "credentials":
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in CREDENTIAL_HEADERS}
            case.headers.update(signed_in)
        response = case.call_and_validate(base_url=open_stack.url, checks=[not_a_server_error], timeout=30)
        STATUSES[response.status_code] += 1

    try:
        run()
    except Unsatisfiable:
        pytest.skip("nothing in this operation can be made invalid")


def test_the_stack_survived_the_run(open_stack):
    assert requests.get(f"{open_stack.url}/health", timeout=5).status_code == 200
    assert sum(STATUSES.values()) >= 10 * len(ROUTES)
    assert not any(status >= 500 for status in STATUSES)
    errors = [line for line in open_stack.log_path.read_text().splitlines() if " ERROR " in line or "- ERROR -" in line]
    assert errors == []  # nothing logged as an error either (an audit row that failed to write, say)
