"""Arbitrary JSON at every write endpoint: always a 2xx or a 4xx problem, never a 5xx."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = [
    "legal_name",
    "display_name",
    "email",
    "phone",
    "website",
    "country",
    "timezone",
    "categories",
    "hours",
    "lifecycle_stage",
    "assigned_staff",
    "notes",
    "stage",
    "role",
    "client_id",
    "user_id",
    "name",
    "expires_at",
    "status",
    "brand_primary_color",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=300),
    st.sampled_from(
        ["", "cli_1", "usr_zz", "+33 1", "Europe/Paris", "#fff", "2020-01-01T00:00:00", "active"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=8),
    values,
)
ROUTES = [
    ("POST", "/api/v1/clients"),
    ("PATCH", "/api/v1/clients/{client}"),
    ("POST", "/api/v1/clients/{client}/lifecycle"),
    ("POST", "/api/v1/invitations"),
    ("POST", "/api/v1/api-keys"),
    ("POST", "/api/v1/memberships"),
    ("PATCH", "/api/v1/agency"),
    ("PATCH", "/api/v1/users/{user}"),
]


async def test_fuzzed_bodies_never_5xx(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    users = (await client.get("/api/v1/users", headers=agency.headers)).json()["items"]
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(route=st.sampled_from(ROUTES), body=bodies)
    def check(route, body):
        method, path = route
        url = path.format(client=shop["id"], user=users[0]["id"])
        fut = asyncio.run_coroutine_threadsafe(
            client.request(method, url, headers=agency.headers, json=body), loop
        )
        resp = fut.result(timeout=30)
        assert resp.status_code < 500, (method, url, body, resp.text)
        if resp.status_code >= 400:
            assert resp.headers["content-type"] == "application/problem+json"

    await asyncio.to_thread(check)
