"""Input that used to give a 500 (issue 7 §3): each is now a 4xx problem naming what is wrong.

- PATCH bodies: null for a field that cannot be null is a 422 naming the field (it used to
  reach a NOT NULL column);
- date-times: one aware-datetime input type; a date-time without offset is a 422 naming the
  field, one out of range (year 9999 at a negative offset) is a 422;
- cursors: one that does not decode (a date-time without offset inside, garbage) is a 400;
- text: a NUL character is a 422 everywhere text comes in (PostgreSQL cannot store it, and
  SQLite would keep a string other tools cut short).
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.scim.conftest import GROUP, USER, issue_token

PROBLEM = "application/problem+json"


def _problem(resp, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM, resp.headers["content-type"]
    body = resp.json()
    if field is not None:
        named = {e["field"] for e in body.get("errors", [])} | {body.get("field")}
        assert field in named or field in body["detail"], body
    return body


def _cursor(*values) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


# ---- PATCH: null for a field that cannot be null -----------------------------------------------


@pytest.mark.parametrize("field", ["brand_primary_color", "brand_accent_color", "name"])
async def test_agency_patch_refuses_null_for_required_fields(client, make_agency, field):
    agency = await make_agency()
    resp = await client.patch("/api/v1/agency", headers=agency.headers, json={field: None})
    _problem(resp, 422, field)
    kept = await client.get("/api/v1/agency", headers=agency.headers)
    assert kept.status_code == 200 and kept.json()[field]


async def test_agency_patch_still_clears_clearable_fields(client, make_agency):
    agency = await make_agency()
    set_ = await client.patch(
        "/api/v1/agency", headers=agency.headers, json={"support_email": "help@example.com"}
    )
    assert set_.status_code == 200, set_.text
    cleared = await client.patch(
        "/api/v1/agency", headers=agency.headers, json={"support_email": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["support_email"] is None


async def test_operator_patch_refuses_null_status(client, make_agency, operator_headers):
    agency = await make_agency()
    resp = await client.patch(
        f"/api/v1/agencies/{agency.public_id}", headers=operator_headers, json={"status": None}
    )
    _problem(resp, 422, "status")


async def test_openapi_shows_required_patch_fields_as_not_nullable(client):
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    branding = schema["Branding"]["properties"]
    assert "null" not in json.dumps(branding["brand_primary_color"])
    assert "null" in json.dumps(branding["support_email"])


# ---- date-times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2030-01-01T00:00:00", "9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59-00:01"]
)
async def test_api_key_expiry_must_be_an_aware_date_time_in_range(client, make_agency, value):
    agency = await make_agency()
    resp = await client.post(
        "/api/v1/api-keys", headers=agency.headers, json={"name": "k", "expires_at": value}
    )
    _problem(resp, 422, "expires_at")


async def test_api_key_expiry_at_an_offset_is_kept_in_utc(client, make_agency):
    agency = await make_agency()
    resp = await client.post(
        "/api/v1/api-keys",
        headers=agency.headers,
        json={"name": "k", "expires_at": "2099-06-01T12:00:00+02:00"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["expires_at"].startswith("2099-06-01T10:00:00")


# ---- cursors ------------------------------------------------------------------------------------

LISTS = [
    ("agency", "/api/v1/users", {}),
    ("agency", "/api/v1/clients", {}),
    ("agency", "/api/v1/clients", {"sort": "created_at"}),
    ("agency", "/api/v1/audit-events", {}),
    ("operator", "/api/v1/agencies", {}),
]
BAD_CURSORS = [
    _cursor("2024-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"),
    _cursor("not a date", "00000000-0000-0000-0000-000000000000"),
    _cursor("2024-01-01T00:00:00+00:00", "not-a-uuid"),
    _cursor("a\x00b", "00000000-0000-0000-0000-000000000000"),
    _cursor(1),
    "!!!",
]


@pytest.mark.parametrize(("who", "path", "params"), LISTS)
async def test_a_cursor_that_does_not_decode_is_a_400(
    client, make_agency, operator_headers, who, path, params
):
    agency = await make_agency()
    headers = operator_headers if who == "operator" else agency.headers
    for cursor in BAD_CURSORS:
        resp = await client.get(path, headers=headers, params={**params, "cursor": cursor})
        _problem(resp, 400, "cursor")


async def test_name_sorted_cursor_with_nul_is_a_400(client, make_agency):
    agency = await make_agency()
    resp = await client.get(
        "/api/v1/clients",
        headers=agency.headers,
        params={"sort": "display_name", "cursor": BAD_CURSORS[3]},
    )
    _problem(resp, 400, "cursor")


async def test_a_good_cursor_still_pages(client, make_agency, make_client):
    agency = await make_agency()
    for _ in range(3):
        await make_client(agency)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1, "sort": "created_at", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/clients", headers=agency.headers, params=params)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 3


# ---- NUL in text --------------------------------------------------------------------------------


async def test_nul_in_json_bodies_is_a_422(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    cases = [
        ("POST", "/api/v1/clients", {"legal_name": "A\x00B"}, "legal_name"),
        ("POST", "/api/v1/clients", {"legal_name": "ok", "categories": ["x\x00"]}, "categories"),
        ("POST", "/api/v1/clients", {"legal_name": "ok", "hours": {"mon\x00": []}}, "hours"),
        ("PATCH", f"/api/v1/clients/{shop['id']}", {"notes": "\x00"}, "notes"),
        ("PATCH", "/api/v1/agency", {"name": "Ag\x00"}, "name"),
        ("POST", "/api/v1/api-keys", {"name": "k\x00"}, "name"),
        ("POST", "/api/v1/scim-tokens", {"name": "t\x00"}, "name"),
        (
            "POST",
            "/api/v1/invitations",
            {"email": "a@b.example", "name": "\x00", "role": "agency_staff"},
            "name",
        ),
        ("POST", "/api/v1/oauth-clients", {"name": "app\x00"}, "name"),
        ("POST", "/api/v1/oauth-clients", {"name": "app", "description": "\x00"}, "description"),
        ("PUT", "/api/v1/agency/sign-in-providers/google", {"client_id": "c\x00"}, "client_id"),
    ]
    for method, path, body, field in cases:
        resp = await client.request(method, path, headers=agency.headers, json=body)
        _problem(resp, 422, field)


async def test_nul_in_query_parameters_is_a_422(client, make_agency):
    agency = await make_agency()
    for path, params, field in [
        ("/api/v1/clients", {"q": "a\x00"}, "q"),
        ("/api/v1/audit-events", {"action": "x\x00"}, "action"),
    ]:
        resp = await client.get(path, headers=agency.headers, params=params)
        _problem(resp, 422, field)


async def test_nul_in_scim_resources_is_a_400(client, make_agency):
    agency = await make_agency()
    issued = await issue_token(client, agency)
    headers = {"Authorization": f"Bearer {issued['token']}"}
    base = f"/a/{agency.slug}/scim/v2"
    for path, body in [
        ("/Users", {"schemas": [USER], "userName": "nul\x00@example.com"}),
        (
            "/Users",
            {"schemas": [USER], "userName": "ok@example.com", "name": {"formatted": "\x00"}},
        ),
        ("/Groups", {"schemas": [GROUP], "displayName": "G\x00"}),
    ]:
        resp = await client.post(base + path, headers=headers, json=body)
        assert resp.status_code == 400, resp.text
        assert "NUL" in resp.text
    listed = await client.get(
        base + "/Users", headers=headers, params={"filter": 'userName eq "\x00"'}
    )
    assert listed.status_code == 400, listed.text


async def test_nul_in_a_portal_form_never_reaches_the_database(app, make_agency):
    """Forms read outside a StrictInput model (the sign-in form) meet the database's own wall:
    a parameter holding NUL is refused before it is sent, on every backend."""
    from tests.portal.conftest import Browser

    agency = await make_agency()
    browser = Browser(app)
    try:
        resp = await browser.submit(
            f"/a/{agency.slug}/login",
            f"/a/{agency.slug}/login",
            {"email": "owner\x00@example.com", "password": "whatever-it-is"},
        )
    finally:
        await browser.aclose()
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
