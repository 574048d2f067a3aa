"""Engines and sessions.

One async engine per process (created lazily, after any fork), one sync engine for the
parts of the stack that are synchronous (Alembic, later Authlib). Sessions are of class
`AppSession`; the tenancy kernel (`tenants.scoping`) attaches its fail-closed query scoping
and per-transaction PostgreSQL role/tenant settings to that class.

The unit of work is committed at the edge (request dependency, task wrapper, CLI command);
domain code only flushes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from services.kit.errors import ValidationFailed
from services.kit.schemas import NUL_MESSAGE, has_nul
from services.settings import Settings, get_settings


class AppSession(Session):
    """The synchronous session class behind every AsyncSession of the application.

    A session has two logins on PostgreSQL: the application's (`database_url`) and the
    operator's (`operator_database_url`, its own pool). Which one a statement runs on is the
    tenancy kernel's decision (`operator_login`, installed by `tenants.scoping`): operator
    work runs on the operator's connection, in the same unit of work. On SQLite, or with no
    operator URL, both are the same engine and the same connection.
    """

    @staticmethod
    def operator_login(session: Session) -> bool:
        return False  # replaced by the tenancy kernel

    def get_bind(self, mapper: Any = None, **kw: Any) -> Any:
        if kw.get("bind") is None and AppSession.operator_login(self):
            return get_operator_engine().sync_engine
        return super().get_bind(mapper, **kw)


_engines: dict[tuple[int, int, str], AsyncEngine] = {}
_read_pools: dict[tuple[int, int, str], Any] = {}  # asyncpg.Pool per process and loop
_sync_engines: dict[tuple[int, str], Engine] = {}
_factories: dict[tuple[int, int, str], async_sessionmaker[AsyncSession]] = {}


def _loop_key() -> int:
    """Async connections belong to the event loop that opened them: one engine per loop
    (the server has one; in-process task threads and the Celery bridge have their own)."""
    try:
        return id(asyncio.get_running_loop())
    except RuntimeError:
        return 0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _ctx: Any, _many: bool
) -> None:
    """The database's own wall behind the input types (services.kit.schemas): no parameter
    holding a NUL character is sent, whatever door it came through. PostgreSQL cannot store
    one (it would be a 500); SQLite would keep a string other tools cut short."""
    if has_nul(parameters):
        raise ValidationFailed(f"text {NUL_MESSAGE}")


def _engine_kwargs(settings: Settings, pool_size: int | None = None) -> dict[str, Any]:
    if settings.is_postgres:
        return {
            "pool_size": pool_size or settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            # No pre-ping: it costs a round trip per request. A connection the server dropped
            # fails one request and SQLAlchemy then invalidates the pool.
            "pool_pre_ping": False,
            "pool_recycle": 1800,
        }
    return {"connect_args": {"timeout": 10}}


def get_engine(settings: Settings | None = None) -> AsyncEngine:
    settings = settings or get_settings()
    key = (os.getpid(), _loop_key(), str(settings.async_database_url))
    engine = _engines.get(key)
    if engine is None:
        if not settings.is_postgres:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(settings.async_database_url, **_engine_kwargs(settings))
        event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul)
        if not settings.is_postgres:
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        _engines[key] = engine
    return engine


def get_operator_engine(settings: Settings | None = None) -> AsyncEngine:
    """The operator login's engine and pool (the application's own when no operator URL is
    set: then both logins are one)."""
    settings = settings or get_settings()
    url = settings.async_operator_database_url
    if url == settings.async_database_url:
        return get_engine(settings)
    key = (os.getpid(), _loop_key(), str(url))
    engine = _engines.get(key)
    if engine is None:
        engine = create_async_engine(
            url, **_engine_kwargs(settings, pool_size=settings.db_operator_pool_size)
        )
        event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul)
        _engines[key] = engine
    return engine


def get_sync_engine(settings: Settings | None = None, *, owner: bool = False) -> Engine:
    """A synchronous engine: the application's login, or (`owner`) the schema owner's, which
    only migrations and `switchboard db roles` use."""
    settings = settings or get_settings()
    url = settings.sync_owner_database_url if owner else settings.sync_database_url
    key = (os.getpid(), str(url))
    engine = _sync_engines.get(key)
    if engine is None:
        if not settings.is_postgres:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **_engine_kwargs(settings))
        event.listen(engine, "before_cursor_execute", _refuse_nul)
        if not settings.is_postgres:
            event.listen(engine, "connect", _sqlite_pragmas)
        _sync_engines[key] = engine
    return engine


def session_factory(settings: Settings | None = None) -> async_sessionmaker[AsyncSession]:
    settings = settings or get_settings()
    key = (os.getpid(), _loop_key(), str(settings.async_database_url))
    factory = _factories.get(key)
    if factory is None:
        factory = async_sessionmaker(
            get_engine(settings),
            expire_on_commit=False,
            autoflush=True,
            sync_session_class=AppSession,
        )
        _factories[key] = factory
    return factory


@asynccontextmanager
async def unit_of_work(settings: Settings | None = None) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block ends cleanly and rolls back otherwise.

    Jobs queued during the block are published only after the commit succeeds.
    """
    from services.kit import jobs  # local: jobs imports db

    session = session_factory(settings)()
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    finally:
        await session.close()
    await jobs.dispatch_committed(session)


async def _init_read_connection(conn: Any) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _reset_read_connection(conn: Any) -> None:
    """On release, after asyncpg has rolled back any open transaction. The lean read path
    sets nothing at session level (only transaction-local settings), so asyncpg's default
    reset (`RESET ALL` and more: one more round trip per request) has nothing to undo."""


async def get_read_pool(settings: Settings | None = None) -> Any:
    """The asyncpg pool of the lean tenant read path (tenants.reads), PostgreSQL only: raw
    driver connections, without the ORM's pool bookkeeping on the hottest requests."""
    import asyncpg

    settings = settings or get_settings()
    key = (os.getpid(), _loop_key(), settings.database_url)
    pool = _read_pools.get(key)
    if pool is None:
        pool = await asyncpg.create_pool(
            settings.driver_dsn,
            min_size=1,
            max_size=settings.db_read_pool_size,
            init=_init_read_connection,
            reset=_reset_read_connection,
            max_inactive_connection_lifetime=300,
        )
        existing = _read_pools.setdefault(key, pool)
        if existing is not pool:  # another request created it meanwhile
            await pool.close()
            pool = existing
    return pool


async def dispose_engines() -> None:
    """Dispose the engines of this process's running loop (app shutdown, tests)."""
    pid, loop = os.getpid(), _loop_key()
    for key in [k for k in _read_pools if k[0] == pid and k[1] == loop]:
        await _read_pools.pop(key).close()
    for key in [k for k in _engines if k[0] == pid and k[1] == loop]:
        await _engines.pop(key).dispose()
        _factories.pop(key, None)
    for sync_key in [k for k in _sync_engines if k[0] == pid]:
        _sync_engines.pop(sync_key).dispose()
