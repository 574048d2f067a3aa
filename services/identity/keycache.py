"""Resolved API keys, cached per process, with invalidation that follows the commit.

Every API request presents a key; looking it up costs a transaction. So a process keeps the
Principal a key resolved to, by key hash, and drops it when the key is revoked or its agency
changes. Correctness rests on three rules:

* **Invalidation travels with the commit.** Code that revokes a key or changes an agency calls
  `invalidate_on_commit(session, key_hash | None)`. On PostgreSQL that queues a
  `pg_notify('switchboard_auth', ...)` in the same transaction, which PostgreSQL delivers to
  every listening process only if and when the transaction commits; in every backend the
  committing process also forgets the entry itself right after the commit.
* **Entries live long only while notifications are known to arrive.** Each process listens
  on its own connection (`KeyCacheListener`, started with the web app). While it is
  connected an entry lives `api_key_cache_live_seconds` (60 s: also how often last-used
  times are refreshed); without a live listener (SQLite, tests, a dropped connection) it
  lives `api_key_cache_seconds` (5 s). Every change of the listener's state clears the cache,
  since notifications may have been missed.
* **A lookup never re-caches what an invalidation removed.** Each invalidation bumps a
  generation counter; a lookup that started before the bump does not store its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.kit.db import AppSession
from services.kit.types import utcnow
from services.settings import Settings, get_settings
from tenants.principal import Principal

log = structlog.get_logger("switchboard.keycache")

CHANNEL = "switchboard_auth"
ALL = "*"  # payload: forget every entry (an agency changed)
_PENDING_KEY = "keycache_invalidations"
APPLICATION_NAME = "switchboard-keycache"  # the listener's connection, in pg_stat_activity


class PrincipalCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        # key hash -> (monotonic time stored, share of the TTL it lives, principal, key expiry)
        self._entries: dict[str, tuple[float, float, Principal, datetime | None]] = {}
        self._max = max_entries
        self.generation = 0
        self.live = False  # a listener is connected: entries may live the long TTL

    def ttl(self, settings: Settings | None = None) -> float:
        settings = settings or get_settings()
        if self.live:
            return settings.api_key_cache_live_seconds
        return settings.api_key_cache_seconds

    def get(self, key_hash: str) -> Principal | None:
        hit = self._entries.get(key_hash)
        if hit is None:
            return None
        stored, share, principal, key_expires = hit
        if time.monotonic() - stored >= self.ttl() * share or (
            key_expires is not None and key_expires <= utcnow()
        ):
            self._entries.pop(key_hash, None)
            return None
        return principal

    def put(
        self, key_hash: str, principal: Principal, key_expires: datetime | None, generation: int
    ) -> None:
        """Store a lookup's result, unless an invalidation happened since it began."""
        if generation != self.generation or self.ttl() <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
        # Each entry lives 75-100% of the TTL, so keys cached together (a restart, a burst)
        # are not all looked up again in the same second.
        share = 0.75 + random.random() / 4
        self._entries[key_hash] = (time.monotonic(), share, principal, key_expires)

    def forget(self, key_hash: str | None = None) -> None:
        self.generation += 1
        if key_hash is None or key_hash == ALL:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)

    def set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            self.forget()

    def __len__(self) -> int:
        return len(self._entries)


principal_cache = PrincipalCache()


async def invalidate_on_commit(session: AsyncSession, key_hash: str | None = None) -> None:
    """Forget `key_hash` (or every key, for None) in every process once `session` commits."""
    payload = key_hash or ALL
    session.info.setdefault(_PENDING_KEY, set()).add(payload)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": payload},
        )


@event.listens_for(AppSession, "after_commit")
def _forget_committed(session: Session) -> None:
    for payload in session.info.pop(_PENDING_KEY, ()):
        principal_cache.forget(payload)


@event.listens_for(AppSession, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


class KeyCacheListener:
    """LISTENs for invalidations on a dedicated connection and keeps `principal_cache.live`
    true only while that connection is up. Reconnects with backoff."""

    def __init__(self, dsn: str, cache: PrincipalCache = principal_cache) -> None:
        self._dsn, self._cache = dsn, cache
        self._task: asyncio.Task[None] | None = None
        self._lost: asyncio.Event | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> KeyCacheListener | None:
        settings = settings or get_settings()
        if not settings.is_postgres or not settings.api_key_cache_listen:
            return None
        return cls(settings.driver_dsn)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keycache-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._cache.set_live(False)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._cache.forget(payload)

    def _on_lost(self, _conn: Any) -> None:
        self._cache.set_live(False)
        if self._lost is not None:
            self._lost.set()

    async def _run(self) -> None:
        import asyncpg

        delay = 0.5
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
                )
                self._lost = asyncio.Event()
                conn.add_termination_listener(self._on_lost)
                await conn.add_listener(CHANNEL, self._on_notify)
                self._cache.set_live(True)
                log.info("keycache.listening")
                delay = 0.5
                while not self._lost.is_set():
                    # A cheap liveness probe: a half-open TCP connection delivers nothing
                    # and would keep the cache "live" forever.
                    try:
                        await asyncio.wait_for(self._lost.wait(), timeout=15)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                if conn is not None and not conn.is_closed():
                    await conn.close()
                raise
            except Exception as exc:
                log.warning("keycache.listener_down", error=type(exc).__name__)
            self._cache.set_live(False)
            if conn is not None and not conn.is_closed():
                conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


class LastUsedRecorder:
    """API keys' last-used times, written in batches off the request path.

    A web process runs `run()` (started with the app) and flushes every few seconds, in one
    statement for all agencies under the audited bypass (the column is bookkeeping: it is
    not audited and its commit does not wait for the WAL flush). Anywhere else (tests, the
    CLI) nothing runs in the background, so `record()` writes at once.
    """

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._pending: dict[tuple[uuid.UUID, uuid.UUID], datetime] = {}
        self._task: asyncio.Task[None] | None = None

    async def record(self, agency_id: uuid.UUID, key_id: uuid.UUID, when: datetime) -> None:
        self._pending[(agency_id, key_id)] = when
        if self._task is None or self._task.get_loop() is not asyncio.get_running_loop():
            await self.flush()  # no batching in this event loop (tests, another thread)

    async def flush(self) -> int:
        from services.identity.models import ApiKey
        from services.kit.db import unit_of_work
        from tenants.scoping import unscoped

        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        rows = [{"agency_id": a, "id": k, "last_used_at": t} for (a, k), t in batch.items()]
        async with unit_of_work() as session, unscoped(session, "api keys: last-used times"):
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            await session.execute(update(ApiKey), rows)
        return len(rows)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="keys-last-used")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception as exc:  # a failed batch is dropped: it is bookkeeping only
                log.warning("keycache.last_used_flush_failed", error=type(exc).__name__)


last_used = LastUsedRecorder()
