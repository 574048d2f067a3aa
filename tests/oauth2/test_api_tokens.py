"""OAuth access tokens at the Switchboard API: a relying party granted `switchboard:api` calls
/api/v1 as the person, with their permissions; every other token is a 401."""

from __future__ import annotations

import time

from tests.oauth2.test_tokens import _sign
from tests.portal.conftest import PASSWORD, new_browser  # noqa: F401  (fixtures)
from tests.portal.conftest import make_person as make_person

API_SCOPES = ["openid", "profile", "email", "switchboard:memberships", "switchboard:api"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_api_token_acts_as_the_person(oidc, make_agency, make_client, client):
    agency = await make_agency()
    await make_client(agency, legal_name="Shop One")
    rp = await oidc.register(agency, allowed_scopes=API_SCOPES, first_party=True)
    tokens = await oidc.tokens(rp, scope="openid switchboard:api")
    listed = await client.get("/api/v1/clients", headers=_bearer(tokens["access_token"]))
    assert listed.status_code == 200, listed.text
    assert [c["legal_name"] for c in listed.json()["items"]] == ["Shop One"]
    # writes are audited as the person, not as a key
    made = await client.post(
        "/api/v1/clients", headers=_bearer(tokens["access_token"]), json={"legal_name": "Two"}
    )
    assert made.status_code == 201, made.text
    events = (
        await client.get(
            "/api/v1/audit-events", headers=agency.headers, params={"action": "client.created"}
        )
    ).json()["items"]
    assert any(e["actor_type"] == "user" and e["actor_label"] == agency.owner_email for e in events)


async def test_a_client_person_sees_only_their_business(
    oidc, make_agency, make_client, client, make_person
):
    agency = await make_agency()
    mine = await make_client(agency, legal_name="Mine")
    other = await make_client(agency, legal_name="Other")
    rp = await oidc.register(agency, allowed_scopes=API_SCOPES, first_party=True)
    email = "owner@mine.example"
    await make_person(agency, "client_owner", client_id=mine["id"], email=email)
    b = await oidc.signed_in_browser(agency, email=email, password=PASSWORD)
    tokens = await oidc.tokens(rp, b, scope="openid switchboard:api")
    headers = _bearer(tokens["access_token"])
    listed = (await client.get("/api/v1/clients", headers=headers)).json()["items"]
    assert [c["id"] for c in listed] == [mine["id"]]
    assert (await client.get(f"/api/v1/clients/{other['id']}", headers=headers)).status_code == 404
    assert (await client.get("/api/v1/api-keys", headers=headers)).status_code == 403


async def test_tokens_that_are_not_for_the_api_are_refused(oidc, make_agency, client):
    a, b = await make_agency(), await make_agency()
    rp = await oidc.register(a, allowed_scopes=API_SCOPES, first_party=True)
    # issued for the relying party only (no switchboard:api): wrong audience for the API
    plain = await oidc.tokens(rp, scope="openid profile")
    resp = await client.get("/api/v1/clients", headers=_bearer(plain["access_token"]))
    assert resp.status_code == 401 and "switchboard:api" in resp.json()["detail"]
    assert resp.headers["content-type"].startswith("application/problem+json")
    good = await oidc.tokens(rp, scope="openid switchboard:api")
    claims = {
        "iss": f"http://testserver/a/{a.slug}",
        "sub": "usr_x",
        "aud": [rp.id, "http://testserver/api/v1"],
        "client_id": rp.id,
        "exp": int(time.time()) + 600,
        "iat": int(time.time()),
        "jti": "made-up",
        "scope": "switchboard:api",
    }
    for i, token in enumerate(
        (
            good["access_token"][:-4] + "AAAA",  # tampered signature
            await _sign(b, claims),  # A's issuer, B's key: another agency's token
            await _sign(a, claims),  # A's key, but a jti A never issued
            await _sign(a, {**claims, "exp": int(time.time()) - 5}),  # expired
            "not.a.jwt",
        )
    ):
        refused = await client.get("/api/v1/clients", headers=_bearer(token))
        assert refused.status_code == 401, (i, refused.text)
    # revoked at the provider: refused at the API at once
    assert (
        await client.get("/api/v1/clients", headers=_bearer(good["access_token"]))
    ).status_code == 200
    revoked = await client.post(
        f"/a/{a.slug}/oauth2/revoke", data={"token": good["access_token"]}, headers=rp.auth
    )
    assert revoked.status_code == 200
    assert (
        await client.get("/api/v1/clients", headers=_bearer(good["access_token"]))
    ).status_code == 401


async def test_machine_tokens_cannot_call_the_api(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(
        agency,
        grant_types=["client_credentials"],
        redirect_uris=[],
        allowed_scopes=["reports:read"],
    )
    resp = await client.post(
        f"/a/{agency.slug}/oauth2/token", data={"grant_type": "client_credentials"}, headers=rp.auth
    )
    assert resp.status_code == 200, resp.text
    api = await client.get("/api/v1/clients", headers=_bearer(resp.json()["access_token"]))
    assert api.status_code == 401
