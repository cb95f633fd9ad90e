"""Apply Alembic migrations (local stack start, tests, the deploy step) and render them as SQL."""

from __future__ import annotations

import io
import sys
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_HEADER = """-- Pixelake database schema, generated from the Alembic migrations by `make schema`.
-- Do not edit: change chalicelib/db/tables.py, add a migration, regenerate.
-- Load on a fresh PostgreSQL 12+:  psql -v ON_ERROR_STOP=1 -f database_schema.sql
"""


def alembic_config(database_url: str, output_buffer=None):
    from alembic.config import Config

    from chalicelib.db.session import normalize_url

    config = Config(output_buffer=output_buffer)
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def schema_sql() -> str:
    """The migrations as one SQL script (Alembic's offline mode; no database needed)."""
    from alembic import command

    buffer = io.StringIO()
    command.upgrade(alembic_config("postgresql+pg8000://offline/pixelake", buffer), "head", sql=True)
    return SCHEMA_HEADER + buffer.getvalue()


if __name__ == "__main__":
    if sys.argv[1:] == ["--sql"]:
        sys.stdout.write(schema_sql())
    else:
        import os

        upgrade(os.environ["DATABASE_URL"])
