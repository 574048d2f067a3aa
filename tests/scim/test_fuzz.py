"""Arbitrary JSON at every SCIM write (and arbitrary filters at the lists): always a 2xx or a
4xx SCIM error body in application/scim+json, never a 5xx."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scim.conftest import ERROR, GROUP, PATCH, SCIM_JSON, USER

KEYS = [
    "schemas",
    "userName",
    "name",
    "givenName",
    "familyName",
    "formatted",
    "emails",
    "value",
    "type",
    "primary",
    "active",
    "externalId",
    "password",
    "groups",
    "displayName",
    "members",
    "$ref",
    "id",
    "meta",
    "Operations",
    "op",
    "path",
    "nickName",
    "name.givenName",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=60),
    st.sampled_from(
        [
            USER,
            GROUP,
            PATCH,
            "",
            "usr_1",
            "grp_1",
            "add",
            "remove",
            "replace",
            "members",
            'members[value eq "usr_1"]',
            'emails[type eq "work"].value',
            "active",
            "userName",
            "a@b.example",
            "x" * 400,
            "2020-01-01T00:00:00Z",
            "User",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=14,
)
bodies = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=7),
    st.fixed_dictionaries(
        {
            "schemas": st.just([PATCH]),
            "Operations": st.lists(
                st.dictionaries(st.sampled_from(["op", "path", "value"]), values, max_size=3),
                max_size=3,
            ),
        }
    ),
    values,
)
filters = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda a, op, v: f"{a} {op} {v}",
        st.sampled_from(
            [
                "userName",
                "emails.value",
                "meta.created",
                "active",
                "members.value",
                "displayName",
                "name[givenName",
                "id",
                "externalId",
                "x.y.z",
            ]
        ),
        st.sampled_from(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "xx"]),
        st.sampled_from(['"a"', "true", "1", "null", '"2020-13-45"', '"usr_1"', "(", '"\\u0000"']),
    ),
)


async def test_fuzzed_scim_requests_never_5xx(make_scim):
    scim = await make_scim()
    user = await scim.create_user("fuzz@example.com")
    group = await scim.create_group("Fuzzers", [user["id"]])
    staff = await scim.group_named("Agency staff")
    routes = [
        ("POST", "/Users"),
        ("POST", "/Groups"),
        ("PUT", f"/Users/{user['id']}"),
        ("PATCH", f"/Users/{user['id']}"),
        ("PUT", f"/Groups/{group['id']}"),
        ("PATCH", f"/Groups/{group['id']}"),
        ("PATCH", f"/Groups/{staff['id']}"),
        ("POST", "/Users/.search"),
        ("POST", "/Groups/.search"),
    ]
    loop = asyncio.get_running_loop()

    def check(resp, what) -> None:
        assert resp.status_code < 500, (what, resp.text)
        assert resp.headers["content-type"].startswith(SCIM_JSON) or resp.status_code == 204, what
        if resp.status_code >= 400:
            assert resp.json()["schemas"] == [ERROR], (what, resp.text)

    @settings(
        max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(route=st.sampled_from(routes), body=bodies)
    def writes(route, body):
        method, path = route
        fut = asyncio.run_coroutine_threadsafe(scim.request(method, path, json=body), loop)
        check(fut.result(timeout=30), (method, path, body))

    @settings(
        max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(
        kind=st.sampled_from(["/Users", "/Groups"]),
        flt=filters,
        start=st.one_of(st.none(), st.integers(-5, 10**12), st.text(max_size=5)),
        count=st.one_of(st.none(), st.integers(-5, 10**12), st.text(max_size=5)),
        sort=st.one_of(
            st.none(),
            st.sampled_from(
                ["userName", "displayName", "meta.created", "emails", "", "name.familyName"]
            ),
        ),
    )
    def reads(kind, flt, start, count, sort):
        params = {"filter": flt}
        for key, value in (("startIndex", start), ("count", count), ("sortBy", sort)):
            if value is not None:
                params[key] = value
        fut = asyncio.run_coroutine_threadsafe(scim.get(kind, params=params), loop)
        check(fut.result(timeout=30), (kind, params))

    await asyncio.to_thread(writes)
    await asyncio.to_thread(reads)
