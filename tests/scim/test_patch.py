"""PATCH (RFC 7644 §3.5.2): add, remove and replace, with and without paths, value filters,
the variants Okta and Entra ID send, and the errors for paths and values that do not fit."""

from __future__ import annotations

from tests.scim.conftest import assert_scim_error


async def _user(scim, **attrs) -> dict:
    return await scim.create_user(
        "pat@example.com",
        name={"givenName": "Pat", "familyName": "Lee"},
        emails=[
            {"value": "pat@work.example", "type": "work", "primary": True},
            {"value": "pat@home.example", "type": "home"},
        ],
        **attrs,
    )


async def _patch_ok(scim, path: str, *ops: dict) -> dict:
    resp = await scim.patch(path, *ops)
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == resp.json()["meta"]["version"]
    got = (await scim.get(path)).json()
    assert got == resp.json()  # what PATCH answered is what is stored
    return got


async def test_replace_with_and_without_path(make_scim):
    scim = await make_scim()
    user = await _user(scim)
    path = f"/Users/{user['id']}"
    got = await _patch_ok(scim, path, {"op": "replace", "path": "name.familyName", "value": "Kim"})
    assert got["name"] == {"formatted": "Pat Lee", "givenName": "Pat", "familyName": "Kim"}
    got = await _patch_ok(
        scim,
        path,
        {"op": "replace", "value": {"externalId": "x-9", "name": {"formatted": "Pat Kim"}}},
    )
    # A complex value replaces the sub-attributes it names and keeps the others.
    assert got["externalId"] == "x-9"
    assert got["name"] == {"formatted": "Pat Kim", "givenName": "Pat", "familyName": "Kim"}
    # Entra ID: attribute paths as keys of the value, and capitalised op names.
    got = await _patch_ok(
        scim, path, {"op": "Replace", "value": {"name.givenName": "Patricia", "active": False}}
    )
    assert got["name"]["givenName"] == "Patricia" and got["active"] is False
    # Okta: a boolean as a string in a value object is refused, as a bad value.
    bad = await scim.patch(path, {"op": "replace", "value": {"active": "maybe"}})
    assert_scim_error(bad, 400)


async def test_add(make_scim):
    scim = await make_scim()
    user = await scim.create_user("add@example.com")
    path = f"/Users/{user['id']}"
    got = await _patch_ok(
        scim,
        path,
        {"op": "add", "path": "emails", "value": [{"value": "a@x.example", "type": "work"}]},
    )
    assert got["emails"] == [{"value": "a@x.example", "type": "work"}]
    got = await _patch_ok(
        scim,
        path,
        {"op": "add", "path": "emails", "value": [{"value": "b@x.example", "type": "home"}]},
    )
    assert [e["value"] for e in got["emails"]] == ["a@x.example", "b@x.example"]  # appended
    got = await _patch_ok(
        scim, path, {"op": "add", "value": {"externalId": "ext", "name": {"givenName": "Al"}}}
    )
    assert got["externalId"] == "ext" and got["name"]["givenName"] == "Al"
    # Entra ID: add into a filtered path that matches nothing creates the entry.
    got = await _patch_ok(
        scim, path, {"op": "add", "path": 'emails[type eq "other"].value', "value": "c@x.example"}
    )
    assert {"value": "c@x.example", "type": "other"} in got["emails"]


async def test_value_filtered_paths(make_scim):
    scim = await make_scim()
    user = await _user(scim)
    path = f"/Users/{user['id']}"
    got = await _patch_ok(
        scim,
        path,
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "pat@new.example"},
    )
    assert got["emails"][0] == {"value": "pat@new.example", "type": "work", "primary": True}
    got = await _patch_ok(scim, path, {"op": "remove", "path": 'emails[type eq "home"]'})
    assert [e["type"] for e in got["emails"]] == ["work"]
    got = await _patch_ok(scim, path, {"op": "remove", "path": 'emails[value co "nothing"]'})
    assert len(got["emails"]) == 1  # removing what is not there changes nothing
    # As Entra ID expects, a replace whose filter matches nothing creates the entry it describes.
    got = await _patch_ok(
        scim, path, {"op": "replace", "path": 'emails[type eq "fax"].value', "value": "f@x.example"}
    )
    assert got["emails"][1] == {"value": "f@x.example", "type": "fax"}


async def test_remove(make_scim):
    scim = await make_scim()
    user = await _user(scim, externalId="gone-soon")
    path = f"/Users/{user['id']}"
    got = await _patch_ok(scim, path, {"op": "remove", "path": "externalId"})
    assert "externalId" not in got
    got = await _patch_ok(scim, path, {"op": "remove", "path": "name.givenName"})
    assert got["name"] == {"formatted": "Pat Lee", "familyName": "Lee"}
    got = await _patch_ok(scim, path, {"op": "remove", "path": "emails"})
    assert "emails" not in got
    got = await _patch_ok(scim, path, {"op": "remove", "path": "name"})
    assert "name" not in got


async def test_several_operations_apply_together_or_not_at_all(make_scim, client):
    scim = await make_scim()
    user = await _user(scim)
    path = f"/Users/{user['id']}"
    resp = await scim.patch(
        path,
        {"op": "replace", "path": "name.givenName", "value": "Changed"},
        {"op": "replace", "path": "userName", "value": scim.agency.owner_email},  # taken
    )
    assert_scim_error(resp, 409, "uniqueness")
    assert (await scim.get(path)).json()["name"]["givenName"] == "Pat"
    resp = await scim.patch(
        path,
        {"op": "replace", "path": "name.givenName", "value": "Changed"},
        {"op": "replace", "path": "nope[[", "value": 1},
    )
    assert_scim_error(resp, 400)
    assert (await scim.get(path)).json()["name"]["givenName"] == "Pat"


async def test_patch_errors(make_scim):
    scim = await make_scim()
    user = await _user(scim)
    path = f"/Users/{user['id']}"
    cases = [
        ({"op": "remove", "path": "userName"}, "mutability"),  # required
        ({"op": "remove", "path": "active"}, "mutability"),
        ({"op": "replace", "path": "id", "value": "usr_x"}, "mutability"),  # read-only
        ({"op": "replace", "path": "groups", "value": []}, "mutability"),
        ({"op": "move", "path": "userName", "value": "x"}, None),
        ({"op": "remove"}, None),  # remove needs a path
        ({"op": "add", "path": "emails", "value": "not a list of objects"}, None),
        ({"op": "replace", "path": "emails[", "value": "x"}, None),
    ]
    for op, scim_type in cases:
        resp = await scim.patch(path, op)
        assert_scim_error(resp, 400, scim_type)
    for body in (
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]},  # no Operations
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": []},
        {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": "x"},
    ):
        assert_scim_error(await scim.request("PATCH", path, json=body), 400)
    assert (await scim.get(path)).json() == user


async def test_a_patch_that_changes_nothing_keeps_the_version(make_scim):
    scim = await make_scim()
    user = await _user(scim)
    path = f"/Users/{user['id']}"
    resp = await scim.patch(path, {"op": "replace", "path": "name.givenName", "value": "Pat"})
    assert resp.status_code == 200
    assert resp.json()["meta"]["version"] == user["meta"]["version"]
