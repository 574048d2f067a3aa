"""Small per-process caches that follow another cache's invalidations.

A `FollowerCache` keeps rows that change rarely (an agency by slug, a relying party, a
signing key) and owns no invalidation of its own: it follows a *leader*, today the API-key
cache (`services/identity/keycache.py`), whose generation counter and lifetimes its entries
share. The leader makes invalidation travel with the commit (a PostgreSQL `NOTIFY` queued in
the writing transaction, heard by every process; the committing process forgets right after
its commit) and bumps its generation on every invalidation. So, for every follower:

* **an entry stored under an older generation is dead**: any invalidation of the leader
  empties every follower at once;
* **entries live only the leader's TTL**: long while notifications are known to arrive, short
  otherwise (SQLite, tests, a lost listener connection);
* **a lookup never re-caches what an invalidation removed**: the caller reads `generation()`
  before its lookup, and `put` drops the result if the generation changed meanwhile;
* callers cache only what is committed, and never a negative answer.

Domain-free: the leader is handed in, and `columns_of` / `row_from` work on any ORM model.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any, Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
M = TypeVar("M")


class Leader(Protocol):
    """The cache whose invalidations a follower shares."""

    generation: int

    def ttl(self) -> float: ...


class FollowerCache(Generic[K, V]):
    """A small map whose entries die with any invalidation of its leader."""

    def __init__(self, leader: Leader, max_entries: int = 10_000) -> None:
        self._leader = leader
        self._entries: dict[K, tuple[float, int, V]] = {}
        self._max = max_entries

    def generation(self) -> int:
        """Read BEFORE the lookup whose result is then `put`."""
        return self._leader.generation

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        stored, generation, value = hit
        if generation != self._leader.generation or (
            time.monotonic() - stored >= self._leader.ttl()
        ):
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, generation: int) -> None:
        if generation != self._leader.generation or self._leader.ttl() <= 0:
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
