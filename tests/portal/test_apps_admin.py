"""The console for registered apps and the solutions an agency sells."""

from __future__ import annotations

import re

from services.portal.pages.apps_admin import router

SECRET = re.compile(r'<code class="secret" id="client-secret">([^<]+)</code>')
FORM = {
    "name": "Bella Bookings",
    "description": "Table reservations",
    "type": "confidential",
    "redirect_uris": "https://bookings.example/callback",
    "post_logout_redirect_uris": "https://bookings.example/",
    "initiate_login_uri": "https://bookings.example/login",
    "solution": "on",
    "first_party": "on",
    "scopes": ["openid", "profile", "email", "switchboard:memberships"],
}


async def _register(owner, slug: str, **over) -> tuple[str, str]:
    resp = await owner.submit(
        f"/a/{slug}/settings/apps/new", f"/a/{slug}/settings/apps", {**FORM, **over}
    )
    assert resp.status_code == 200, resp.text[:800]
    secret = SECRET.search(resp.text).group(1)
    app_id = re.search(r"/settings/apps/(oac_\w+)/secret", resp.text).group(1)
    return app_id, secret


async def test_register_edit_enable_rotate_delete(client, make_agency, make_client, owner_browser):
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Bella Vista Bistro")
    other = await make_client(agency, legal_name="Harbor Lane Florist")
    owner = await owner_browser(agency)
    slug = agency.slug

    app_id, secret = await _register(owner, slug)
    detail = await owner.get(f"/a/{slug}/settings/apps/{app_id}")
    assert detail.status_code == 200 and secret not in detail.text  # shown once only
    assert f"ends in <code>{secret[-6:]}" in detail.text or secret[-4:] in detail.text
    listed = await owner.get(f"/a/{slug}/settings/apps")
    assert "Bella Bookings" in listed.text and "Solution" in listed.text
    api = (await client.get(f"/api/v1/oauth-clients/{app_id}", headers=agency.headers)).json()
    assert api["solution"] and api["initiate_login_uri"] == "https://bookings.example/login"

    # enable for exactly the ticked clients, then change the ticks
    url = f"/a/{slug}/settings/apps/{app_id}"
    saved = await owner.submit(url, f"{url}/clients", {"client_ids": [shop["id"], other["id"]]})
    assert saved.status_code == 303
    names = lambda cid: client.get(f"/api/v1/clients/{cid}/solutions", headers=agency.headers)  # noqa: E731
    assert [s["name"] for s in (await names(shop["id"])).json()] == ["Bella Bookings"]
    await owner.submit(url, f"{url}/clients", {"client_ids": [shop["id"]]})
    assert (await names(other["id"])).json() == []
    assert len((await names(shop["id"])).json()) == 1

    # edit; bad input keeps what was typed and names the field
    bad = await owner.submit(url, url, {**FORM, "redirect_uris": "http://evil.example/cb"})
    assert bad.status_code == 422 and "https" in bad.text and "http://evil.example/cb" in bad.text
    ok = await owner.submit(url, url, {**FORM, "name": "Bella Bookings Pro"})
    assert ok.status_code == 303
    api = (await client.get(f"/api/v1/oauth-clients/{app_id}", headers=agency.headers)).json()
    assert api["name"] == "Bella Bookings Pro"

    rotated = await owner.submit(url, f"{url}/secret", {})
    new_secret = SECRET.search(rotated.text).group(1)
    assert rotated.status_code == 200 and new_secret != secret

    gone = await owner.submit(url, f"{url}/delete", {})
    assert gone.status_code == 303
    assert (
        await client.get(f"/api/v1/oauth-clients/{app_id}", headers=agency.headers)
    ).status_code == 404


async def test_registration_errors_name_the_field(make_agency, owner_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    slug = agency.slug
    resp = await owner.submit(
        f"/a/{slug}/settings/apps/new", f"/a/{slug}/settings/apps", {**FORM, "name": ""}
    )
    assert resp.status_code == 422 and 'id="name-error"' in resp.text
    public = await owner.submit(
        f"/a/{slug}/settings/apps/new",
        f"/a/{slug}/settings/apps",
        {**FORM, "type": "public", "name": "Mobile"},
    )
    assert public.status_code == 200 and not SECRET.search(public.text)  # no secret


async def test_only_people_with_the_permission_reach_it(make_agency, make_client, make_person):
    agency = await make_agency()
    shop = await make_client(agency)
    staff, _ = await make_person(agency, "agency_staff")
    customer, _ = await make_person(agency, "client_owner", client_id=shop["id"])
    for who in (staff, customer):
        assert (await who.get(f"/a/{agency.slug}/settings/apps")).status_code == 403
        assert "/settings/apps" not in (await who.get(f"/a/{agency.slug}/account")).text


async def test_another_agencys_apps_are_404_and_untouched(
    client, make_agency, make_client, owner_browser
):
    a, b = await make_agency(), await make_agency()
    shop = await make_client(a)
    owner_a, owner_b = await owner_browser(a), await owner_browser(b)
    app_id, _ = await _register(owner_a, a.slug)
    before = (await client.get(f"/api/v1/oauth-clients/{app_id}", headers=a.headers)).json()
    id_routes = set()
    for route in router.routes:
        if "{app_id}" in route.path:
            id_routes |= {(m, route.path) for m in route.methods if m != "HEAD"}
    assert len(id_routes) == 5, id_routes
    token = await owner_b.csrf(f"/a/{b.slug}/settings/apps")
    for method, template in sorted(id_routes):
        url = template.replace("{slug}", b.slug).replace("{app_id}", app_id)
        if method == "GET":
            resp = await owner_b.get(url)
        else:
            body = {**FORM, "client_ids": [shop["id"]], "csrf_token": token}
            resp = await owner_b.post(url, body)
        assert resp.status_code == 404, (method, url, resp.status_code)
    after = (await client.get(f"/api/v1/oauth-clients/{app_id}", headers=a.headers)).json()
    assert after == before
    assert (
        await client.get(f"/api/v1/clients/{shop['id']}/solutions", headers=a.headers)
    ).json() == []
