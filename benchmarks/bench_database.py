"""GET /api/stats and GET /api/images with 1,000,000 result rows in PostgreSQL.

A scratch database `pixelake_bench` is created on the server of BENCH_DATABASE_URL (default:
postgresql://postgres@127.0.0.1:5432/postgres; the embedded PostgreSQL when none answers),
migrated to head, bulk-loaded with generate_series (one user, 100,000 images, 1,000,000
tasks over 180 days with one result each), then the real handlers are called through
chalice.test.Client and each SQL statement they ran is shown with EXPLAIN (ANALYZE, BUFFERS).
The database is dropped at the end.

    .venv/bin/python benchmarks/bench_database.py [--rows 1000000] [--requests 40]   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from timing import percentile  # noqa: E402

DATABASE = "pixelake_bench"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
OPERATIONS = ("properties", "faces", "phash", "resize", "thumbnail", "classify")


def server_url() -> tuple[str, object | None]:
    """An admin URL, and the embedded server started for it (None for a running server)."""
    from sqlalchemy import create_engine, text

    from chalicelib.db.session import normalize_url

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER)
    try:
        engine = create_engine(normalize_url(url))
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return url, None
    except Exception:
        import tempfile

        from infra.local.postgres import EmbeddedPostgres

        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="pixelake-bench-pg-")) / "data")
        return server.start(), server


def load(url: str, rows: int) -> dict:
    """Bulk rows through generate_series; returns counts and seconds."""
    from sqlalchemy import create_engine, text

    from chalicelib.db.session import normalize_url
    from chalicelib.db.users import LOCAL_USER_EMAIL

    images = max(1, rows // 10)
    operations = "ARRAY[" + ",".join(f"'{op}'" for op in OPERATIONS) + "]"
    statements = [
        # The user requests act as while authentication is off (chalicelib.db.users).
        f"INSERT INTO users (email) VALUES ('{LOCAL_USER_EMAIL}')",
        f"""INSERT INTO images (owner_id, bucket, key, filename, status, format, width, height, phash, created_at)
            SELECT (SELECT min(id) FROM users), 'pixelake-local', 'uploads/1/' || g || '.jpg', g || '.jpg',
                   CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'ready' END, 'jpeg', 4000, 3000,
                   (random() * 9e18)::bigint, now() - (g % 180) * interval '1 day'
            FROM generate_series(1, {images}) g""",
        f"""INSERT INTO processing_tasks (owner_id, image_id, kind, operation, status, queued_at, started_at,
                                          finished_at, duration_ms)
            SELECT (SELECT min(id) FROM users), (SELECT min(id) FROM images) + (g % {images}), 'analysis',
                   ({operations})[1 + g % {len(OPERATIONS)}],
                   CASE WHEN g % 97 = 0 THEN 'failed' ELSE 'succeeded' END,
                   now() - (g % 180) * interval '1 day', now() - (g % 180) * interval '1 day',
                   now() - (g % 180) * interval '1 day', (20 + random() * 400)::int
            FROM generate_series(1, {rows}) g""",
        """INSERT INTO results (task_id, image_id, kind, label, confidence, data)
           SELECT id, image_id, 'analysis', 'face', random(), jsonb_build_object('count', id % 3)
           FROM processing_tasks""",
        "ANALYZE",
    ]
    engine = create_engine(normalize_url(url))
    start = time.perf_counter()
    with engine.begin() as conn:
        for statement in statements[:-1]:
            conn.execute(text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(statements[-1]))
        counts = {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("images", "processing_tasks", "results")
        }
    engine.dispose()
    return {"rows": counts, "load_s": round(time.perf_counter() - start, 1)}


class StatementLog:
    """The SQL statements the engine runs while active (for EXPLAIN)."""

    def __init__(self):
        self.statements: list[tuple[str, object]] = []
        self.active = False

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if self.active and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.statements.append((statement, parameters))


def explain(engine, statements) -> list[str]:
    plans = []
    with engine.connect() as conn:
        for statement, parameters in statements:
            rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).all()
            plans.append(statement.strip() + "\n\n" + "\n".join(r[0] for r in rows))
    return plans


def time_requests(url: str, requests: int) -> dict:
    from chalice.test import Client
    from sqlalchemy import event

    from chalicelib.config import reset_settings
    from chalicelib.db import session as db_session
    from chalicelib.db.session import normalize_url

    os.environ.update(
        DATABASE_URL=normalize_url(url),
        PIXELAKE_STAGE="local",
        PIXELAKE_AUTH="off",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    reset_settings()
    db_session.reset_engine()
    import app as chalice_app

    log = StatementLog()
    engine = db_session.get_engine()
    event.listen(engine, "before_cursor_execute", log)
    results = {}
    with Client(chalice_app.app, stage_name="local", project_dir=str(REPO)) as client:
        first = client.http.get("/api/images?limit=20").json_body
        middle_cursor = str(first["items"][0]["id"] // 2)
        paths = {
            "GET /api/stats": "/api/stats",
            "GET /api/images?limit=20": "/api/images?limit=20",
            "GET /api/images?limit=20&cursor=<middle>": f"/api/images?limit=20&cursor={middle_cursor}",
        }
        for name, path in paths.items():
            response = client.http.get(path)
            assert response.status_code == 200, (path, response.body[:300])
            log.statements.clear()
            log.active = True
            client.http.get(path)
            log.active = False
            statements = list(log.statements)
            times = []
            for _ in range(requests):
                start = time.perf_counter()
                client.http.get(path)
                times.append((time.perf_counter() - start) * 1000)
            results[name] = {
                "p50_ms": round(percentile(times, 50), 1),
                "p95_ms": round(percentile(times, 95), 1),
                "max_ms": round(max(times), 1),
                "requests": requests,
                "plans": explain(engine, statements),
            }
    event.remove(engine, "before_cursor_execute", log)
    db_session.reset_engine()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    print(json.dumps(run(args.rows, args.requests), indent=2))


def run(rows: int, requests: int) -> dict:
    from sqlalchemy.engine import make_url

    from chalicelib.db.migrate import upgrade
    from infra.local.postgres import create_database

    sys.path.insert(0, str(REPO / "tests"))
    from databases import drop_database

    from chalicelib.db.session import normalize_url

    admin, embedded = server_url()
    admin = normalize_url(admin)
    url = make_url(admin).set(database=DATABASE).render_as_string(hide_password=False)
    try:
        drop_database(admin, DATABASE)
        create_database(admin, DATABASE)
        upgrade(url)
        report = load(url, rows)
        report["server"] = "embedded" if embedded else make_url(admin).render_as_string(hide_password=True)
        report["endpoints"] = time_requests(url, requests)
        report["target_p95_ms"] = 50
        return report
    finally:
        drop_database(admin, DATABASE)
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    main()
