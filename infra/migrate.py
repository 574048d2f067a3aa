"""Programmatic Alembic: `switchboard db upgrade` and the tests use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


def upgrade(revision: str = "heads") -> None:
    """Migrate as the schema owner, then (PostgreSQL) create or update the application's and
    the operator's logins (`switchboard db roles`)."""
    command.upgrade(alembic_config(), revision)
    ensure_roles()


def ensure_roles() -> list[str]:
    from services.settings import get_settings
    from tenants.rls import ensure_login_roles

    return ensure_login_roles(get_settings())


def downgrade(revision: str) -> None:
    command.downgrade(alembic_config(), revision)


def current_heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config()).get_heads())
