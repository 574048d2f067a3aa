"""SCIM Groups: the built-in groups are the agency's roles and client teams, and changing
their members changes memberships; directory groups are kept with their members and grant
nothing; owners and the built-in groups themselves stay out of the directory's reach."""

from __future__ import annotations

from tests.scim.conftest import GROUP, assert_scim_error


async def _memberships(client, agency, user_id: str) -> list[tuple[str, str | None]]:
    user = (await client.get(f"/api/v1/users/{user_id}", headers=agency.headers)).json()
    return sorted((m["role"], m["client_id"]) for m in user["memberships"])


def _add(*user_ids: str) -> dict:
    return {"op": "add", "path": "members", "value": [{"value": u} for u in user_ids]}


async def test_built_in_groups(make_scim, make_client):
    scim = await make_scim()
    await make_client(scim.agency, legal_name="Bella Vista SARL", display_name="Bella Vista")
    names = [
        g["displayName"]
        for g in (await scim.get("/Groups", params={"sortBy": "displayName"})).json()["Resources"]
    ]
    assert names == [
        "Agency admins",
        "Agency owners",
        "Agency staff",
        "Client: Bella Vista — members",
        "Client: Bella Vista — owners",
    ]
    owners = await scim.group_named("Agency owners")
    assert [m["value"] for m in owners["members"]] == [scim.agency.owner_user_id]
    # A client created later has its team groups at once; a renamed client renames them.
    shop = await make_client(scim.agency, legal_name="Kiosk", display_name="Kiosk")
    team = await scim.group_named("Client: Kiosk — owners")
    await scim.client.patch(
        f"/api/v1/clients/{shop['id']}",
        headers=scim.agency.headers,
        json={"display_name": "Kiosk 2"},
    )
    assert (await scim.get(f"/Groups/{team['id']}")).json()[
        "displayName"
    ] == "Client: Kiosk 2 — owners"
    # Group ids are stable.
    again = await scim.group_named("Agency owners")
    assert again["id"] == owners["id"]


async def test_members_of_role_groups_are_memberships(make_scim, client):
    scim = await make_scim()
    ana = await scim.create_user("ana@example.com")
    ben = await scim.create_user("ben@example.com")
    staff = await scim.group_named("Agency staff")
    admins = await scim.group_named("Agency admins")
    resp = await scim.patch(f"/Groups/{staff['id']}", _add(ana["id"], ben["id"]))
    assert resp.status_code == 200, resp.text
    assert {m["value"] for m in resp.json()["members"]} == {ana["id"], ben["id"]}
    assert await _memberships(client, scim.agency, ana["id"]) == [("agency_staff", None)]
    # Joining another agency role moves the person (one role per scope).
    resp = await scim.patch(f"/Groups/{admins['id']}", _add(ana["id"]))
    assert resp.status_code == 200
    assert await _memberships(client, scim.agency, ana["id"]) == [("agency_admin", None)]
    assert [m["value"] for m in (await scim.get(f"/Groups/{staff['id']}")).json()["members"]] == [
        ben["id"]
    ]
    user = (await scim.get(f"/Users/{ana['id']}")).json()
    assert [g["display"] for g in user["groups"]] == ["Agency admins"]
    # remove with a value filter (RFC 7644) ...
    resp = await scim.patch(
        f"/Groups/{staff['id']}", {"op": "remove", "path": f'members[value eq "{ben["id"]}"]'}
    )
    assert resp.status_code == 200 and "members" not in resp.json()
    assert await _memberships(client, scim.agency, ben["id"]) == []
    # ... and as Entra ID sends it (the value selects what to remove).
    await scim.patch(f"/Groups/{staff['id']}", _add(ben["id"]))
    resp = await scim.patch(
        f"/Groups/{staff['id']}",
        {"op": "remove", "path": "members", "value": [{"value": ben["id"]}]},
    )
    assert resp.status_code == 200 and "members" not in resp.json()
    # replace sets the whole list.
    resp = await scim.patch(
        f"/Groups/{admins['id']}",
        {"op": "replace", "path": "members", "value": [{"value": ben["id"]}]},
    )
    assert [m["value"] for m in resp.json()["members"]] == [ben["id"]]
    assert await _memberships(client, scim.agency, ana["id"]) == []
    assert await _memberships(client, scim.agency, ben["id"]) == [("agency_admin", None)]
    # The audit trail names the SCIM token as the actor of the membership changes.
    events = (
        await client.get(
            "/api/v1/audit-events",
            headers=scim.agency.headers,
            params={"action": "membership.created"},
        )
    ).json()["items"]
    by_directory = [e for e in events if e["actor_type"] != "operator"]  # not onboarding's
    assert len(by_directory) >= 3
    assert all(e["actor_label"] == "SCIM token Okta" for e in by_directory)


async def test_client_teams(make_scim, make_client, client):
    scim = await make_scim()
    shop = await make_client(scim.agency, legal_name="Bella Vista", display_name="Bella Vista")
    cam = await scim.create_user("cam@example.com")
    members = await scim.group_named("Client: Bella Vista — members")
    owners = await scim.group_named("Client: Bella Vista — owners")
    await scim.patch(f"/Groups/{members['id']}", _add(cam["id"]))
    assert await _memberships(client, scim.agency, cam["id"]) == [("client_member", shop["id"])]
    await scim.patch(f"/Groups/{owners['id']}", _add(cam["id"]))
    assert await _memberships(client, scim.agency, cam["id"]) == [("client_owner", shop["id"])]
    staff = await scim.group_named("Agency staff")
    await scim.patch(f"/Groups/{staff['id']}", _add(cam["id"]))
    assert await _memberships(client, scim.agency, cam["id"]) == [
        ("agency_staff", None),
        ("client_owner", shop["id"]),
    ]
    # PUT with the members wanted.
    resp = await scim.put(
        f"/Groups/{owners['id']}",
        {"schemas": [GROUP], "displayName": "Client: Bella Vista — owners", "members": []},
    )
    assert resp.status_code == 200 and "members" not in resp.json()
    assert await _memberships(client, scim.agency, cam["id"]) == [("agency_staff", None)]


async def test_owners_stay_out_of_the_directorys_reach(make_scim, client):
    scim = await make_scim()
    owner_id = scim.agency.owner_user_id
    dan = await scim.create_user("dan@example.com")
    owners = await scim.group_named("Agency owners")
    admins = await scim.group_named("Agency admins")
    assert_scim_error(await scim.patch(f"/Groups/{owners['id']}", _add(dan["id"])), 403)
    resp = await scim.patch(f"/Groups/{owners['id']}", {"op": "remove", "path": "members"})
    assert_scim_error(resp, 403)
    assert_scim_error(await scim.patch(f"/Groups/{admins['id']}", _add(owner_id)), 403)
    assert await _memberships(client, scim.agency, owner_id) == [("agency_owner", None)]
    assert await _memberships(client, scim.agency, dan["id"]) == []
    # Sending the owners group unchanged is fine (Okta pushes whole groups).
    resp = await scim.put(
        f"/Groups/{owners['id']}",
        {
            "schemas": [GROUP],
            "displayName": "Agency owners",
            "members": [{"value": owner_id}],
            "externalId": "okta-owners",
        },
    )
    assert resp.status_code == 200 and resp.json()["externalId"] == "okta-owners"


async def test_built_in_groups_cannot_be_renamed_created_or_deleted(make_scim):
    scim = await make_scim()
    admins = await scim.group_named("Agency admins")
    resp = await scim.patch(
        f"/Groups/{admins['id']}", {"op": "replace", "path": "displayName", "value": "Bosses"}
    )
    assert_scim_error(resp, 400, "mutability")
    assert_scim_error(await scim.delete(f"/Groups/{admins['id']}"), 403)
    resp = await scim.post("/Groups", {"schemas": [GROUP], "displayName": "agency ADMINS"})
    assert_scim_error(resp, 409, "uniqueness")
    assert (await scim.get(f"/Groups/{admins['id']}")).status_code == 200


async def test_directory_groups(make_scim, client):
    scim = await make_scim()
    eve = await scim.create_user("eve@example.com")
    fay = await scim.create_user("fay@example.com")
    group = await scim.create_group("Marketing", [eve["id"]], externalId="okta-g1")
    assert group["displayName"] == "Marketing" and group["externalId"] == "okta-g1"
    assert [m["value"] for m in group["members"]] == [eve["id"]]
    assert group["members"][0]["$ref"].endswith(f"/Users/{eve['id']}")
    assert await _memberships(client, scim.agency, eve["id"]) == []  # grants nothing
    assert_scim_error(
        await scim.post("/Groups", {"schemas": [GROUP], "displayName": "marketing"}),
        409,
        "uniqueness",
    )
    path = f"/Groups/{group['id']}"
    resp = await scim.patch(
        path, _add(fay["id"]), {"op": "replace", "path": "displayName", "value": "Growth"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["displayName"] == "Growth"
    assert [m["value"] for m in body["members"]] == [eve["id"], fay["id"]]
    user = (await scim.get(f"/Users/{fay['id']}")).json()
    assert user["groups"] == [
        {
            "value": group["id"],
            "$ref": body["meta"]["location"],
            "display": "Growth",
            "type": "direct",
        }
    ]
    resp = await scim.put(
        path, {"schemas": [GROUP], "displayName": "Growth", "members": [{"value": fay["id"]}]}
    )
    assert [m["value"] for m in resp.json()["members"]] == [
        fay["id"]
    ] and "externalId" not in resp.json()
    # Deleting a member user takes them out of the group.
    await scim.delete(f"/Users/{fay['id']}")
    assert "members" not in (await scim.get(path)).json()
    assert (await scim.delete(path)).status_code == 204
    assert_scim_error(await scim.get(path), 404)
    assert_scim_error(await scim.delete(path), 404)


async def test_bad_groups(make_scim):
    scim = await make_scim()
    user = await scim.create_user("gus@example.com")
    for body, status in (
        ({"schemas": [GROUP]}, 400),
        ({"schemas": [GROUP], "displayName": "  "}, 400),
        ({"schemas": [GROUP], "displayName": "X", "members": [{"value": "usr_1"}]}, 400),
        ({"schemas": [GROUP], "displayName": "X", "members": [{"value": "nope"}]}, 400),
        (
            {
                "schemas": [GROUP],
                "displayName": "X",
                "members": [{"value": user["id"], "type": "Group"}],
            },
            400,
        ),
        ({"schemas": [GROUP], "displayName": "X", "members": "everyone"}, 400),
        ({"schemas": [GROUP], "displayName": "x" * 300}, 400),
    ):
        assert_scim_error(await scim.post("/Groups", body), status)
    admins = await scim.group_named("Agency admins")
    assert_scim_error(
        await scim.patch(f"/Groups/{admins['id']}", _add("usr_1111111111111111111111")), 400
    )
    for bogus in ("grp_1", "usr_1", "nope"):
        assert_scim_error(await scim.get(f"/Groups/{bogus}"), 404)
        assert_scim_error(await scim.patch(f"/Groups/{bogus}", _add(user["id"])), 404)


async def test_group_if_match(make_scim):
    scim = await make_scim()
    user = await scim.create_user("hal@example.com")
    staff = await scim.group_named("Agency staff")
    stale = await scim.patch(
        f"/Groups/{staff['id']}", _add(user["id"]), headers={"If-Match": 'W/"x"'}
    )
    assert_scim_error(stale, 412)
    ok = await scim.patch(
        f"/Groups/{staff['id']}", _add(user["id"]), headers={"If-Match": staff["meta"]["version"]}
    )
    assert ok.status_code == 200
    assert ok.json()["meta"]["version"] != staff["meta"]["version"]
