"""Statements built once for hot paths (`tenants.scoping.prepared`) are scoped like any other:
the criteria attached for one tenant are never reused for another, nor for a narrower scope
of the same agency. The token endpoint's statements are such statements."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, select, update

from services.kit import ids


async def _run(ctx, statement, params):  # type: ignore[no-untyped-def]
    from services.kit.db import unit_of_work
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, ctx)
        result = await session.execute(statement, params)
        return list(result.scalars()) if statement.is_select else result.rowcount


async def test_a_prepared_select_sees_only_its_tenant_every_time(client, make_agency):
    from tenants.context import TenantContext
    from tenants.models import User
    from tenants.scoping import prepared

    by_id = prepared(select(User.email).where(User.id == bindparam("p_user")))
    a, b = await make_agency(), await make_agency()
    owner_a = ids.decode("usr", a.owner_user_id)
    in_a, in_b = TenantContext.for_agency(a.id), TenantContext.for_agency(b.id)
    for _ in range(3):  # the scoped statement is kept per tenant: order must not matter
        assert await _run(in_a, by_id, {"p_user": owner_a}) == [a.owner_email]
        assert await _run(in_b, by_id, {"p_user": owner_a}) == []


async def test_a_prepared_statement_keeps_a_client_scope_narrower(client, make_agency, make_client):
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import prepared

    names = prepared(select(Client.display_name).where(Client.id.in_(bindparam("p_ids"))))
    a = await make_agency()
    one = ids.decode("cli", (await make_client(a, display_name="One"))["id"])
    two = ids.decode("cli", (await make_client(a, display_name="Two"))["id"])
    wanted = {"p_ids": [one, two]}
    agency_wide = TenantContext.for_agency(a.id)
    only_one = TenantContext.for_agency(a.id, frozenset({one}))
    assert sorted(await _run(agency_wide, names, wanted)) == ["One", "Two"]
    assert await _run(only_one, names, wanted) == ["One"]
    assert sorted(await _run(agency_wide, names, wanted)) == ["One", "Two"]
    assert await _run(TenantContext.for_agency(a.id, frozenset()), names, wanted) == []


async def test_a_prepared_update_changes_only_its_tenant(client, make_agency, make_client):
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import prepared

    rename = prepared(
        update(Client)
        .where(Client.id == bindparam("p_id"))
        .values(display_name=bindparam("p_name"))
        .execution_options(synchronize_session=False)
    )
    a, b = await make_agency(), await make_agency()
    cid = ids.decode("cli", (await make_client(a, display_name="Mine"))["id"])
    assert await _run(TenantContext.for_agency(b.id), rename, {"p_id": cid, "p_name": "X"}) == 0
    assert await _run(TenantContext.for_agency(a.id), rename, {"p_id": cid, "p_name": "Y"}) == 1
    missing = {"p_id": uuid.uuid4(), "p_name": "Z"}
    assert await _run(TenantContext.for_agency(a.id), rename, missing) == 0
