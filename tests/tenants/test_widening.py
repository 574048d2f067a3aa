"""A tenant scope narrows, never widens: only the kernel may widen, for a reason it names,
and every bypass of the tenant (`unscoped`) is logged at INFO with its reason."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from services.kit.errors import TenantScopeMissing


def _events(err: str, name: str) -> list[dict]:
    out = []
    for line in err.splitlines():
        line = line.strip()
        if line.startswith("{") and f'"{name}"' in line:
            out.append(json.loads(line))
    return out


async def _agency_with_two_clients(make_agency, make_client):  # type: ignore[no-untyped-def]
    from services.kit import ids

    agency = await make_agency()
    x = ids.decode("cli", (await make_client(agency, legal_name="X"))["id"])
    y = ids.decode("cli", (await make_client(agency, legal_name="Y"))["id"])
    return agency, x, y


async def test_set_tenant_refuses_to_widen_a_client_scoped_session(
    client, make_agency, make_client
):
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import set_tenant

    agency, x, y = await _agency_with_two_clients(make_agency, make_client)
    other = await make_agency()
    widenings = [
        TenantContext.for_agency(agency.id),  # agency-wide
        TenantContext.for_agency(agency.id, frozenset({x, y})),  # more clients
        TenantContext.for_agency(agency.id, frozenset({y})),  # another client
        TenantContext.for_agency(other.id),  # another agency
        TenantContext(agency_id=None, unscoped_reason="sneaky"),  # out of the tenant
    ]
    for wider in widenings:
        with pytest.raises(TenantScopeMissing):
            async with unit_of_work() as session:
                await set_tenant(session, TenantContext.for_agency(agency.id, frozenset({x})))
                await set_tenant(session, wider)
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id, frozenset({x})))
        assert (await session.execute(select(Client.display_name))).scalars().all() == ["X"]


async def test_set_tenant_narrows_and_refuses_another_agency(client, make_agency, make_client):
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import current_tenant, set_tenant

    agency, x, _ = await _agency_with_two_clients(make_agency, make_client)
    other = await make_agency()
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        await set_tenant(session, TenantContext.for_agency(agency.id))  # the same: fine
        await set_tenant(session, TenantContext.for_agency(agency.id, frozenset({x})))
        assert (await session.execute(select(Client.display_name))).scalars().all() == ["X"]
        assert current_tenant(session) == TenantContext.for_agency(agency.id, frozenset({x}))
    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id))
            await set_tenant(session, TenantContext.for_agency(other.id))


async def test_bind_principal_refuses_to_widen(client, make_agency, make_client):
    from services.kit.db import session_factory
    from tenants.context import TenantContext
    from tenants.principal import Principal
    from tenants.roles import Role
    from tenants.scoping import TENANT_KEY, bind_principal

    agency, x, _ = await _agency_with_two_clients(make_agency, make_client)
    session = session_factory()()
    try:
        session.info[TENANT_KEY] = TenantContext.for_agency(agency.id, frozenset({x}))
        owner = Principal.acting_in(agency.id, agency.slug, "test")
        assert owner.role == Role.AGENCY_OWNER
        with pytest.raises(TenantScopeMissing):
            bind_principal(session, owner)
    finally:
        await session.close()


async def test_sanctioned_widening_is_named_logged_and_restored(
    client, make_agency, make_client, capsys
):
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import Widening, agency_wide, current_tenant

    agency, x, _ = await _agency_with_two_clients(make_agency, make_client)
    scoped = TenantContext.for_agency(agency.id, frozenset({x}))
    capsys.readouterr()
    async with unit_of_work() as session:
        from tenants.scoping import set_tenant

        await set_tenant(session, scoped)
        async with agency_wide(session, Widening.ROLES_OF_PERSON):
            names = sorted((await session.execute(select(Client.display_name))).scalars())
            assert names == ["X", "Y"]
        assert current_tenant(session) == scoped
        assert (await session.execute(select(Client.display_name))).scalars().all() == ["X"]
        with pytest.raises(TypeError):  # a reason the kernel does not list
            async with agency_wide(session, "because I want to"):  # type: ignore[arg-type]
                pass
    logged = _events(capsys.readouterr().err, "tenancy.agency_wide")
    assert logged and logged[0]["level"] == "info"
    assert logged[0]["reason"] == Widening.ROLES_OF_PERSON.value


async def test_every_unscoped_block_is_logged_at_info_with_its_reason(client, capsys):
    from services.kit.db import unit_of_work
    from tenants.models import Agency
    from tenants.scoping import unscoped

    capsys.readouterr()
    async with unit_of_work() as session:
        async with unscoped(session, "test: count agencies"):
            await session.execute(select(Agency.id).limit(1))
    logged = _events(capsys.readouterr().err, "tenancy.unscoped")
    assert [(e["level"], e["reason"]) for e in logged] == [("info", "test: count agencies")]
    for blank in ("", "   "):
        with pytest.raises(ValueError):
            async with unit_of_work() as session:
                async with unscoped(session, blank):
                    pass
