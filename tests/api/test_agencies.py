"""Agencies: operator onboarding, branding, and who may see what."""

from __future__ import annotations


async def test_operator_creates_agency_with_owner_and_key(client, operator_headers, make_agency):
    agency = await make_agency(name="Northwind Digital")
    me = await client.get("/api/v1/agency", headers=agency.headers)
    assert me.status_code == 200
    assert me.json()["slug"] == agency.slug and me.json()["name"] == "Northwind Digital"
    users = (await client.get("/api/v1/users", headers=agency.headers)).json()["items"]
    assert [(u["email"], [m["role"] for m in u["memberships"]]) for u in users] == [
        (agency.owner_email, ["agency_owner"])
    ]
    listed = await client.get("/api/v1/agencies", headers=operator_headers, params={"limit": 200})
    assert listed.status_code == 200
    got = await client.get(f"/api/v1/agencies/{agency.public_id}", headers=operator_headers)
    assert got.json()["slug"] == agency.slug


async def test_duplicate_slug_is_409_and_bad_slug_422(client, operator_headers, make_agency):
    agency = await make_agency()
    body = {"slug": agency.slug, "name": "Copy", "admin_email": "x@example.com"}
    dup = await client.post("/api/v1/agencies", headers=operator_headers, json=body)
    assert dup.status_code == 409
    assert dup.json()["field"] == "slug"
    for slug in ("Bad Slug", "-x", "api", "a" * 64):
        bad = await client.post(
            "/api/v1/agencies", headers=operator_headers, json={**body, "slug": slug}
        )
        assert bad.status_code == 422, slug
        assert "slug" in bad.json()["detail"]


async def test_only_the_operator_manages_agencies(client, make_agency):
    agency = await make_agency()
    for method, path in (("GET", "/api/v1/agencies"), ("POST", "/api/v1/agencies")):
        resp = await client.request(method, path, headers=agency.headers, json={})
        assert resp.status_code in (403, 422) if method == "POST" else resp.status_code == 403
    forbidden = await client.get("/api/v1/agencies", headers=agency.headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["type"].endswith("/forbidden")


async def test_authentication_failures_are_401(client, make_agency):
    agency = await make_agency()
    tampered = agency.api_key[:-3] + ("aaa" if not agency.api_key.endswith("aaa") else "bbb")
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Bearer {tampered}"},
    ):
        resp = await client.get("/api/v1/clients", headers=headers)
        assert resp.status_code == 401, headers
        assert resp.headers["www-authenticate"].startswith("Bearer")
        assert agency.api_key not in resp.text


async def test_branding_update_and_operator_suspension(client, operator_headers, make_agency):
    agency = await make_agency()
    resp = await client.patch(
        "/api/v1/agency",
        headers=agency.headers,
        json={"brand_primary_color": "#FF0066", "name": "Renamed"},
    )
    assert resp.status_code == 200
    assert resp.json()["brand_primary_color"] == "#ff0066"
    bad = await client.patch(
        "/api/v1/agency", headers=agency.headers, json={"brand_primary_color": "red"}
    )
    assert bad.status_code == 422
    suspended = await client.patch(
        f"/api/v1/agencies/{agency.public_id}",
        headers=operator_headers,
        json={"status": "suspended"},
    )
    assert suspended.json()["status"] == "suspended"
    locked = await client.get("/api/v1/clients", headers=agency.headers)
    assert locked.status_code == 401
