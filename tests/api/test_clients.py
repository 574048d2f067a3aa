"""The client record over the API: CRUD, search, filters, pagination, lifecycle, bad input."""

from __future__ import annotations

import pytest


async def test_create_get_update_delete(client, make_agency):
    agency = await make_agency()
    resp = await client.post(
        "/api/v1/clients",
        headers=agency.headers,
        json={
            "legal_name": "Bella Vista Bistro SARL",
            "display_name": "Bella Vista",
            "email": "Hello@BellaVista.example",
            "phone": "01 42 68 53 00",
            "country": "fr",
            "website": "bellavista.example",
            "timezone": "Europe/Paris",
            "categories": ["restaurant"],
            "hours": {"tue": ["12:00-14:30"]},
        },
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["id"].startswith("cli_")
    assert created["phone"] == "+33142685300"  # normalized to E.164 using the country
    assert created["country"] == "FR"
    assert created["website"] == "https://bellavista.example/"
    assert created["lifecycle_stage"] == "prospect"

    got = await client.get(f"/api/v1/clients/{created['id']}", headers=agency.headers)
    assert got.status_code == 200
    assert got.json() == created

    patched = await client.patch(
        f"/api/v1/clients/{created['id']}",
        headers=agency.headers,
        json={"display_name": "Bella Vista Bistro", "notes": "VIP"},
    )
    assert patched.status_code == 200
    assert patched.json()["display_name"] == "Bella Vista Bistro"
    assert patched.json()["legal_name"] == "Bella Vista Bistro SARL"

    gone = await client.delete(f"/api/v1/clients/{created['id']}", headers=agency.headers)
    assert gone.status_code == 204
    again = await client.get(f"/api/v1/clients/{created['id']}", headers=agency.headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"


async def test_list_search_filter_and_cursor_pagination(client, make_agency, make_client):
    agency = await make_agency()
    names = [f"Shop {i:02d}" for i in range(7)]
    for i, name in enumerate(names):
        await make_client(
            agency,
            legal_name=name,
            city="Lyon" if i % 2 else "Nice",
            lifecycle_stage="active" if i < 3 else "prospect",
        )

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, "sort": "display_name"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/clients", headers=agency.headers, params=params)).json()
        seen += [c["display_name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == names  # stable order, no duplicates, nothing lost

    newest = (
        await client.get("/api/v1/clients", headers=agency.headers, params={"limit": 2})
    ).json()
    assert [c["display_name"] for c in newest["items"]] == ["Shop 06", "Shop 05"]
    rest = (
        await client.get(
            "/api/v1/clients",
            headers=agency.headers,
            params={"limit": 10, "cursor": newest["next_cursor"]},
        )
    ).json()
    assert [c["display_name"] for c in rest["items"]] == names[:5][::-1]

    lyon = (
        await client.get("/api/v1/clients", headers=agency.headers, params={"q": "lYoN"})
    ).json()["items"]
    assert sorted(c["display_name"] for c in lyon) == ["Shop 01", "Shop 03", "Shop 05"]
    active = (
        await client.get(
            "/api/v1/clients", headers=agency.headers, params={"lifecycle_stage": "active"}
        )
    ).json()["items"]
    assert sorted(c["display_name"] for c in active) == names[:3]
    percent = (
        await client.get("/api/v1/clients", headers=agency.headers, params={"q": "%"})
    ).json()["items"]
    assert percent == []  # LIKE wildcards are searched literally


async def test_lifecycle_transitions(client, make_agency, make_client):
    agency = await make_agency()
    c = await make_client(agency)
    url = f"/api/v1/clients/{c['id']}/lifecycle"
    for stage in ("onboarding", "active", "paused", "active", "churned", "onboarding"):
        resp = await client.post(url, headers=agency.headers, json={"stage": stage})
        assert resp.status_code == 200, resp.text
        assert resp.json()["lifecycle_stage"] == stage
    bad = await client.post(url, headers=agency.headers, json={"stage": "paused"})
    assert bad.status_code == 409
    assert bad.json()["type"].endswith("/invalid-transition")
    assert "onboarding" in bad.json()["detail"]
    audit = (
        await client.get(
            "/api/v1/audit-events",
            headers=agency.headers,
            params={"action": "client.lifecycle_changed"},
        )
    ).json()["items"]
    assert [e["data"]["to"] for e in audit][:2] == ["onboarding", "churned"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"legal_name": 5}, "legal_name"),
        ({"legal_name": "x", "bogus": True}, "bogus"),
        ({"legal_name": "x" * 201}, "legal_name"),
        ({"legal_name": ""}, "legal_name"),
        ({"legal_name": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"legal_name": "x", "email": "not-an-email"}, "email"),
        ({"legal_name": "x", "country": "France"}, "country"),
        ({"legal_name": "x", "hours": {"funday": []}}, "hours"),
        ({"legal_name": "x", "lifecycle_stage": "zombie"}, "lifecycle_stage"),
        ({"legal_name": "x", "categories": ["a"] * 21}, "categories"),
        ({"legal_name": "x", "assigned_staff": ["usr_nope"]}, "assigned_staff"),
        ({"legal_name": "x", "phone": "12"}, "phone"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(client, make_agency, body, field):
    agency = await make_agency()
    resp = await client.post("/api/v1/clients", headers=agency.headers, json=body)
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert resp.headers["content-type"] == "application/problem+json"
    assert (
        field in problem["detail"]
        or any(e["field"].startswith(field) for e in problem.get("errors", []))
        or problem.get("field") == field
    )
    listed = (await client.get("/api/v1/clients", headers=agency.headers)).json()["items"]
    assert listed == []  # nothing half-created


async def test_malformed_and_oversized_bodies(client, make_agency, make_client):
    agency = await make_agency()
    kept = await make_client(agency)
    malformed = await client.post(
        "/api/v1/clients",
        headers={**agency.headers, "content-type": "application/json"},
        content=b'{"legal_name": ',
    )
    assert malformed.status_code == 400
    assert malformed.json()["type"].endswith("/malformed-json")
    huge = await client.post(
        "/api/v1/clients",
        headers={**agency.headers, "content-type": "application/json"},
        content=b'{"legal_name": "' + b"x" * 2_000_000 + b'"}',
    )
    assert huge.status_code == 413
    assert huge.json()["type"].endswith("/payload-too-large")
    bad_cursor = await client.get(
        "/api/v1/clients", headers=agency.headers, params={"cursor": "!!!"}
    )
    assert bad_cursor.status_code == 400
    assert (
        await client.get(f"/api/v1/clients/{kept['id']}", headers=agency.headers)
    ).status_code == 200


async def test_every_write_is_audited_without_secrets(client, make_agency, make_client):
    agency = await make_agency()
    c = await make_client(agency, legal_name="Audited Ltd")
    await client.patch(f"/api/v1/clients/{c['id']}", headers=agency.headers, json={"city": "Paris"})
    events = (
        await client.get(
            "/api/v1/audit-events", headers=agency.headers, params={"target_id": c["id"]}
        )
    ).json()["items"]
    actions = [e["action"] for e in events]
    assert actions == ["client.updated", "client.created"]
    assert events[0]["data"] == {"city": {"from": None, "to": "Paris"}}
    assert events[0]["actor_type"] == "api_key"
    everything = (
        await client.get("/api/v1/audit-events", headers=agency.headers, params={"limit": 200})
    ).json()["items"]
    text = str(everything)
    assert "password_hash" not in text and "key_hash" not in text and "argon2" not in text
