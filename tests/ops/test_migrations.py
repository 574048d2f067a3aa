"""Alembic: upgrade from empty on a fresh database, schema equals the models, downgrade."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.conftest import PG_ADMIN_URL, ROOT, _pg_admin

SCRIPT = """
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from infra.migrate import downgrade, upgrade
from services.kit.db import get_sync_engine
from services.models_registry import metadata

upgrade()
with get_sync_engine().connect() as c:
    diff = compare_metadata(MigrationContext.configure(c), metadata)
    assert diff == [], diff
downgrade("base")
upgrade()
print("MIGRATIONS-OK")
"""


def test_upgrade_from_empty_matches_models(tmp_path):
    env = {**os.environ, "SWITCHBOARD_VAR_DIR": str(tmp_path)}
    # one login on the fresh database: the owner's (the run's own logins are for its database)
    env.pop("SWITCHBOARD_OWNER_DATABASE_URL", None)
    env.pop("SWITCHBOARD_OPERATOR_DATABASE_URL", None)
    dbname = None
    if PG_ADMIN_URL:
        from sqlalchemy.engine import make_url

        dbname = f"switchboard_mig_{secrets.token_hex(4)}"
        _pg_admin(f'CREATE DATABASE "{dbname}"')
        env["SWITCHBOARD_DATABASE_URL"] = (
            make_url(PG_ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)
        )
    else:
        env["SWITCHBOARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    try:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "MIGRATIONS-OK" in out.stdout, out.stderr[-3000:]
    finally:
        if dbname:
            _pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def test_history_is_linear():
    from infra.migrate import current_heads

    assert len(current_heads()) == 1, f"migrations must form one line: heads {current_heads()}"
