"""Is every component this deployment needs reachable: the database and the bucket."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib import storage
from chalicelib.db.session import session_scope


@dataclass(frozen=True)
class Health:
    components: dict[str, dict[str, Any]]  # name → {status: up, latency_ms} or {status: down, error}

    @property
    def healthy(self) -> bool:
        return all(c["status"] == "up" for c in self.components.values())


def probe(check: Callable[[], object]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # any failure means the component is down; say which and why
        return {"status": "down", "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    from sqlalchemy import text

    with session_scope() as session:
        session.execute(text("SELECT 1"))


def check() -> Health:
    return Health({"database": probe(_database), "storage": probe(storage.ping)})
