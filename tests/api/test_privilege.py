"""Privilege inside one agency (issue 7 §1): the directory cannot touch an owner, a
client-scoped caller cannot act on someone of a higher agency rank, and which solutions a
client has is the agency's decision."""

from __future__ import annotations

from tests.helpers import grant_as_owner
from tests.portal.conftest import (  # noqa: F401  (fixtures)
    Browser,
    csrf_of,
    make_person,
    new_browser,
    owner_browser,
)
from tests.scim.conftest import PATCH, USER, assert_scim_error, issue_token


async def _client_key(client, agency, client_id: str, role: str = "client_owner") -> dict:
    resp = await client.post(
        "/api/v1/api-keys",
        headers=agency.headers,
        json={"name": f"{role} key", "client_id": client_id, "role": role},
    )
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['key']}"}


async def _signs_in(app, agency, password: str) -> bool:
    browser = Browser(app)
    try:
        resp = await browser.sign_in(agency.slug, agency.owner_email, password)
        return resp.status_code == 303
    finally:
        await browser.aclose()


async def test_scim_cannot_change_anything_of_an_owner(app, client, make_agency):
    agency = await make_agency()
    token = (await issue_token(client, agency))["token"]
    scim = {"Authorization": f"Bearer {token}"}
    base = f"/a/{agency.slug}/scim/v2/Users/{agency.owner_user_id}"
    before = await client.get(base, headers=scim)
    assert before.status_code == 200, before.text
    hijack = "attacker-chosen-password-1"
    attempts = [
        ("PATCH", {"op": "replace", "path": "password", "value": hijack}),
        ("PATCH", {"op": "replace", "path": "userName", "value": "attacker@evil.example"}),
        ("PATCH", {"op": "replace", "path": "name.formatted", "value": "Pwned"}),
        ("PATCH", {"op": "replace", "path": "externalId", "value": "evil-1"}),
        ("PATCH", {"op": "add", "path": "emails", "value": [{"value": "a@evil.example"}]}),
    ]
    for _, op in attempts:
        resp = await client.patch(base, headers=scim, json={"schemas": [PATCH], "Operations": [op]})
        assert_scim_error(resp, 403)
    put = await client.put(
        base,
        headers=scim,
        json={"schemas": [USER], "userName": agency.owner_email, "password": hijack},
    )
    assert_scim_error(put, 403)
    renamed = await client.put(
        base,
        headers=scim,
        json={"schemas": [USER], "userName": "attacker@evil.example", "active": True},
    )
    assert_scim_error(renamed, 403)
    after = await client.get(base, headers=scim)
    assert after.json() == before.json()
    assert await _signs_in(app, agency, agency.owner_password)
    assert not await _signs_in(app, agency, hijack)


async def test_client_owner_cannot_disable_or_rename_an_agency_owner(
    client, make_agency, make_client
):
    agency = await make_agency()
    shop = await make_client(agency)
    # The agency owner also works on this client, as its owner (an owner's roles are changed
    # by an owner only: the onboarding key is an admin's).
    refused = await client.post(
        "/api/v1/memberships",
        headers=agency.headers,
        json={"user_id": agency.owner_user_id, "role": "client_owner", "client_id": shop["id"]},
    )
    assert refused.status_code == 403, refused.text
    membership_id = await grant_as_owner(agency, agency.owner_user_id, "client_owner", shop["id"])
    scoped = await _client_key(client, agency, shop["id"])
    url = f"/api/v1/users/{agency.owner_user_id}"
    before = (await client.get(url, headers=agency.headers)).json()
    for body in ({"status": "disabled"}, {"name": "Pwned"}):
        resp = await client.patch(url, headers=scoped, json=body)
        assert resp.status_code == 403, (body, resp.text)
    membership = await client.patch(
        f"/api/v1/memberships/{membership_id}", headers=scoped, json={"role": "client_member"}
    )
    assert membership.status_code == 403, membership.text
    removed = await client.delete(f"/api/v1/memberships/{membership_id}", headers=scoped)
    assert removed.status_code == 403, removed.text
    assert (await client.get(url, headers=agency.headers)).json() == before


async def test_solutions_are_the_agencys_decision(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    rp = await client.post(
        "/api/v1/oauth-clients",
        headers=agency.headers,
        json={"name": "Reviews", "redirect_uris": ["https://rp.example/cb"], "solution": True},
    )
    assert rp.status_code == 201, rp.text
    url = f"/api/v1/clients/{shop['id']}/solutions/{rp.json()['id']}"
    listing = f"/api/v1/clients/{shop['id']}/solutions"
    for role in ("client_owner", "client_member"):
        scoped = await _client_key(client, agency, shop["id"], role)
        assert (await client.put(url, headers=scoped)).status_code == 403
        assert (await client.get(listing, headers=agency.headers)).json() == []
    assert (await client.put(url, headers=agency.headers)).status_code == 204
    scoped = await _client_key(client, agency, shop["id"])
    assert (await client.delete(url, headers=scoped)).status_code == 403
    assert len((await client.get(listing, headers=agency.headers)).json()) == 1
    assert (await client.get(listing, headers=scoped)).status_code == 200  # still readable


async def test_solutions_are_the_agencys_decision_in_the_portal_too(
    client,
    make_agency,
    make_client,
    make_person,  # noqa: F811
    owner_browser,  # noqa: F811
):
    agency = await make_agency()
    shop = await make_client(agency)
    rp = await client.post(
        "/api/v1/oauth-clients",
        headers=agency.headers,
        json={"name": "Reviews", "redirect_uris": ["https://rp.example/cb"], "solution": True},
    )
    app_id = rp.json()["id"]
    action = f"/a/{agency.slug}/settings/apps/{app_id}/clients"
    listing = f"/api/v1/clients/{shop['id']}/solutions"
    for role, on in (("client_owner", shop["id"]), ("agency_staff", None)):
        browser, _ = await make_person(agency, role, client_id=on)
        token = csrf_of((await browser.get(f"/a/{agency.slug}/account")).text)
        resp = await browser.post(action, {"client_ids": [shop["id"]], "csrf_token": token})
        assert resp.status_code == 403, (role, resp.status_code)
        assert (await client.get(listing, headers=agency.headers)).json() == []
    owner = await owner_browser(agency)
    token = csrf_of((await owner.get(f"/a/{agency.slug}/settings/apps/{app_id}")).text)
    resp = await owner.post(action, {"client_ids": [shop["id"]], "csrf_token": token})
    assert resp.status_code == 303, resp.text[:300]
    assert len((await client.get(listing, headers=agency.headers)).json()) == 1


async def test_a_client_scoped_caller_grants_client_roles_only(client, make_agency, make_client):
    """The one grant rule (services.identity.access.check_grant): a client-scoped caller may
    hand out roles on its clients only (the portal's invitation form offers the same list,
    tests/portal/test_team.py)."""
    agency = await make_agency()
    shop = await make_client(agency)
    scoped = await _client_key(client, agency, shop["id"])
    for role in ("agency_admin", "agency_staff", "agency_owner"):
        invite = await client.post(
            "/api/v1/invitations",
            headers=scoped,
            json={"email": f"x-{role}@example.com", "role": role},
        )
        assert invite.status_code == 403, (role, invite.status_code, invite.text)
        assert "on their clients only" in invite.json()["detail"], invite.text
    ok = await client.post(
        "/api/v1/invitations",
        headers=scoped,
        json={"email": "member@example.com", "role": "client_member", "client_id": shop["id"]},
    )
    assert ok.status_code == 201, ok.text
