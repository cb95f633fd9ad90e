from alembic import context
from sqlalchemy import engine_from_config, pool

from chalicelib.db.tables import Base

target_metadata = Base.metadata
config = context.config
if not config.get_main_option("sqlalchemy.url"):  # the alembic CLI: take DATABASE_URL
    import os

    from chalicelib.db.session import normalize_url

    config.set_main_option("sqlalchemy.url", normalize_url(os.environ["DATABASE_URL"]).replace("%", "%%"))


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        # Two processes starting at once (local stack, tests in parallel) must not both migrate.
        connection.exec_driver_sql("SELECT pg_advisory_lock(727274)")
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(727274)")
            connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
