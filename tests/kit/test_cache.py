"""`FollowerCache` (services/kit/cache.py): its entries die with any invalidation of the
cache it follows, live that cache's TTL, and a lookup that raced an invalidation is not kept."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Leader:
    generation: int = 0
    seconds: float = 60.0

    def ttl(self) -> float:
        return self.seconds


def test_an_invalidation_of_the_leader_empties_the_follower():
    from services.kit.cache import FollowerCache

    leader = Leader()
    cache: FollowerCache[str, int] = FollowerCache(leader)
    cache.put("a", 1, cache.generation())
    assert cache.get("a") == 1
    leader.generation += 1
    assert cache.get("a") is None and len(cache) == 0


def test_a_lookup_that_raced_an_invalidation_is_not_stored():
    from services.kit.cache import FollowerCache

    leader = Leader()
    cache: FollowerCache[str, int] = FollowerCache(leader)
    started = cache.generation()
    leader.generation += 1  # committed while the lookup ran
    cache.put("a", 1, started)
    assert cache.get("a") is None
    cache.put("a", 1, cache.generation())
    assert cache.get("a") == 1


def test_entries_live_the_leaders_ttl_and_nothing_is_kept_without_one():
    from services.kit.cache import FollowerCache

    leader = Leader(seconds=0.0)
    cache: FollowerCache[str, int] = FollowerCache(leader, max_entries=2)
    cache.put("a", 1, cache.generation())
    assert len(cache) == 0
    leader.seconds = 60.0
    for key in ("a", "b", "c"):
        cache.put(key, 1, cache.generation())
    assert len(cache) == 2 and cache.get("a") is None  # the oldest made room
    leader.seconds = -1.0  # an entry older than the TTL is dead
    assert cache.get("b") is None


def test_rows_are_cached_as_column_values_and_come_back_as_fresh_instances():
    from services.kit.cache import columns_of, row_from
    from tenants.models import Agency

    agency = Agency(slug="acme", name="Acme")
    fields = columns_of(agency)
    copy = row_from(Agency, fields)
    assert copy is not agency and copy.slug == "acme" and copy.name == "Acme"
    assert copy.id == agency.id
