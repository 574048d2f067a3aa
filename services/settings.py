"""The one Settings class. Every environment variable the product reads is declared here."""

from __future__ import annotations

import ipaddress
import secrets
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "insecure"}
DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    # Errors name the setting and the rule, never the value given (it may be a secret).
    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "test", "production"] = "development"
    var_dir: Path = DEFAULT_VAR_DIR
    # The application's login: on PostgreSQL a NOINHERIT role that owns nothing and can only
    # switch to the app and client roles (PostgREST's "authenticator"); see docs/operations.md.
    database_url: str = ""
    # The login of operator work (`unscoped()`), with its own pool: it may switch to the
    # operator role. Empty: the application's login (refused in production, see below).
    operator_database_url: str = ""
    # The schema owner's login, used only by migrations and `switchboard db roles`. Empty: the
    # application's login (SQLite, or a development database).
    owner_database_url: str = ""
    # In production the processes refuse to start when the application's login is a
    # superuser, can bypass RLS, can act as a table owner or reach the operator role. True
    # overrides that refusal (an explicit, logged decision).
    allow_privileged_db_login: bool = False
    # Empty: tasks run in-process. Otherwise redis://... or amqp://...
    broker_url: str = ""
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:8000"
    operator_api_key: str = ""  # the platform operator's bearer key (compared as a hash)
    log_level: str = "INFO"
    log_json: bool = True
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # The lean read path's own driver pool (tenants/reads.py), per process.
    db_read_pool_size: int = 10
    # The operator login's pool (unscoped work: slug lookups, retention, operator API), per process.
    db_operator_pool_size: int = 5
    # The PostgreSQL roles the application drops to for every transaction: agency-wide
    # sessions, and client-scoped sessions (client users, assigned staff, client-scoped keys).
    db_app_role: str = "switchboard_app"
    db_client_role: str = "switchboard_client"
    # The PostgreSQL role used by the explicit, audited unscoped() bypass.
    db_operator_role: str = "switchboard_operator"
    max_body_bytes: int = 1_048_576
    # FastAPI's native OpenTelemetry traces, metrics and logs, for installations that
    # configure an OpenTelemetry SDK. Off by default: /metrics (Prometheus) and the JSON logs
    # need nothing else, and the check costs every request.
    opentelemetry: bool = False
    # How long a resolved API key is reused without a database lookup (0: never), see
    # services/identity/keycache.py. Revocation is immediate in the process that revokes; other
    # processes follow within `api_key_cache_seconds`, or at once while they listen for
    # PostgreSQL notifications, when entries may live `api_key_cache_live_seconds` (which is
    # also how often an API key's last-used time is refreshed).
    api_key_cache_seconds: float = 5.0
    api_key_cache_live_seconds: float = 60.0
    api_key_cache_listen: bool = True  # false behind a transaction-mode pooler (PgBouncer)
    session_ttl_hours: int = 12
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_sender: str = "Switchboard <no-reply@switchboard.local>"
    smtp_username: str = ""
    smtp_password: str = ""
    # "starttls" upgrades a plain connection; "tls" connects with TLS (port 465); "none".
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    static_dir: Path = Field(default_factory=lambda: Path(__file__).parent / "portal" / "static")
    # The reverse proxies / load balancers whose X-Forwarded-For and X-Forwarded-Proto are
    # believed (uvicorn's forwarded_allow_ips): comma-separated addresses or networks of YOUR
    # proxy. Empty: no proxy is trusted, the connecting peer is the client. The address a
    # trusted proxy forwards is what sign-in throttling and the audit log see, so "*" (trust
    # every peer) lets any client choose it: refused in production unless
    # `forwarded_allow_any` says that nothing but the proxy can reach the app.
    forwarded_allow_ips: str = ""
    forwarded_allow_any: bool = False
    # The keys that seal connector credentials (integrations/core/vault.py): `kid:key` pairs,
    # comma-separated, each key 32 random bytes in base64url; the first seals, every one
    # opens. Empty: one key derived from SECRET_KEY (kid "s0").
    vault_keys: str = ""

    @field_validator("database_url", "operator_database_url", "owner_database_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()

    @field_validator("vault_keys")
    @classmethod
    def _vault_keys(cls, v: str) -> str:
        parse_vault_keys(v)  # raises naming what is wrong (never the key)
        return v.strip()

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, v: str) -> str:
        items = [item.strip() for item in v.split(",") if item.strip()]
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"SWITCHBOARD_FORWARDED_ALLOW_IPS: {item!r} is not an IP address or network "
                    "(give your proxy's addresses, comma-separated, e.g. 10.0.0.5,10.1.0.0/16)"
                ) from None
        return ",".join(items)

    @model_validator(mode="after")
    def _refuse_any_proxy_in_production(self) -> Settings:
        if (
            self.env == "production"
            and "*" in self.forwarded_allow_ips.split(",")
            and not self.forwarded_allow_any
        ):
            raise ValueError(
                "SWITCHBOARD_FORWARDED_ALLOW_IPS='*' believes X-Forwarded-For from anyone, so "
                "any client picks the address throttling and the audit log see. Name your "
                "proxy's addresses, or set SWITCHBOARD_FORWARDED_ALLOW_ANY=true if nothing but "
                "the proxy can reach the app."
            )
        return self

    @property
    def uvicorn_proxy_options(self) -> dict[str, object]:
        """What `switchboard serve` passes to uvicorn: proxy headers only from the proxies
        named in `forwarded_allow_ips` (none when it is empty)."""
        if not self.forwarded_allow_ips:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": self.forwarded_allow_ips}

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.secret_key.lower() in PLACEHOLDER_SECRETS:
            if self.env == "production":
                raise ValueError(
                    "SWITCHBOARD_SECRET_KEY is unset or a placeholder; set a long random value "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
            # Development and tests: a per-var-dir key, generated once and kept on disk so
            # sessions survive restarts of `make demo`.
            self.secret_key = _dev_secret(self.var_dir)
        elif self.env == "production" and len(self.secret_key) < 32:
            raise ValueError("SWITCHBOARD_SECRET_KEY must be at least 32 characters in production")
        return self

    # ---- database URLs (computed once: the settings object is not changed after loading) ---
    @cached_property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @cached_property
    def url(self) -> URL:
        raw = self.database_url or f"sqlite:///{(self.var_dir / 'switchboard.sqlite3').as_posix()}"
        return make_url(raw)

    @cached_property
    def async_database_url(self) -> URL:
        """The URL with the async driver this backend uses (asyncpg / aiosqlite)."""
        return _with_driver(self.url, {"postgresql": "asyncpg", "sqlite": "aiosqlite"})

    @cached_property
    def driver_dsn(self) -> str:
        """PostgreSQL: the URL as the plain asyncpg driver takes it (the lean read pool, the
        API-key invalidation listener)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @cached_property
    def sync_database_url(self) -> URL:
        """The URL with a synchronous driver (psycopg 3 / sqlite3), for Alembic and Authlib."""
        return _with_driver(self.url, {"postgresql": "psycopg", "sqlite": "pysqlite"})

    @cached_property
    def operator_url(self) -> URL:
        return make_url(self.operator_database_url) if self.operator_database_url else self.url

    @cached_property
    def async_operator_database_url(self) -> URL:
        return _with_driver(self.operator_url, {"postgresql": "asyncpg", "sqlite": "aiosqlite"})

    @cached_property
    def owner_url(self) -> URL:
        return make_url(self.owner_database_url) if self.owner_database_url else self.url

    @cached_property
    def sync_owner_database_url(self) -> URL:
        """The schema owner's URL with the synchronous driver (migrations, `db roles`)."""
        return _with_driver(self.owner_url, {"postgresql": "psycopg", "sqlite": "pysqlite"})

    @property
    def tasks_in_process(self) -> bool:
        return not self.broker_url

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    # ---- OpenID Connect provider (services/oauth2) -------------------------------------------
    oauth2_code_ttl_seconds: int = Field(default=60, ge=10, le=600)
    oauth2_access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    oauth2_id_token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    oauth2_refresh_token_ttl_seconds: int = Field(default=30 * 86_400, ge=300, le=365 * 86_400)
    # Back-channel logout tokens are minted at send time and live this long.
    oauth2_logout_token_ttl_seconds: int = Field(default=120, ge=30, le=600)

    # ---- URLs an agency makes us fetch (services/kit/outbound.py) ----------------------------
    # In production, addresses on this machine or a private network are refused (SSRF). An
    # installation whose solutions run inside its own private network says so here.
    outbound_allow_private: bool = False

    # ---- upstream sign-in with Google / Microsoft (services/identity/upstream_oidc.py) -------
    # Where the providers' metadata is read (tests and the demo point these at a local sandbox;
    # the issuers expected in ID tokens stay the vendors' own).
    upstream_google_discovery_url: str = (
        "https://accounts.google.com/.well-known/openid-configuration"
    )
    upstream_microsoft_authority: str = "https://login.microsoftonline.com"


def _with_driver(url: URL, drivers: dict[str, str]) -> URL:
    backend = url.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")
    return url.set(drivername=f"{backend}+{drivers[backend]}")


def _dev_secret(var_dir: Path) -> str:
    path = var_dir / "dev-secret-key"
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
        path.chmod(0o600)
    except OSError:
        pass
    return value


VAULT_KID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def parse_vault_keys(value: str) -> list[tuple[str, bytes]]:
    """`SWITCHBOARD_VAULT_KEYS` as (kid, 32-byte key) pairs, the sealing key first."""
    import base64
    import binascii

    pairs: list[tuple[str, bytes]] = []
    for n, item in enumerate((i.strip() for i in value.split(",") if i.strip()), start=1):
        kid, sep, encoded = item.partition(":")
        kid = kid.strip().lower()
        if not sep or not kid or len(kid) > 16 or not set(kid) <= VAULT_KID_CHARS:
            raise ValueError(
                f"SWITCHBOARD_VAULT_KEYS: entry {n} must be `kid:key` with a kid of up to 16 "
                "letters, digits, '-' or '_'"
            )
        try:
            key = base64.urlsafe_b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ValueError(
                f"SWITCHBOARD_VAULT_KEYS: the key of {kid!r} must be 32 bytes in base64url "
                "(e.g. `python -c 'import secrets,base64; "
                "print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())'`)"
            )
        if any(kid == k for k, _ in pairs):
            raise ValueError(f"SWITCHBOARD_VAULT_KEYS: the kid {kid!r} appears twice")
        pairs.append((kid, key))
    return pairs


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
