"""SCIM Users: create, read, replace, delete; the mapping to Switchboard's users; uniqueness;
deactivation that signs the person out; owner protection; ETags; partial representations."""

from __future__ import annotations

from services.identity import service as identity
from services.kit.db import unit_of_work
from tenants.models import Agency
from tenants.scoping import unscoped
from tests.scim.conftest import SCIM_JSON, USER, assert_scim_error

PASSWORD = "a-long-enough-password"


def _user(user_name: str, **attrs) -> dict:
    return {"schemas": [USER], "userName": user_name, **attrs}


async def test_create_maps_onto_a_switchboard_user(make_scim, client):
    scim = await make_scim()
    resp = await scim.post(
        "/Users",
        _user(
            "Ana.Silva@Example.com",
            externalId="00u1okta",
            name={"givenName": "Ana", "familyName": "Silva"},
            emails=[
                {"value": "ana@example.com", "type": "work", "primary": True},
                {"value": "ana@home.example", "type": "home"},
            ],
            nickName="ignored: not stored",
            title="ignored too",
        ),
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"].startswith(SCIM_JSON)
    body = resp.json()
    assert resp.headers["location"] == body["meta"]["location"]
    assert resp.headers["etag"] == body["meta"]["version"]
    assert body["id"].startswith("usr_")
    assert body["userName"] == "ana.silva@example.com"  # the sign-in e-mail, lower-cased
    assert body["name"] == {"formatted": "Ana Silva", "givenName": "Ana", "familyName": "Silva"}
    assert body["active"] is True and body["externalId"] == "00u1okta"
    assert [e["value"] for e in body["emails"]] == ["ana@example.com", "ana@home.example"]
    assert "nickName" not in body and "password" not in body
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"].endswith(f"/a/{scim.agency.slug}/scim/v2/Users/{body['id']}")
    # The same person through the agency API.
    api = (await client.get(f"/api/v1/users/{body['id']}", headers=scim.agency.headers)).json()
    assert api["email"] == "ana.silva@example.com" and api["name"] == "Ana Silva"
    assert api["status"] == "active" and api["memberships"] == []
    # GET answers the same representation.
    got = await scim.get(f"/Users/{body['id']}")
    assert got.status_code == 200 and got.json() == body


async def test_existing_people_are_visible_to_the_directory(make_scim):
    scim = await make_scim()
    resp = await scim.get("/Users", params={"filter": f'userName eq "{scim.agency.owner_email}"'})
    found = resp.json()["Resources"]
    assert len(found) == 1 and found[0]["active"] is True
    assert [g["display"] for g in found[0]["groups"]] == ["Agency owners"]


async def test_user_name_is_unique_case_insensitively(make_scim):
    scim = await make_scim()
    await scim.create_user("dup@example.com")
    assert_scim_error(await scim.post("/Users", _user("DUP@example.com")), 409, "uniqueness")
    assert_scim_error(await scim.post("/Users", _user(scim.agency.owner_email)), 409, "uniqueness")
    other = await scim.create_user("other@example.com")
    resp = await scim.put(f"/Users/{other['id']}", _user("Dup@Example.com"))
    assert_scim_error(resp, 409, "uniqueness")


async def test_the_same_user_name_in_two_agencies_is_fine(make_scim):
    a, b = await make_scim(), await make_scim()
    ua = await a.create_user("same@example.com")
    ub = await b.create_user("same@example.com")
    assert ua["id"] != ub["id"]


async def test_bad_users_are_400(make_scim):
    scim = await make_scim()
    for body, scim_type in (
        ({"schemas": [USER]}, None),  # no userName
        (_user(""), None),
        (_user("has space@example.com"), "invalidValue"),
        (_user("x" * 400 + "@example.com"), "invalidValue"),
        (_user("p@example.com", password="short"), "invalidValue"),
        (_user("e@example.com", emails=[{"type": "work"}]), "invalidValue"),
        (_user("t@example.com", active="sometimes"), None),
        (_user("n@example.com", name="not an object"), None),
        (
            _user(
                "two@example.com",
                emails=[
                    {"value": "a@x.com", "primary": True},
                    {"value": "b@x.com", "primary": True},
                ],
            ),
            None,
        ),
        ({"schemas": ["urn:nope"], "userName": "s@example.com"}, None),
    ):
        resp = await scim.post("/Users", body)
        assert_scim_error(resp, 400, scim_type)
    for raw in (b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"):
        resp = await scim.request(
            "POST", "/Users", content=raw, headers={"content-type": SCIM_JSON}
        )
        assert_scim_error(resp, 400, "invalidSyntax")


async def test_read_only_and_unknown_ids(make_scim):
    scim = await make_scim()
    for bogus in ("usr_1", "nope", "grp_" + "z" * 10, "usr_" + "z" * 30):
        assert_scim_error(await scim.get(f"/Users/{bogus}"), 404)
        assert_scim_error(await scim.put(f"/Users/{bogus}", _user("a@b.c")), 404)
        assert_scim_error(await scim.delete(f"/Users/{bogus}"), 404)


async def test_put_replaces_everything_the_directory_manages(make_scim):
    scim = await make_scim()
    user = await scim.create_user(
        "put@example.com",
        externalId="e1",
        name={"formatted": "Old Name", "givenName": "Old"},
        emails=[{"value": "put@example.com", "primary": True}],
    )
    resp = await scim.put(
        f"/Users/{user['id']}",
        _user("renamed@example.com", name={"givenName": "New", "familyName": "Name"}, active=True),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["userName"] == "renamed@example.com"
    assert body["name"] == {"formatted": "New Name", "givenName": "New", "familyName": "Name"}
    assert "emails" not in body and "externalId" not in body
    assert body["meta"]["version"] != user["meta"]["version"]
    assert body["meta"]["lastModified"] > user["meta"]["lastModified"]
    assert body["meta"]["created"] == user["meta"]["created"]


async def test_put_without_active_keeps_the_status(make_scim):
    scim = await make_scim()
    user = await scim.create_user("keep@example.com", active=False)
    assert user["active"] is False
    resp = await scim.put(f"/Users/{user['id']}", _user("keep@example.com"))
    assert resp.status_code == 200 and resp.json()["active"] is False


async def _signed_in(agency_id, email: str) -> str:
    async with unit_of_work() as session:
        async with unscoped(session, "test: load the agency"):
            from sqlalchemy import select

            agency = (
                await session.execute(select(Agency).where(Agency.id == agency_id))
            ).scalar_one()
        from tenants.context import TenantContext
        from tenants.scoping import set_tenant

        await set_tenant(session, TenantContext.for_agency(agency.id))
        _, token = await identity.sign_in(
            session, agency, email=email, password=PASSWORD, ip=None, user_agent="test"
        )
    return token


async def _session_valid(agency_id, token: str) -> bool:
    from sqlalchemy import select

    async with unit_of_work() as session:
        async with unscoped(session, "test: load the agency"):
            agency = (
                await session.execute(select(Agency).where(Agency.id == agency_id))
            ).scalar_one()
        return await identity.resolve_browser_session(session, agency, token) is not None


async def test_deactivation_disables_and_signs_out(make_scim, client):
    scim = await make_scim()
    user = await scim.create_user("leaver@example.com", password=PASSWORD)
    token = await _signed_in(scim.agency.id, "leaver@example.com")
    assert await _session_valid(scim.agency.id, token)
    resp = await scim.patch(
        f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False}
    )
    assert resp.status_code == 200 and resp.json()["active"] is False
    assert not await _session_valid(scim.agency.id, token)
    api = (await client.get(f"/api/v1/users/{user['id']}", headers=scim.agency.headers)).json()
    assert api["status"] == "disabled"
    events = (
        await client.get(
            "/api/v1/audit-events",
            headers=scim.agency.headers,
            params={"action": "scim.user.deactivated"},
        )
    ).json()["items"]
    assert len(events) == 1 and events[0]["data"] == {"sessions_revoked": 1}
    assert events[0]["actor_label"] == "SCIM token Okta"
    # Reactivation lets them sign in again.
    resp = await scim.patch(f"/Users/{user['id']}", {"op": "replace", "value": {"active": True}})
    assert resp.status_code == 200 and resp.json()["active"] is True
    assert await _session_valid(
        scim.agency.id, await _signed_in(scim.agency.id, "leaver@example.com")
    )


async def test_delete_disables_signs_out_and_hides(make_scim, client):
    scim = await make_scim()
    user = await scim.create_user("gone@example.com", password=PASSWORD)
    admins = await scim.group_named("Agency admins")
    await scim.patch(
        f"/Groups/{admins['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    token = await _signed_in(scim.agency.id, "gone@example.com")
    assert (await scim.delete(f"/Users/{user['id']}")).status_code == 204
    assert not await _session_valid(scim.agency.id, token)
    assert_scim_error(await scim.get(f"/Users/{user['id']}"), 404)
    assert_scim_error(await scim.delete(f"/Users/{user['id']}"), 404)
    listed = (await scim.get("/Users", params={"filter": 'userName eq "gone@example.com"'})).json()
    assert listed["totalResults"] == 0
    assert "members" not in (await scim.get(f"/Groups/{admins['id']}")).json()
    # Switchboard keeps the person, disabled and without roles (history keeps its author).
    api = (await client.get(f"/api/v1/users/{user['id']}", headers=scim.agency.headers)).json()
    assert api["status"] == "disabled" and api["memberships"] == []
    # Provisioning the same userName again starts afresh.
    again = await scim.create_user("gone@example.com")
    assert again["active"] is True and "groups" not in again


async def test_owners_are_out_of_the_directorys_reach(make_scim):
    scim = await make_scim()
    found = await scim.get("/Users", params={"filter": f'userName eq "{scim.agency.owner_email}"'})
    owner = found.json()["Resources"][0]
    resp = await scim.patch(
        f"/Users/{owner['id']}", {"op": "replace", "path": "active", "value": False}
    )
    assert_scim_error(resp, 403)
    assert_scim_error(await scim.delete(f"/Users/{owner['id']}"), 403)
    resp = await scim.put(f"/Users/{owner['id']}", _user(scim.agency.owner_email, active=False))
    assert_scim_error(resp, 403)
    still = (await scim.get(f"/Users/{owner['id']}")).json()
    assert still["active"] is True
    # Nor change anything else of an owner: the name included (issue 7).
    resp = await scim.patch(
        f"/Users/{owner['id']}", {"op": "replace", "path": "name.givenName", "value": "Olga"}
    )
    assert_scim_error(resp, 403)
    assert (await scim.get(f"/Users/{owner['id']}")).json() == still


async def test_if_match(make_scim):
    scim = await make_scim()
    user = await scim.create_user("etag@example.com")
    version = user["meta"]["version"]
    op = {"op": "replace", "path": "name.givenName", "value": "Eve"}
    stale = await scim.patch(f"/Users/{user['id']}", op, headers={"If-Match": 'W/"stale"'})
    assert_scim_error(stale, 412)
    ok = await scim.patch(f"/Users/{user['id']}", op, headers={"If-Match": version})
    assert ok.status_code == 200
    assert ok.headers["etag"] != version
    assert_scim_error(
        await scim.put(
            f"/Users/{user['id']}", _user("etag@example.com"), headers={"If-Match": version}
        ),
        412,
    )
    assert_scim_error(await scim.delete(f"/Users/{user['id']}", headers={"If-Match": version}), 412)
    resp = await scim.delete(f"/Users/{user['id']}", headers={"If-Match": "*"})
    assert resp.status_code == 204


async def test_attributes_and_excluded_attributes(make_scim):
    scim = await make_scim()
    user = await scim.create_user(
        "attrs@example.com", name={"givenName": "A"}, emails=[{"value": "attrs@example.com"}]
    )
    one = (await scim.get(f"/Users/{user['id']}", params={"attributes": "userName"})).json()
    assert set(one) == {"schemas", "id", "userName"}
    less = (
        await scim.get(f"/Users/{user['id']}", params={"excludedAttributes": "emails,name"})
    ).json()
    assert "emails" not in less and "name" not in less and less["userName"] == "attrs@example.com"
    listed = (
        await scim.get("/Users", params={"attributes": "emails", "filter": 'userName sw "attrs"'})
    ).json()
    assert set(listed["Resources"][0]) == {"schemas", "id", "emails"}
    both = await scim.get("/Users", params={"attributes": "emails", "excludedAttributes": "name"})
    assert_scim_error(both, 400)
    bad = await scim.get("/Users", params={"attributes": "emails[[["})
    assert_scim_error(bad, 400)


async def test_discovery_documents(make_scim):
    scim = await make_scim()
    spc = (await scim.get("/ServiceProviderConfig")).json()
    assert spc["patch"]["supported"] and spc["filter"] == {"supported": True, "maxResults": 200}
    assert spc["etag"]["supported"] and not spc["bulk"]["supported"]
    assert spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = (await scim.get("/ResourceTypes")).json()
    assert {t["name"]: t["endpoint"] for t in types["Resources"]} == {
        "User": "/Users",
        "Group": "/Groups",
    }
    assert (await scim.get("/ResourceTypes/User")).json()["schema"] == USER
    assert_scim_error(await scim.get("/ResourceTypes/Nope"), 404)
    schemas = (await scim.get("/Schemas")).json()
    ids = {s["id"] for s in schemas["Resources"]}
    assert USER in ids and "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" not in ids
    user_schema = (await scim.get(f"/Schemas/{USER}")).json()
    names = {a["name"] for a in user_schema["attributes"]}
    assert names == {"userName", "name", "emails", "active", "password", "groups"}
    assert_scim_error(await scim.get("/Schemas/urn:nope"), 404)
    assert_scim_error(await scim.get("/Nowhere"), 404)
    assert_scim_error(await scim.request("DELETE", "/ServiceProviderConfig"), 405)
    assert_scim_error(await scim.post("/.search", {"filter": "nope eq 1"}), 400, "invalidFilter")
