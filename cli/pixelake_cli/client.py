"""The Pixelake API over HTTP: one requests session, JSON in and out, errors as ApiError."""

from __future__ import annotations

import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

DEFAULT_API_URL = "http://127.0.0.1:5000"
TIMEOUT_S = 60


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, body: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body

    @property
    def endpoint_missing(self) -> bool:
        """The deployment has no such route (yet): API Gateway and chalice answer 403/404 without
        Pixelake's error envelope for unknown paths, and 405 for an unknown method."""
        return self.status in (403, 404, 405) and not (isinstance(self.body, dict) and "error" in self.body)

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status}, {self.code})" if self.status else self.message


class PixelakeClient:
    def __init__(self, api_url: str = DEFAULT_API_URL, api_key: str | None = None, token: str | None = None):
        self.api_url = api_url.rstrip("/")
        self.session = requests.Session()
        # Reads are retried on connection errors and 502/503/504; writes are not (they are not idempotent).
        retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504), allowed_methods=("GET", "HEAD"))
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif api_key:
            self.session.headers["X-API-Key"] = api_key

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        files: dict | None = None,
        data: dict | None = None,
        timeout: float = TIMEOUT_S,
    ) -> Any:
        url = f"{self.api_url}/{path.lstrip('/')}"
        try:
            response = self.session.request(
                method, url, json=json, params=params, files=files, data=data, timeout=timeout
            )
        except requests.ConnectionError as exc:
            raise ApiError(0, "connection_error", f"cannot reach {self.api_url}: {exc.__class__.__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok:
            return body
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
            raise ApiError(
                response.status_code, error.get("code", "error"), error.get("message", response.reason), body
            )
        message = body.get("message") if isinstance(body, dict) and body.get("message") else response.reason
        raise ApiError(response.status_code, f"http_{response.status_code}", str(message), body)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs)

    def list_all(self, path: str, *, limit: int | None = None, **params: Any) -> list[dict]:
        """Every item of a cursor-paginated list (up to `limit`)."""
        items: list[dict] = []
        cursor = None
        while True:
            page = self.get(path, limit=100, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items

    def wait_for_task(self, task_id: int, timeout: float = 600) -> dict:
        """Long-poll a task until it finishes (GET /api/tasks/{id}?wait=20)."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get(f"api/tasks/{task_id}", wait=min(20, max(1, int(deadline - time.monotonic()))))
            if task["status"] in ("succeeded", "failed") or time.monotonic() >= deadline:
                return task

    def wait_for_images(self, image_ids: list[int], timeout: float = 600, interval: float = 1.0) -> dict[int, dict]:
        """Poll until every image is ready or failed (or the timeout passes); returns the last state of each."""
        deadline = time.monotonic() + timeout
        state: dict[int, dict] = {}
        waiting = list(image_ids)
        while waiting:
            for image_id in list(waiting):
                image = self.get(f"api/images/{image_id}")
                state[image_id] = image
                if image["status"] in ("ready", "failed"):
                    waiting.remove(image_id)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(interval)
        return state
