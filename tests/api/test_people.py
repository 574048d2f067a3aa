"""Users, memberships, invitations (with real SMTP delivery) and API keys."""

from __future__ import annotations

from tests.helpers import wait_for_jobs


async def test_api_key_lifecycle(client, make_agency, make_client):
    agency = await make_agency()
    created = await client.post("/api/v1/api-keys", headers=agency.headers, json={"name": "CI"})
    assert created.status_code == 201
    key = created.json()
    raw = key.pop("key")
    assert raw.startswith("sbk_") and key["prefix"].endswith(raw[-6:])
    listed = (await client.get("/api/v1/api-keys", headers=agency.headers)).json()
    assert all("key" not in k for k in listed)  # shown once only
    assert raw not in str(listed)
    headers = {"Authorization": f"Bearer {raw}"}
    assert (await client.get("/api/v1/clients", headers=headers)).status_code == 200
    used = (await client.get(f"/api/v1/api-keys/{key['id']}", headers=agency.headers)).json()
    assert used["last_used_at"] is not None
    assert (
        await client.delete(f"/api/v1/api-keys/{key['id']}", headers=agency.headers)
    ).status_code == 204
    assert (await client.get("/api/v1/clients", headers=headers)).status_code == 401


async def test_api_keys_are_stored_as_hashes(client, make_agency):
    from sqlalchemy import select

    import tenants  # noqa: F401
    from services.identity.models import ApiKey
    from services.kit.crypto import sha256_hex
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency()
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        rows = (await session.execute(select(ApiKey))).scalars().all()
    assert [r.key_hash for r in rows] == [sha256_hex(agency.api_key)]
    assert all(agency.api_key not in str(vars(r)) for r in rows)


async def test_client_scoped_key_sees_only_its_client(client, make_agency, make_client):
    agency = await make_agency()
    mine = await make_client(agency, legal_name="Mine")
    other = await make_client(agency, legal_name="Other")
    resp = await client.post(
        "/api/v1/api-keys",
        headers=agency.headers,
        json={"name": "Mine only", "client_id": mine["id"]},
    )
    assert resp.status_code == 201
    assert resp.json()["role"] == "client_owner"
    scoped = {"Authorization": f"Bearer {resp.json()['key']}"}
    listed = (await client.get("/api/v1/clients", headers=scoped)).json()["items"]
    assert [c["id"] for c in listed] == [mine["id"]]
    assert (await client.get(f"/api/v1/clients/{mine['id']}", headers=scoped)).status_code == 200
    assert (await client.get(f"/api/v1/clients/{other['id']}", headers=scoped)).status_code == 404
    patch = await client.patch(
        f"/api/v1/clients/{other['id']}", headers=scoped, json={"notes": "x"}
    )
    assert patch.status_code == 404
    assert (
        await client.post("/api/v1/clients", headers=scoped, json={"legal_name": "New"})
    ).status_code == 403
    assert (await client.get("/api/v1/api-keys", headers=scoped)).status_code == 403
    users = (await client.get("/api/v1/users", headers=scoped)).json()["items"]
    assert users == []  # the agency owner is not on this client's team


async def test_invitation_is_emailed_and_accepted(client, make_agency, make_client, mailbox):
    agency = await make_agency(name="Invite Co")
    shop = await make_client(agency, legal_name="Shop")
    email = f"maria+{agency.slug}@example.com"
    resp = await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={"email": email, "role": "client_owner", "client_id": shop["id"], "name": "Maria"},
    )
    assert resp.status_code == 201, resp.text
    inv = resp.json()
    assert inv["status"] == "pending" and "/invite/" in inv["url"]
    await wait_for_jobs(lambda: bool(mailbox.to(email)))
    [message] = mailbox.to(email)
    assert message["subject"] == "Invite Co invited you to Switchboard"
    assert inv["url"] in message["body"]
    assert "Invite Co" in message["from"]

    from services.identity import service as identity
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Agency
    from tenants.scoping import set_tenant

    token = inv["url"].rsplit("/", 1)[1]
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        agency_row = await session.get(Agency, agency.id)
        user = await identity.accept_invitation(
            session, agency_row, token, name="Maria", password="a-long-password"
        )
        assert user.email == email
    again = await client.get(f"/api/v1/invitations/{inv['id']}", headers=agency.headers)
    assert again.json()["status"] == "accepted"
    users = (await client.get("/api/v1/users", headers=agency.headers)).json()["items"]
    maria = next(u for u in users if u["email"] == email)
    assert [(m["role"], m["client_id"]) for m in maria["memberships"]] == [
        ("client_owner", shop["id"])
    ]


async def test_invitation_validation(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    cases = [
        ({"email": "a@example.com", "role": "client_owner"}, 422),  # client role needs client
        ({"email": "a@example.com", "role": "agency_staff", "client_id": shop["id"]}, 422),
        ({"email": "nope", "role": "agency_staff"}, 422),
        ({"email": "a@example.com", "role": "wizard"}, 422),
        ({"email": "a@example.com", "role": "client_owner", "client_id": "cli_zzz"}, 404),
        ({"email": agency.owner_email, "role": "agency_admin"}, 403),  # an admin key: no owners
        ({"email": agency.owner_email, "role": "client_member", "client_id": shop["id"]}, 403),
    ]
    for body, status in cases:
        resp = await client.post("/api/v1/invitations", headers=agency.headers, json=body)
        assert resp.status_code == status, (body, resp.text)


async def test_memberships_and_last_owner(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    users = (await client.get("/api/v1/users", headers=agency.headers)).json()["items"]
    owner = users[0]
    owner_membership = owner["memberships"][0]["id"]
    demote = await client.patch(
        f"/api/v1/memberships/{owner_membership}",
        headers=agency.headers,
        json={"role": "agency_admin"},
    )
    assert demote.status_code == 403  # an admin key may not touch an owner
    await _owner_cannot_leave_agency_ownerless(agency, owner_membership)
    to_owner = await client.post(
        "/api/v1/memberships",
        headers=agency.headers,
        json={"user_id": owner["id"], "role": "client_member", "client_id": shop["id"]},
    )
    assert to_owner.status_code == 403  # nor give an owner another role
    person = await _provisioned_person(client, agency)
    add = await client.post(
        "/api/v1/memberships",
        headers=agency.headers,
        json={"user_id": person, "role": "client_member", "client_id": shop["id"]},
    )
    assert add.status_code == 201
    dup = await client.post(
        "/api/v1/memberships",
        headers=agency.headers,
        json={"user_id": person, "role": "client_owner", "client_id": shop["id"]},
    )
    assert dup.status_code == 409
    changed = await client.patch(
        f"/api/v1/memberships/{add.json()['id']}",
        headers=agency.headers,
        json={"role": "client_owner"},
    )
    assert changed.json()["role"] == "client_owner"
    assert (
        await client.delete(f"/api/v1/memberships/{add.json()['id']}", headers=agency.headers)
    ).status_code == 204


async def test_staff_key_cannot_grant_above_itself(client, make_agency):
    agency = await make_agency()
    staff_key = await client.post(
        "/api/v1/api-keys", headers=agency.headers, json={"name": "staff", "role": "agency_staff"}
    )
    headers = {"Authorization": f"Bearer {staff_key.json()['key']}"}
    resp = await client.post(
        "/api/v1/invitations",
        headers=headers,
        json={"email": "boss@example.com", "role": "agency_owner"},
    )
    assert resp.status_code == 403
    assert (
        await client.post("/api/v1/api-keys", headers=headers, json={"name": "x"})
    ).status_code == 403


async def _provisioned_person(client, agency) -> str:
    """Someone with no role yet (provisioned by the agency's directory); their public id."""
    token = await client.post("/api/v1/scim-tokens", headers=agency.headers, json={"name": "d"})
    assert token.status_code == 201, token.text
    resp = await client.post(
        f"/a/{agency.slug}/scim/v2/Users",
        headers={"Authorization": f"Bearer {token.json()['token']}"},
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"person@{agency.slug}.example",
        },
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def _owner_cannot_leave_agency_ownerless(agency, membership_public_id):
    import pytest

    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work
    from services.kit.errors import Conflict
    from tenants.principal import Principal
    from tenants.roles import ROLE_PERMISSIONS, Role
    from tenants.scoping import scope_to

    owner = Principal(
        kind="user",
        agency_id=agency.id,
        role=Role.AGENCY_OWNER,
        permissions=ROLE_PERMISSIONS[Role.AGENCY_OWNER],
        user_id=ids.decode("usr", agency.owner_user_id),
        label="owner",
    )
    mid = ids.decode("mem", membership_public_id)
    with pytest.raises(Conflict):
        async with unit_of_work() as session:
            await scope_to(session, owner)
            await identity.change_membership(session, owner, mid, Role.AGENCY_ADMIN)
    with pytest.raises(Conflict):
        async with unit_of_work() as session:
            await scope_to(session, owner)
            await identity.remove_membership(session, owner, mid)


async def test_invitations_come_from_the_agencys_own_sender(client, make_agency, mailbox):
    agency = await make_agency(name="Sender Co")
    resp = await client.patch(
        "/api/v1/agency",
        headers=agency.headers,
        json={"mail_from_name": "Sender Co Team", "mail_from_address": "team@sender.example"},
    )
    assert resp.status_code == 200 and resp.json()["mail_from_address"] == "team@sender.example"
    email = f"new+{agency.slug}@example.com"
    await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={"email": email, "role": "agency_staff"},
    )
    await wait_for_jobs(lambda: bool(mailbox.to(email)))
    assert mailbox.to(email)[0]["from"] == "Sender Co Team <team@sender.example>"
    bad = await client.patch(
        "/api/v1/agency", headers=agency.headers, json={"mail_from_address": "not-an-address"}
    )
    assert bad.status_code == 422
