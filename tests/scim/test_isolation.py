"""Tenancy: agency A's SCIM ids are 404 at agency B's SCIM service (and change nothing), B's
lists and filters never show A's people or groups, and A's token is worthless at B."""

from __future__ import annotations

from tests.scim.conftest import GROUP, USER, assert_scim_error


async def test_other_agencys_ids_are_404_and_untouched(make_scim, make_client):
    a, b = await make_scim(), await make_scim()
    await make_client(a.agency, legal_name="A shop", display_name="A shop")
    user = await a.create_user("a-user@example.com", externalId="a-ext")
    group = await a.create_group("A team", [user["id"]])
    team = await a.group_named("Client: A shop — members")
    staff = await a.group_named("Agency staff")
    before = {
        "user": (await a.get(f"/Users/{user['id']}")).json(),
        "group": (await a.get(f"/Groups/{group['id']}")).json(),
        "team": (await a.get(f"/Groups/{team['id']}")).json(),
    }
    user_ops = [
        ("GET", None),
        ("PUT", {"schemas": [USER], "userName": "pwned@example.com"}),
        (
            "PATCH",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            },
        ),
        ("DELETE", None),
    ]
    for method, body in user_ops:
        assert_scim_error(await b.request(method, f"/Users/{user['id']}", json=body), 404)
    group_ops = [
        ("GET", None),
        ("PUT", {"schemas": [GROUP], "displayName": "pwned", "members": []}),
        (
            "PATCH",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": "members"}],
            },
        ),
        ("DELETE", None),
    ]
    for gid in (group["id"], team["id"], staff["id"]):
        for method, body in group_ops:
            assert_scim_error(await b.request(method, f"/Groups/{gid}", json=body), 404)
    # B cannot put A's user into its own groups either.
    b_staff = await b.group_named("Agency staff")
    resp = await b.patch(
        f"/Groups/{b_staff['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    assert_scim_error(resp, 400)
    resp = await b.post(
        "/Groups", {"schemas": [GROUP], "displayName": "x", "members": [{"value": user["id"]}]}
    )
    assert_scim_error(resp, 400)
    after = {
        "user": (await a.get(f"/Users/{user['id']}")).json(),
        "group": (await a.get(f"/Groups/{group['id']}")).json(),
        "team": (await a.get(f"/Groups/{team['id']}")).json(),
    }
    assert after == before


async def test_lists_and_filters_stay_inside_the_agency(make_scim, make_client):
    a, b = await make_scim(), await make_scim()
    await make_client(a.agency, legal_name="A shop", display_name="A shop")
    user = await a.create_user("only-a@example.com", externalId="shared-ext")
    await b.create_user("only-b@example.com", externalId="shared-ext")
    group = await a.create_group("A only", [user["id"]])
    users_b = (await b.get("/Users", params={"count": 200})).json()
    assert {u["userName"] for u in users_b["Resources"]} == {
        "only-b@example.com",
        b.agency.owner_email,
    }
    assert users_b["totalResults"] == 2
    for flt in (
        f'id eq "{user["id"]}"',
        'userName eq "only-a@example.com"',
        f'groups.value eq "{group["id"]}"',
    ):
        assert (await b.get("/Users", params={"filter": flt})).json()["totalResults"] == 0
    found = (await b.get("/Users", params={"filter": 'externalId eq "shared-ext"'})).json()
    assert [u["userName"] for u in found["Resources"]] == ["only-b@example.com"]
    groups_b = (await b.get("/Groups")).json()
    assert {g["displayName"] for g in groups_b["Resources"]} == {
        "Agency owners",
        "Agency admins",
        "Agency staff",
    }
    for flt in (
        f'members.value eq "{user["id"]}"',
        'displayName co "A "',
        f'id eq "{group["id"]}"',
    ):
        assert (await b.get("/Groups", params={"filter": flt})).json()["totalResults"] == 0
    # The same display name may exist in both agencies.
    assert (await b.create_group("A only"))["id"] != group["id"]


async def test_a_token_works_only_at_its_own_agency(make_scim):
    a, b = await make_scim(), await make_scim()
    user = await a.create_user("mine@example.com")
    resp = await a.client.get(f"{b.base}/Users/{user['id']}", headers=a.headers)
    assert_scim_error(resp, 401)
    resp = await a.client.post(
        f"{b.base}/Users", headers=a.headers, json={"schemas": [USER], "userName": "x@example.com"}
    )
    assert_scim_error(resp, 401)
    assert (await b.get("/Users", params={"filter": 'userName eq "x@example.com"'})).json()[
        "totalResults"
    ] == 0
