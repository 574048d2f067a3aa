"""The agency an address names (`/a/{slug}/...`) is resolved once, for every door, and
cached per process: suspending it stops the portal, the OpenID issuer and SCIM at once,
with no restart, in this process and in every other."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import PG_ADMIN_URL
from tests.oauth2.conftest import basic
from tests.scim.conftest import issue_token


async def _set_status(client, agency, operator_headers, status: str) -> None:
    resp = await client.patch(
        f"/api/v1/agencies/{agency.public_id}", headers=operator_headers, json={"status": status}
    )
    assert resp.status_code == 200, resp.text


async def _doors(client, agency, rp: dict, scim_token: str) -> dict[str, int]:
    portal = await client.get(f"/a/{agency.slug}/login", headers={"accept": "text/html"})
    token = await client.post(
        f"/a/{agency.slug}/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic(rp["id"], rp["client_secret"]),
    )
    scim = await client.get(
        f"/a/{agency.slug}/scim/v2/Users", headers={"Authorization": f"Bearer {scim_token}"}
    )
    return {"portal": portal.status_code, "token": token.status_code, "scim": scim.status_code}


async def test_a_suspended_agency_stops_resolving_at_every_door_at_once(
    client, make_agency, operator_headers
):
    from services.agencies import service

    agency = await make_agency()
    rp = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=agency.headers,
            json={"name": "Sync", "grant_types": ["client_credentials"], "redirect_uris": []},
        )
    ).json()
    scim_token = (await issue_token(client, agency))["token"]
    assert await _doors(client, agency, rp, scim_token) == {
        "portal": 200,
        "token": 200,
        "scim": 200,
    }
    assert service._active_by_slug.get(agency.slug) is not None  # cached by the doors

    await _set_status(client, agency, operator_headers, "suspended")
    assert await _doors(client, agency, rp, scim_token) == {
        "portal": 404,
        "token": 404,
        "scim": 404,
    }
    portal = await client.get(f"/a/{agency.slug}/login", headers={"accept": "text/html"})
    assert "Page not found" in portal.text
    issuer = await client.get(f"/a/{agency.slug}/.well-known/openid-configuration")
    assert issuer.json()["detail"] == "no such issuer"
    scim = await client.get(
        f"/a/{agency.slug}/scim/v2/Users", headers={"Authorization": f"Bearer {scim_token}"}
    )
    assert "no such SCIM service" in scim.text

    await _set_status(client, agency, operator_headers, "active")
    assert await _doors(client, agency, rp, scim_token) == {
        "portal": 200,
        "token": 200,
        "scim": 200,
    }


async def test_malformed_unknown_and_suspended_slugs_are_never_cached(
    client, make_agency, operator_headers
):
    from services.agencies import service
    from services.kit.db import unit_of_work

    agency = await make_agency()
    await _set_status(client, agency, operator_headers, "suspended")
    async with unit_of_work() as session:
        for slug in ("UPPER", "x" * 80, "no-such-agency-here", agency.slug):
            assert await service.active_agency(session, slug) is None
            assert service._active_by_slug.get(slug) is None


async def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (SWITCHBOARD_TEST_PG_URL)")
async def test_another_process_forgets_a_suspended_agency(client, make_agency, operator_headers):
    """A second API-key cache with its own listener, and an agency cache following it, stand
    for another server process."""
    from services.identity.keycache import KeyCacheListener, PrincipalCache
    from services.kit.cache import FollowerCache

    other = PrincipalCache()
    agencies: FollowerCache[str, str] = FollowerCache(other)
    listener = KeyCacheListener.from_settings()
    assert listener is not None
    listener._cache = other
    listener.start()
    try:
        assert await _until(lambda: other.live)
        agency = await make_agency()
        agencies.put(agency.slug, "cached", agencies.generation())
        assert agencies.get(agency.slug) == "cached"
        await _set_status(client, agency, operator_headers, "suspended")
        assert await _until(lambda: agencies.get(agency.slug) is None)
    finally:
        await listener.stop()
