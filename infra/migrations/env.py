"""Alembic environment: runs with the synchronous driver on the configured database."""

from __future__ import annotations

from alembic import context

from services.kit.db import get_sync_engine
from services.models_registry import metadata

config = context.config


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    # The schema owner's login (SWITCHBOARD_OWNER_DATABASE_URL), never the application's.
    with get_sync_engine(owner=True).connect() as connection:
        _run(connection)
        connection.commit()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # type: ignore[attr-defined]
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `switchboard db upgrade`")
run_migrations_online()
