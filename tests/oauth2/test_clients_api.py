"""Relying-party registration: CRUD, validation as problem+json naming the field, the secret
shown once, permissions, and other agencies' clients as 404."""

from __future__ import annotations

import pytest

URL = "/api/v1/oauth-clients"
GOOD = {"name": "Reviews", "redirect_uris": ["https://reviews.example/cb"]}


async def test_crud_and_secret_shown_once(client, make_agency, oidc):
    agency = await make_agency()
    created = await client.post(
        URL,
        headers=agency.headers,
        json={**GOOD, "post_logout_redirect_uris": ["https://reviews.example/bye"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"].startswith("oac_") and body["type"] == "confidential"
    assert len(body["client_secret"]) >= 40 and body["secret_hint"] == body["client_secret"][-4:]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["allowed_scopes"] == ["openid", "profile", "email", "switchboard:memberships"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["issuer"] == f"http://testserver/a/{agency.slug}"

    got = await client.get(f"{URL}/{body['id']}", headers=agency.headers)
    assert got.status_code == 200 and "client_secret" not in got.json()
    listed = await client.get(URL, headers=agency.headers)
    assert [c["id"] for c in listed.json()] == [body["id"]]

    patched = await client.patch(
        f"{URL}/{body['id']}",
        headers=agency.headers,
        json={
            "name": "Reviews Pro",
            "first_party": True,
            "redirect_uris": ["https://reviews.example/cb", "http://127.0.0.1:8765/cb"],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Reviews Pro" and patched.json()["first_party"] is True

    # rotating the secret: the old one stops working at once
    rp = await oidc.register(agency)
    url = f"/a/{agency.slug}/oauth2/token"
    rotated = await client.post(f"{URL}/{rp.id}/secret", headers=agency.headers)
    assert rotated.status_code == 200 and rotated.json()["client_secret"] != rp.secret
    old = await client.post(
        url, data={"grant_type": "refresh_token", "refresh_token": "x"}, auth=(rp.id, rp.secret)
    )
    assert old.status_code == 401
    new = await client.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=(rp.id, rotated.json()["client_secret"]),
    )
    assert new.status_code == 400 and new.json()["error"] == "invalid_grant"

    assert (await client.delete(f"{URL}/{body['id']}", headers=agency.headers)).status_code == 204
    assert (await client.get(f"{URL}/{body['id']}", headers=agency.headers)).status_code == 404
    events = (
        await client.get(
            "/api/v1/audit-events",
            headers=agency.headers,
            params={"action": "oauth_client.created"},
        )
    ).json()["items"]
    assert events and all("secret_hash" not in e["data"] for e in events)


async def test_public_clients_have_no_secret(client, make_agency):
    agency = await make_agency()
    resp = await client.post(URL, headers=agency.headers, json={**GOOD, "type": "public"})
    assert resp.status_code == 201
    assert resp.json()["client_secret"] is None
    assert resp.json()["token_endpoint_auth_method"] == "none"
    rotate = await client.post(f"{URL}/{resp.json()['id']}/secret", headers=agency.headers)
    assert rotate.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "redirect_uris": ["http://reviews.example/cb"]}, "redirect_uris.0"),
        ({**GOOD, "redirect_uris": ["https://reviews.example/cb#frag"]}, "redirect_uris.0"),
        ({**GOOD, "redirect_uris": ["/relative/cb"]}, "redirect_uris.0"),
        ({**GOOD, "redirect_uris": ["javascript:alert(1)"]}, "redirect_uris.0"),
        ({**GOOD, "redirect_uris": ["https://user:pw@reviews.example/cb"]}, "redirect_uris.0"),
        (
            {**GOOD, "post_logout_redirect_uris": ["ftp://x.example/"]},
            "post_logout_redirect_uris.0",
        ),
        ({**GOOD, "name": ""}, "name"),
        ({**GOOD, "type": "spa"}, "type"),
        ({**GOOD, "grant_types": ["password"]}, "grant_types.0"),
        ({**GOOD, "allowed_scopes": ["has space"]}, "allowed_scopes.0"),
        ({**GOOD, "allowed_scopes": []}, "allowed_scopes"),
        ({**GOOD, "secret": "mine"}, "secret"),
        ({"name": "x"}, "redirect_uris"),
        ({**GOOD, "type": "public", "grant_types": ["client_credentials"]}, "grant_types"),
        ({**GOOD, "grant_types": ["refresh_token"]}, "grant_types"),
        ({**GOOD, "allowed_scopes": ["email"]}, "allowed_scopes"),
    ],
)
async def test_validation_errors_name_the_field(client, make_agency, body, field):
    agency = await make_agency()
    resp = await client.post(URL, headers=agency.headers, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    named = {e["field"] for e in problem.get("errors", [])} | {problem.get("field")}
    assert field in named, problem


async def test_loopback_http_is_allowed(client, make_agency):
    agency = await make_agency()
    for uri in ("http://127.0.0.1:9000/cb", "http://localhost/cb", "http://[::1]:8080/cb"):
        resp = await client.post(URL, headers=agency.headers, json={**GOOD, "redirect_uris": [uri]})
        assert resp.status_code == 201, (uri, resp.text)


async def test_patch_validation(client, make_agency):
    agency = await make_agency()
    created = (await client.post(URL, headers=agency.headers, json=GOOD)).json()
    for body, field in (
        ({"redirect_uris": []}, "redirect_uris"),
        ({"name": None}, "name"),
        ({"redirect_uris": ["http://x.example"]}, "redirect_uris.0"),
    ):
        resp = await client.patch(f"{URL}/{created['id']}", headers=agency.headers, json=body)
        assert resp.status_code == 422, (body, resp.text)
        problem = resp.json()
        assert field in {e["field"] for e in problem.get("errors", [])} | {problem.get("field")}


async def test_only_agency_admins_manage_clients(client, make_agency, make_client):
    agency, other = await make_agency(), await make_agency()
    created = (await client.post(URL, headers=agency.headers, json=GOOD)).json()
    staff_key = (
        await client.post(
            "/api/v1/api-keys",
            headers=agency.headers,
            json={"name": "staff", "role": "agency_staff"},
        )
    ).json()["key"]
    staff = {"Authorization": f"Bearer {staff_key}"}
    assert (await client.get(URL, headers=staff)).status_code == 403
    assert (await client.post(URL, headers=staff, json=GOOD)).status_code == 403
    assert (await client.get(URL)).status_code == 401
    # another agency: its list is empty and the id does not exist for it
    assert (await client.get(URL, headers=other.headers)).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(
            method,
            f"{URL}/{created['id']}",
            headers=other.headers,
            json={"name": "pwned"} if method == "PATCH" else None,
        )
        assert resp.status_code == 404, method
    assert (await client.get(f"{URL}/{created['id']}", headers=agency.headers)).json()[
        "name"
    ] == "Reviews"
    for bogus in ("oac_1", "cli_abc", "nope"):
        assert (await client.get(f"{URL}/{bogus}", headers=agency.headers)).status_code == 404
