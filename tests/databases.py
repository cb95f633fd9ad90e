"""Fresh databases on a running PostgreSQL server, for tests."""

from __future__ import annotations


def create_fresh_database(admin_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    from infra.local.postgres import create_database

    create_database(admin_url, name)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
