"""Alembic environment: the URL comes from the Config (set by citybase.storage.migrate)."""

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
# Set by tooling that autogenerates a revision (see docs/architecture.md); migrations themselves are hand-checked.
target_metadata = config.attributes.get("target_metadata")


def run() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, render_as_batch=True, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, render_as_batch=True, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run()
