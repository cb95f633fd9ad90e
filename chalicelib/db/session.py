"""The engine and sessions: created lazily, once per process (one per Lambda container)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from chalicelib.config import get_settings
from chalicelib.errors import DatabaseNotConfigured

# SQLAlchemy is imported by the functions that need it: the api's handlers import
# session_scope at module level, and its import must stay cheap (issue 9: cold starts).
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Any postgres URL → the pg8000 dialect (pure Python: nothing to compile into a layer)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+pg8000")
    return parsed.render_as_string(hide_password=False)


@functools.cache
def get_engine() -> Engine:
    from sqlalchemy import create_engine

    url = get_settings().database_url
    if not url:
        raise DatabaseNotConfigured("DATABASE_URL is not set")
    # A Lambda container serves one request at a time: one pooled connection, a few overflow
    # ones for the local stack's threads, pre-ping so a connection RDS Proxy dropped while the
    # container was frozen is replaced instead of failing the request.
    from chalicelib.aws_secrets import database_connect_args, refresh_password_on_connect

    engine = create_engine(
        normalize_url(url),
        pool_size=1,
        max_overflow=4,
        pool_pre_ping=True,
        pool_recycle=280,
        pool_timeout=10,
        connect_args={"timeout": 10, **database_connect_args()},  # TLS to RDS Proxy in AWS
        hide_parameters=True,  # errors and logs never show bound values (password hashes, emails)
    )
    refresh_password_on_connect(engine)  # RDS rotates the password; new connections use the current one
    return engine


@functools.cache
def _session_factory() -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(get_engine(), expire_on_commit=False)


@contextlib.contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = _session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine() -> None:
    """Dispose of the engine (tests and the local stack point DATABASE_URL elsewhere)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()
    from chalicelib.db import direct  # the ingest and worker functions' connection, too

    direct.reset()
