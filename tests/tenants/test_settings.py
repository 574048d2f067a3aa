"""Settings: URL normalization and the secret guard."""

import pytest
from pydantic import ValidationError

from services.settings import Settings


def test_urls_pick_their_drivers(tmp_path, monkeypatch):
    monkeypatch.delenv("SWITCHBOARD_DATABASE_URL", raising=False)
    pg = Settings(database_url="postgresql://u@h:5432/db", var_dir=tmp_path)
    assert pg.is_postgres
    assert pg.async_database_url.drivername == "postgresql+asyncpg"
    assert pg.sync_database_url.drivername == "postgresql+psycopg"
    lite = Settings(database_url="sqlite:///x.db", var_dir=tmp_path)
    assert lite.async_database_url.drivername == "sqlite+aiosqlite"
    default = Settings(var_dir=tmp_path)
    assert default.url.database.endswith("switchboard.sqlite3")
    with pytest.raises(ValueError, match="unsupported"):
        _ = Settings(database_url="mysql://u@h/db", var_dir=tmp_path).async_database_url


def test_placeholder_secret_refused_in_production(tmp_path):
    for secret in ("", "changeme", "secret"):
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(env="production", secret_key=secret, var_dir=tmp_path)
    with pytest.raises(ValidationError):
        Settings(env="production", secret_key="short-but-not-placeholder", var_dir=tmp_path)
    ok = Settings(env="production", secret_key="x" * 40, var_dir=tmp_path)
    assert ok.secret_key == "x" * 40
    dev = Settings(env="development", secret_key="", var_dir=tmp_path)
    assert len(dev.secret_key) > 40
    assert Settings(env="development", var_dir=tmp_path).secret_key == dev.secret_key


def test_a_refused_setting_never_echoes_its_value(tmp_path):
    """A start-up error names the setting and the rule; the value given may be a secret."""
    short = "short-secret-value-0123"
    with pytest.raises(ValidationError) as refused:
        Settings(env="production", secret_key=short, var_dir=tmp_path, smtp_password="pw-9f8e")
    assert "SECRET_KEY" in str(refused.value)
    assert short not in str(refused.value) and "pw-9f8e" not in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        Settings(vault_keys="k1:not-a-32-byte-key-value", var_dir=tmp_path)
    assert "not-a-32-byte-key-value" not in str(refused.value)
