"""The token path's per-process caches follow the API-key cache.

A token request names its issuer agency (cached by `services.agencies.service.active_agency`
for every door), authenticates a relying party (`server._relying_parties`) and signs with the
agency's active key (`keys._active`). Each is a `services.kit.cache.FollowerCache` whose
leader is `services.identity.keycache.principal_cache`, so the rules written there hold:
invalidation travels with the commit (changing a client, rotating its secret or the agency's
signing keys calls `keycache.invalidate_on_commit(session)`), entries live the API-key
cache's TTL, and a lookup never re-caches what an invalidation removed.

Only `server.py` still imports from here (it is being edited elsewhere): `FollowerCache` is
the kit's bound to that leader, and the two row helpers are the kit's. Once `server.py`
imports `services.kit.cache` (`FollowerCache(principal_cache)`), this module can go.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from services.identity.keycache import principal_cache
from services.kit import cache
from services.kit.cache import columns_of, row_from

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

__all__ = ["FollowerCache", "columns_of", "row_from"]


class FollowerCache(cache.FollowerCache[K, V]):
    """A kit `FollowerCache` whose entries die with any invalidation of the API-key cache."""

    def __init__(self, max_entries: int = 10_000) -> None:
        super().__init__(principal_cache, max_entries)
