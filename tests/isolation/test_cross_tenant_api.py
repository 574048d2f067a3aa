"""Cross-tenant suite: every API endpoint that takes an id, called with another tenant's
credentials, answers exactly as if the object did not exist (404) and changes nothing.

The list of endpoints comes from the OpenAPI document, so a new endpoint with an id fails
this suite until it is covered here.
"""

from __future__ import annotations

import re

import pytest

# A valid body per (method, path template), so the lookup (not validation) decides.
BODIES = {
    ("PUT", "/api/v1/clients/{client_id}/solutions/{solution_id}"): None,
    ("PATCH", "/api/v1/clients/{client_id}"): {"notes": "pwned"},
    ("POST", "/api/v1/clients/{client_id}/lifecycle"): {"stage": "onboarding"},
    ("PATCH", "/api/v1/users/{user_id}"): {"name": "pwned"},
    ("PATCH", "/api/v1/memberships/{membership_id}"): {"role": "client_member"},
    ("PATCH", "/api/v1/agencies/{agency_id}"): {"name": "pwned"},
    ("PATCH", "/api/v1/oauth-clients/{oauth_client_id}"): {"name": "pwned"},
    ("POST", "/api/v1/oauth-clients/{oauth_client_id}/secret"): {},
    ("PUT", "/api/v1/agency/sign-in-providers/{provider}"): {
        "client_id": "pwned",
        "client_secret": "pwned-secret",
    },
}
# Operator-only endpoints: an agency key gets 403 for every id, its own included (no oracle).
OPERATOR_ONLY = {("PATCH", "/api/v1/agencies/{agency_id}")}
# The caller's own agency's objects, named by kind (no other tenant's id fits in the path): B
# reaches B's own (a 404 until B creates one); A's is compared in the snapshot.
OWN_AGENCY = {(m, "/api/v1/agency/sign-in-providers/{provider}") for m in ("GET", "PUT", "DELETE")}


async def _id_routes(client) -> list[tuple[str, str]]:
    spec = (await client.get("/openapi.json")).json()
    out = []
    for path, ops in spec["paths"].items():
        if "{" in path:
            out += [
                (m.upper(), path) for m in ops if m in ("get", "post", "patch", "put", "delete")
            ]
    return sorted(out)


async def _world(client, make_agency, make_client):
    """Agency A with one object of every kind, and agency B."""
    a, b = await make_agency(), await make_agency()
    shop = await make_client(a, legal_name="A's shop")
    inv = (
        await client.post(
            "/api/v1/invitations",
            headers=a.headers,
            json={"email": "x@example.com", "role": "client_member", "client_id": shop["id"]},
        )
    ).json()
    key = (await client.post("/api/v1/api-keys", headers=a.headers, json={"name": "k"})).json()
    scim_token = (
        await client.post("/api/v1/scim-tokens", headers=a.headers, json={"name": "directory"})
    ).json()
    # A person of A (an admin key may not give the owner a role: see tests/api/test_privilege.py).
    person = (
        await client.post(
            f"/a/{a.slug}/scim/v2/Users",
            headers={"Authorization": f"Bearer {scim_token['token']}"},
            json={
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": f"person@{a.slug}.example",
            },
        )
    ).json()
    member = (
        await client.post(
            "/api/v1/memberships",
            headers=a.headers,
            json={"user_id": person["id"], "role": "client_member", "client_id": shop["id"]},
        )
    ).json()
    oauth_client = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=a.headers,
            json={"name": "rp", "redirect_uris": ["https://rp.example/cb"], "solution": True},
        )
    ).json()
    enabled = await client.put(
        f"/api/v1/clients/{shop['id']}/solutions/{oauth_client['id']}", headers=a.headers
    )
    assert enabled.status_code == 204, enabled.text
    google = await client.put(
        "/api/v1/agency/sign-in-providers/google",
        headers=a.headers,
        json={"client_id": "a-client", "client_secret": "a-secret"},
    )
    assert google.status_code == 200, google.text
    ids = {
        "oauth_client_id": oauth_client["id"],
        "solution_id": oauth_client["id"],
        "client_id": shop["id"],
        "invitation_id": inv["id"],
        "key_id": key["id"],
        "user_id": person["id"],
        "membership_id": member["id"],
        "agency_id": a.public_id,
        "token_id": scim_token["id"],
        "provider": "google",
    }
    return a, b, ids


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


async def _snapshot(client, a, ids) -> dict:
    return {
        "client": (
            await client.get(f"/api/v1/clients/{ids['client_id']}", headers=a.headers)
        ).json(),
        "user": (await client.get(f"/api/v1/users/{ids['user_id']}", headers=a.headers)).json(),
        "key": (await client.get(f"/api/v1/api-keys/{ids['key_id']}", headers=a.headers)).json(),
        "invitation": (
            await client.get(f"/api/v1/invitations/{ids['invitation_id']}", headers=a.headers)
        ).json(),
        "agency": (await client.get("/api/v1/agency", headers=a.headers)).json(),
        "scim_tokens": (await client.get("/api/v1/scim-tokens", headers=a.headers)).json(),
        "sign_in_google": (
            await client.get("/api/v1/agency/sign-in-providers/google", headers=a.headers)
        ).json(),
        "solutions": (
            await client.get(f"/api/v1/clients/{ids['client_id']}/solutions", headers=a.headers)
        ).json(),
    }


async def test_every_id_endpoint_hides_other_agencies_objects(client, make_agency, make_client):
    a, b, ids = await _world(client, make_agency, make_client)
    routes = await _id_routes(client)
    assert len(routes) >= 14
    before = await _snapshot(client, a, ids)
    for method, path in routes:
        assert all(p in ids for p in re.findall(r"\{(\w+)\}", path)), f"no id kind for {path}"
        if method in ("POST", "PATCH", "PUT"):
            assert (method, path) in BODIES, f"add a valid body for {method} {path}"
        resp = await client.request(
            method, _fill(path, ids), headers=b.headers, json=BODIES.get((method, path))
        )
        if (method, path) in OWN_AGENCY:
            assert resp.status_code in (200, 204, 404), (method, path, resp.text)
            continue
        if (method, path) in OPERATOR_ONLY:
            assert resp.status_code == 403, (method, path, resp.text)
            own = await client.request(
                method,
                _fill(path, {**ids, "agency_id": b.public_id}),
                headers=b.headers,
                json=BODIES.get((method, path)),
            )
            assert own.status_code == 403
            continue
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
        assert resp.json()["type"].endswith("/not-found")
    after = await _snapshot(client, a, ids)
    assert after == before | {"key": after["key"]}  # only A's own reads touched last_used
    assert after["key"]["revoked_at"] is None


async def test_client_scoped_credentials_see_only_their_client(client, make_agency, make_client):
    agency = await make_agency()
    x = await make_client(agency, legal_name="X")
    y = await make_client(agency, legal_name="Y")
    key = (
        await client.post(
            "/api/v1/api-keys",
            headers=agency.headers,
            json={"name": "x", "client_id": x["id"], "role": "client_owner"},
        )
    ).json()["key"]
    scoped = {"Authorization": f"Bearer {key}"}
    users = (await client.get("/api/v1/users", headers=agency.headers)).json()["items"]
    ids = {"client_id": y["id"], "user_id": users[0]["id"], "agency_id": agency.public_id}
    for method, path in await _id_routes(client):
        names = re.findall(r"\{(\w+)\}", path)
        if not set(names) <= {"client_id", "user_id"}:
            continue
        body = BODIES.get((method, path))
        other = await client.request(method, _fill(path, ids), headers=scoped, json=body)
        own = await client.request(
            method, _fill(path, {**ids, "client_id": x["id"]}), headers=scoped, json=body
        )
        if other.status_code == 403:
            assert own.status_code == 403, (method, path)  # a permission, not an oracle
        else:
            assert other.status_code == 404, (method, path, other.status_code, other.text)
    untouched = (await client.get(f"/api/v1/clients/{y['id']}", headers=agency.headers)).json()
    assert untouched["notes"] is None and untouched["lifecycle_stage"] == "prospect"


@pytest.mark.parametrize("bogus", ["cli_1", "usr_", "nope", "cli_" + "z" * 30, "key_0OIl"])
async def test_malformed_ids_are_404(client, make_agency, bogus):
    agency = await make_agency()
    for prefix in ("clients", "users", "api-keys", "invitations"):
        resp = await client.get(f"/api/v1/{prefix}/{bogus}", headers=agency.headers)
        assert resp.status_code == 404, (prefix, bogus)
