"""Apply Alembic migrations (local stack start, tests, and the deploy step)."""
from __future__ import annotations

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str):
    from alembic.config import Config

    from chalicelib.db.session import normalize_url

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


if __name__ == "__main__":
    import os

    upgrade(os.environ["DATABASE_URL"])
