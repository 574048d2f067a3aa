"""Solutions in the client portal: listed for the clients they are enabled for, "Open" starts
a third-party-initiated login at the app, and only those clients' people may sign in to it."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.oauth2.conftest import pkce

LOGIN = "https://bookings.example/login"
CALLBACK = "https://bookings.example/callback"


async def _world(client, make_agency, make_client, make_person):
    agency = await make_agency()
    x = await make_client(agency, legal_name="Bella Vista")
    y = await make_client(agency, legal_name="Other Shop")
    app = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=agency.headers,
            json={
                "name": "Table Bookings",
                "description": "Online table reservations",
                "redirect_uris": [CALLBACK],
                "solution": True,
                "first_party": True,
                "initiate_login_uri": LOGIN,
            },
        )
    ).json()
    enabled = await client.put(
        f"/api/v1/clients/{x['id']}/solutions/{app['id']}", headers=agency.headers
    )
    assert enabled.status_code == 204, enabled.text
    owner_x, _ = await make_person(agency, "client_owner", client_id=x["id"], email=None)
    owner_y, _ = await make_person(agency, "client_owner", client_id=y["id"])
    return agency, x, y, app, owner_x, owner_y


async def test_enabling_is_idempotent_listed_and_reversible(
    client, make_agency, make_client, make_person
):
    agency, x, y, app, *_ = await _world(client, make_agency, make_client, make_person)
    again = await client.put(
        f"/api/v1/clients/{x['id']}/solutions/{app['id']}", headers=agency.headers
    )
    assert again.status_code == 204
    listed = await client.get(f"/api/v1/clients/{x['id']}/solutions", headers=agency.headers)
    assert [s["name"] for s in listed.json()] == ["Table Bookings"]
    assert (
        await client.get(f"/api/v1/clients/{y['id']}/solutions", headers=agency.headers)
    ).json() == []
    # only a relying party marked as a solution can be enabled
    plain = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=agency.headers,
            json={"name": "Internal", "redirect_uris": ["https://i.example/cb"]},
        )
    ).json()
    refused = await client.put(
        f"/api/v1/clients/{y['id']}/solutions/{plain['id']}", headers=agency.headers
    )
    assert refused.status_code == 422 and "not a solution" in refused.text
    gone = await client.delete(
        f"/api/v1/clients/{x['id']}/solutions/{app['id']}", headers=agency.headers
    )
    assert gone.status_code == 204
    again_gone = await client.delete(
        f"/api/v1/clients/{x['id']}/solutions/{app['id']}", headers=agency.headers
    )
    assert again_gone.status_code == 404


async def test_portal_lists_and_opens_only_enabled_solutions(
    client, make_agency, make_client, make_person
):
    agency, _x, _y, app, owner_x, owner_y = await _world(
        client, make_agency, make_client, make_person
    )
    base = f"/a/{agency.slug}"
    home = await owner_x.get(f"{base}/")
    assert home.status_code == 303 and home.headers["location"].endswith("/apps")
    page = await owner_x.get(f"{base}/apps")
    assert page.status_code == 200
    assert "Table Bookings" in page.text and "Online table reservations" in page.text
    opened = await owner_x.get(f"{base}/apps/{app['id']}/open")
    assert opened.status_code == 303
    target = urlsplit(opened.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == LOGIN
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["iss"] == f"{app['issuer']}"
    assert query["login_hint"].endswith("@people.example")

    other = await owner_y.get(f"{base}/apps")
    assert other.status_code == 200 and "Table Bookings" not in other.text
    assert "No solutions yet" in other.text
    assert (await owner_y.get(f"{base}/apps/{app['id']}/open")).status_code == 404
    assert (await owner_y.get(f"{base}/apps/oac_nope/open")).status_code == 404


async def test_only_clients_with_the_solution_may_sign_in_to_it(
    client, make_agency, make_client, make_person
):
    agency, _x, _y, app, owner_x, owner_y = await _world(
        client, make_agency, make_client, make_person
    )

    async def authorize(browser) -> dict[str, str]:
        _verifier, challenge = pkce()
        params = {
            "response_type": "code",
            "client_id": app["id"],
            "redirect_uri": CALLBACK,
            "scope": "openid profile email",
            "state": "s-1",
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        resp = await browser.get(f"/a/{agency.slug}/oauth2/authorize?{urlencode(params)}")
        assert resp.status_code in (302, 303), resp.text[:500]
        location = urlsplit(resp.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
        return {k: v[0] for k, v in parse_qs(location.query).items()}

    allowed = await authorize(owner_x)
    assert "code" in allowed and allowed["state"] == "s-1"
    refused = await authorize(owner_y)
    assert refused["error"] == "access_denied" and "code" not in refused, refused
    # the agency's own people may use every solution
    staff, _ = await make_person(agency, "agency_staff")
    assert "code" in await authorize(staff)
