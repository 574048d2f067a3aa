"""Resolved API keys are cached per process; a committed revocation reaches every process."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import PG_ADMIN_URL


async def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _principal():
    import uuid

    from tenants.principal import Principal

    return Principal.system(uuid.uuid4())


def test_a_lookup_that_raced_an_invalidation_is_not_stored():
    from services.identity.keycache import PrincipalCache

    cache = PrincipalCache()
    started = cache.generation
    cache.forget("h")  # a revocation committed while the lookup was running
    cache.put("h", _principal(), None, started)
    assert cache.get("h") is None
    cache.put("h", _principal(), None, cache.generation)
    assert cache.get("h") is not None


def test_entries_live_long_only_while_a_listener_is_live():
    from services.identity.keycache import PrincipalCache
    from services.settings import get_settings

    settings = get_settings()
    cache = PrincipalCache()
    assert cache.ttl() == settings.api_key_cache_seconds
    cache.put("h", _principal(), None, cache.generation)
    cache.set_live(True)  # notifications may have been missed before: start empty
    assert cache.get("h") is None and cache.ttl() == settings.api_key_cache_live_seconds
    cache.put("h", _principal(), None, cache.generation)
    cache.set_live(False)  # the listener dropped: nothing cached under it survives
    assert cache.get("h") is None


async def test_invalidation_happens_only_when_the_transaction_commits(client, make_agency):
    from services.identity.keycache import invalidate_on_commit, principal_cache
    from services.kit.crypto import sha256_hex
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency()
    assert (await client.get("/api/v1/clients", headers=agency.headers)).status_code == 200
    key_hash = sha256_hex(agency.api_key)
    assert principal_cache.get(key_hash) is not None
    with pytest.raises(RuntimeError):
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id))
            await invalidate_on_commit(session, key_hash)
            raise RuntimeError("rolled back")
    assert principal_cache.get(key_hash) is not None
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        await invalidate_on_commit(session, key_hash)
    assert principal_cache.get(key_hash) is None


async def test_revoked_key_stops_at_once(client, make_agency):
    agency = await make_agency()
    made = (
        await client.post("/api/v1/api-keys", headers=agency.headers, json={"name": "k"})
    ).json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    assert (await client.get("/api/v1/clients", headers=headers)).status_code == 200
    assert (
        await client.delete(f"/api/v1/api-keys/{made['id']}", headers=agency.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/clients", headers=headers)).status_code == 401


async def test_last_used_times_are_written_in_batches_by_the_web_process(client, make_agency):
    from services.identity.keycache import last_used, principal_cache

    agency = await make_agency()
    made = (
        await client.post("/api/v1/api-keys", headers=agency.headers, json={"name": "k"})
    ).json()
    headers = {"Authorization": f"Bearer {made['key']}"}

    async def stamp() -> str | None:
        got = await client.get(f"/api/v1/api-keys/{made['id']}", headers=agency.headers)
        return got.json()["last_used_at"]

    last_used.interval = 3600  # the batch is written by flush() below, not by the timer
    last_used.start()
    try:
        assert (await client.get("/api/v1/clients", headers=headers)).status_code == 200
        assert await stamp() is None  # recorded, not yet written: no write on the request path
        assert await last_used.flush() >= 1
        assert await stamp() is not None
    finally:
        await last_used.stop()
        last_used.interval = 10.0
    principal_cache.forget()


pg = pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (SWITCHBOARD_TEST_PG_URL)")


@pytest.mark.postgres
@pg
async def test_other_processes_hear_revocations_and_agency_changes(
    client, make_agency, operator_headers
):
    """A second cache with its own listener stands for another server process."""
    from services.identity.keycache import KeyCacheListener, PrincipalCache
    from services.kit.crypto import sha256_hex

    other = PrincipalCache()
    listener = KeyCacheListener.from_settings()
    assert listener is not None
    listener._cache = other
    listener.start()
    try:
        assert await _until(lambda: other.live)
        a, b = await make_agency(), await make_agency()
        made = (await client.post("/api/v1/api-keys", headers=a.headers, json={"name": "k"})).json()
        h = sha256_hex(made["key"])
        other.put(h, _principal(), None, other.generation)
        other.put(sha256_hex(b.api_key), _principal(), None, other.generation)
        assert (
            await client.delete(f"/api/v1/api-keys/{made['id']}", headers=a.headers)
        ).status_code == 204
        assert await _until(lambda: other.get(h) is None)
        assert other.get(sha256_hex(b.api_key)) is not None  # only the revoked key went
        # an agency change (e.g. suspension) forgets every key
        resp = await client.patch(
            f"/api/v1/agencies/{b.public_id}", headers=operator_headers, json={"name": "Renamed"}
        )
        assert resp.status_code == 200, resp.text
        assert await _until(lambda: other.get(sha256_hex(b.api_key)) is None)
    finally:
        await listener.stop()
    assert not other.live


@pytest.mark.postgres
@pg
async def test_a_dropped_listener_falls_back_to_short_lifetimes_and_reconnects(client):
    import asyncpg

    from services.identity.keycache import APPLICATION_NAME, KeyCacheListener, PrincipalCache
    from services.settings import get_settings

    other = PrincipalCache()
    listener = KeyCacheListener.from_settings()
    assert listener is not None
    listener._cache = other
    listener.start()
    try:
        assert await _until(lambda: other.live)
        other.put("h", _principal(), None, other.generation)
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = $2",
                APPLICATION_NAME,
                get_settings().url.database,
            )
        finally:
            await admin.close()
        assert killed == 1
        assert await _until(lambda: not other.live or other.get("h") is None)
        assert other.get("h") is None  # cleared the moment the connection went
        assert await _until(lambda: other.live, timeout=15)  # and it comes back
    finally:
        await listener.stop()
