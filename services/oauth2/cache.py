"""Per-process caches of the token path, invalidated together with the API-key cache.

Every token request used to look up the agency its issuer URL names (an unscoped query plus
two changes of the transaction's role) and the agency's active signing key. Both change
rarely, so a process keeps them, under exactly the rules of `services/identity/keycache.py`,
whose generation counter and lifetimes these entries share:

* **Invalidation travels with the commit.** Changing an agency (status, name, slug) or
  rotating its signing keys calls `keycache.invalidate_on_commit(session)`: PostgreSQL
  delivers the notification to every listening process if and when the transaction commits,
  and the committing process forgets right after its commit. Every invalidation bumps
  `principal_cache.generation`; an entry stored under an older generation is dead.
* **Entries live long only while notifications are known to arrive**: the API-key cache's
  TTL (60 s with a connected listener, 5 s without one: SQLite, tests, a lost connection).
* **A lookup never re-caches what an invalidation removed**: the generation is read before
  the lookup, and `put` drops the result if it changed meanwhile.
* **Only what is committed is cached**, and never a negative answer (an unknown slug stays a
  query: a new agency must work at once).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from services.identity.keycache import principal_cache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
M = TypeVar("M")


class FollowerCache(Generic[K, V]):
    """A small map whose entries die with any invalidation of the API-key cache."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[K, tuple[float, int, V]] = {}
        self._max = max_entries

    @staticmethod
    def generation() -> int:
        """Read BEFORE the lookup whose result is then `put`."""
        return principal_cache.generation

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        stored, generation, value = hit
        if generation != principal_cache.generation or (
            time.monotonic() - stored >= principal_cache.ttl()
        ):
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, generation: int) -> None:
        if generation != principal_cache.generation or principal_cache.ttl() <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (time.monotonic(), generation, value)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def columns_of(row: Any) -> dict[str, Any]:
    """A row's column values, to cache (lists copied: the cache never shares them)."""
    return {c.key: _copy(getattr(row, c.key)) for c in type(row).__table__.columns}


def row_from(model: type[M], fields: dict[str, Any]) -> M:
    """A fresh instance of `model` holding cached column values, made the way the ORM makes
    a loaded row (no `__init__`: a SQLModel's costs ~0.2 ms); never added to a session."""
    row: M = model.__mapper__.class_manager.new_instance()  # type: ignore[attr-defined]
    row.__dict__.update({k: _copy(v) for k, v in fields.items()})
    return row


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
