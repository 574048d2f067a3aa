"""Every portal route that takes an id, called by someone who must not see that object,
answers 404 (exactly like an id that does not exist) and changes nothing:

* a signed-in user of agency B, for agency A's objects;
* a client user of client X (and staff assigned to X only), for client Y of the same agency.

The route list is read from the portal's one list of page routers
(`services.portal.endpoints.PAGE_ROUTERS`, the same list the app mounts), so a new page
group is covered as soon as it is mounted, and a new route with an id fails
`test_every_portal_id_route_is_covered` until it is added here.
Path parameters that name no object (`{slug}`, the `{provider}` of upstream sign-in) are
not ids.
"""

from __future__ import annotations

import re

import httpx

from services.portal.endpoints import PAGE_ROUTERS
from tests.portal.conftest import PASSWORD

NOT_IDS = ("slug", "provider")
APP_FORM = {
    "name": "Pwned",
    "redirect_uris": "https://evil.example/cb",
    "type": "confidential",
    "scopes": ["openid"],
}

# (method, route template) → form body that would be valid for the object's owner.
ID_ROUTES: dict[tuple[str, str], dict[str, str] | None] = {
    ("GET", "/a/{slug}/clients/{client_id}"): None,
    ("GET", "/a/{slug}/apps/{solution_id}/open"): None,
    ("GET", "/a/{slug}/settings/apps/{app_id}"): None,
    ("POST", "/a/{slug}/settings/apps/{app_id}"): APP_FORM,
    ("POST", "/a/{slug}/settings/apps/{app_id}/clients"): {},
    ("POST", "/a/{slug}/settings/apps/{app_id}/secret"): {},
    ("POST", "/a/{slug}/settings/apps/{app_id}/delete"): {},
    ("POST", "/a/{slug}/account/passkeys/{passkey_id}/rename"): {"name": "Pwned"},
    ("POST", "/a/{slug}/account/passkeys/{passkey_id}/remove"): {"password": PASSWORD},
    ("GET", "/a/{slug}/clients/{client_id}/edit"): None,
    ("POST", "/a/{slug}/clients/{client_id}/edit"): {"legal_name": "Pwned Ltd", "timezone": "UTC"},
    ("POST", "/a/{slug}/clients/{client_id}/lifecycle"): {"stage": "onboarding"},
    ("POST", "/a/{slug}/clients/{client_id}/impersonate"): {
        "user_id": "usr_1",
        "reason": "Looking around",
        "minutes": "30",
    },
    ("POST", "/a/{slug}/team/invitations/{invitation_id}/revoke"): {},
    ("GET", "/a/{slug}/invite/{token}"): None,
    ("GET", "/a/{slug}/reset/{token}"): None,
    ("POST", "/a/{slug}/reset/{token}"): {
        "password": PASSWORD + "-new",
        "password_confirm": PASSWORD + "-new",
    },
    ("POST", "/a/{slug}/invite/{token}"): {
        "name": "Pwned",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
    },
}


def test_every_portal_id_route_is_covered():
    found = set()
    for portal_router in PAGE_ROUTERS:
        for route in portal_router.routes:
            path = getattr(route, "path", "")
            if any(p not in NOT_IDS for p in re.findall(r"\{(\w+)\}", path)):
                found |= {(m, path) for m in getattr(route, "methods", ()) if m != "HEAD"}
    assert found == set(ID_ROUTES), found ^ set(ID_ROUTES)


def _fill(path: str, slug: str, ids: dict[str, str]) -> str:
    path = path.replace("{slug}", slug)
    if "/reset/" in path:  # a password-reset token, not an invitation's
        path = path.replace("{token}", ids["reset_token"])
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


async def _call(browser, method: str, url: str, body: dict | None, token_page: str):
    if method == "GET":
        return await browser.get(url)
    token = await browser.csrf(token_page)
    return await browser.post(url, {**(body or {}), "csrf_token": token})


async def _state(client, agency, client_ids: list[str], invitation_id: str) -> dict:
    out = {}
    for cid in client_ids:
        out[cid] = (await client.get(f"/api/v1/clients/{cid}", headers=agency.headers)).json()
    out["invitation"] = (
        await client.get(f"/api/v1/invitations/{invitation_id}", headers=agency.headers)
    ).json()
    return out


async def _passkey_of_owner(agency, browser) -> str:
    """A passkey of agency A's owner (registered with the software authenticator)."""
    from services.identity.models import Passkey
    from services.kit import ids
    from tests.portal.test_passkeys import SoftAuthenticator, _rows, register

    added, _ = await register(browser, agency.slug, SoftAuthenticator())
    assert added.status_code == 200, added.text
    return ids.encode("pk", (await _rows(agency, Passkey))[0].id)


async def _app_and_passkeys(client, agency, app_id: str) -> dict:
    from services.identity.models import Passkey
    from tests.portal.test_passkeys import _rows

    app = await client.get(f"/api/v1/oauth-clients/{app_id}", headers=agency.headers)
    keys = sorted((p.name, p.credential_id) for p in await _rows(agency, Passkey))
    return {"app": app.json(), "passkeys": keys}


async def _reset_token(browser, agency, mailbox) -> str:
    from tests.helpers import wait_for_jobs

    await browser.submit(
        f"/a/{agency.slug}/forgot", f"/a/{agency.slug}/forgot", {"email": agency.owner_email}
    )
    await wait_for_jobs(lambda: bool(mailbox.to(agency.owner_email)))
    body = mailbox.to(agency.owner_email)[-1]["body"]
    return re.search(r"/reset/([A-Za-z0-9]+)", body).group(1)


async def test_another_agencys_objects_are_404_and_untouched(
    client, make_agency, make_client, owner_browser, new_browser, mailbox
):
    a, b = await make_agency(), await make_agency()
    shop = await make_client(a, legal_name="A's shop")
    inv = (
        await client.post(
            "/api/v1/invitations",
            headers=a.headers,
            json={"email": "x@a.example", "role": "client_member", "client_id": shop["id"]},
        )
    ).json()
    app = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=a.headers,
            json={
                "name": "A's app",
                "redirect_uris": ["https://app.a.example/cb"],
                "solution": True,
                "initiate_login_uri": "https://app.a.example/login",
            },
        )
    ).json()
    ids = {
        "client_id": shop["id"],
        "solution_id": app["id"],
        "app_id": app["id"],
        "passkey_id": await _passkey_of_owner(a, await owner_browser(a)),
        "invitation_id": inv["id"],
        "token": httpx.URL(inv["url"]).path.rsplit("/", 1)[-1],
        "reset_token": await _reset_token(new_browser(), a, mailbox),
    }
    before = await _state(client, a, [shop["id"]], inv["id"])
    before["app"] = await _app_and_passkeys(client, a, app["id"])
    intruder = await owner_browser(b)  # agency B's owner: every permission, in B
    for (method, template), body in ID_ROUTES.items():
        # Through B's own portal address (the session lives there) ...
        url = _fill(template, b.slug, ids)
        resp = await _call(intruder, method, url, body, f"/a/{b.slug}/clients")
        assert resp.status_code == 404, (method, url, resp.status_code)
        assert "Page not found" in resp.text or "Link no longer valid" in resp.text
        # ... and through A's address, where B's cookie is not a session at all.
        url_a = _fill(template, a.slug, ids)
        if "{token}" not in template:
            resp_a = (
                await intruder.get(url_a)
                if method == "GET"
                else await intruder.post(url_a, body or {})
            )
            assert resp_a.status_code in (303, 403), (method, url_a, resp_a.status_code)
    after = await _state(client, a, [shop["id"]], inv["id"])
    after["app"] = await _app_and_passkeys(client, a, app["id"])
    assert after == before
    reset_still_valid = await new_browser().get(f"/a/{a.slug}/reset/{ids['reset_token']}")
    assert reset_still_valid.status_code == 200  # B's attempts did not use A's link


async def test_client_users_and_assigned_staff_only_reach_their_clients(
    client, make_agency, make_client, make_person
):
    agency = await make_agency()
    x = await make_client(agency, legal_name="Client X")
    y = await make_client(agency, legal_name="Client Y")
    owner_x, _ = await make_person(agency, "client_owner", client_id=x["id"])
    staff_x, staff_id = await make_person(agency, "agency_staff")
    assigned = await client.patch(
        f"/api/v1/clients/{x['id']}", headers=agency.headers, json={"assigned_staff": [staff_id]}
    )
    assert assigned.status_code == 200
    inv_y = (
        await client.post(
            "/api/v1/invitations",
            headers=agency.headers,
            json={"email": "y@y.example", "role": "client_member", "client_id": y["id"]},
        )
    ).json()
    inv_agency = (
        await client.post(
            "/api/v1/invitations",
            headers=agency.headers,
            json={"email": "admin@a.example", "role": "agency_admin"},
        )
    ).json()
    before = await _state(client, agency, [x["id"], y["id"]], inv_y["id"])

    for who, browser in (("client owner of X", owner_x), ("staff assigned to X", staff_x)):
        # Their own client is there ...
        own = await browser.get(f"/a/{agency.slug}/clients/{x['id']}")
        assert own.status_code == 200, who
        listing = await browser.get(f"/a/{agency.slug}/clients")
        assert "Client X" in listing.text and "Client Y" not in listing.text, who
        # ... the other one does not exist for them.
        for (method, template), body in ID_ROUTES.items():
            if "{client_id}" not in template:
                continue
            url = _fill(template, agency.slug, {"client_id": y["id"]})
            resp = await _call(browser, method, url, body, f"/a/{agency.slug}/clients")
            allowed = {404}
            if template.endswith(("/lifecycle", "/impersonate")) and who.startswith("client"):
                allowed = {403}  # no lifecycle permission at all, for X as much as for Y
            assert resp.status_code in allowed, (who, method, url, resp.status_code)
        for inv in (inv_y, inv_agency):
            url = f"/a/{agency.slug}/team/invitations/{inv['id']}/revoke"
            resp = await _call(browser, "POST", url, {}, f"/a/{agency.slug}/clients")
            assert resp.status_code == 404, (who, inv["email"], resp.status_code)
    assert await _state(client, agency, [x["id"], y["id"]], inv_y["id"]) == before
    agency_inv = (
        await client.get(f"/api/v1/invitations/{inv_agency['id']}", headers=agency.headers)
    ).json()
    assert agency_inv["status"] == "pending"


def test_every_portal_router_is_listed(app):
    """A router the portal mounts but this suite does not list would escape the id check."""

    def routers(routes):  # the routers the app includes (FastAPI wraps each one)
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                yield inner
                yield from routers(inner.routes)

    portal = {
        id(r)
        for r in routers(app.routes)
        if any(
            getattr(getattr(route, "endpoint", None), "__module__", "").startswith(
                "services.portal"
            )
            for route in r.routes
        )
    }
    assert portal and portal <= {id(r) for r in PAGE_ROUTERS}
