"""The first wall: fail-closed ORM scoping, on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from services.kit.errors import TenantScopeMissing


async def test_query_without_tenant_is_refused(client):
    from services.kit.db import unit_of_work
    from tenants.models import Client

    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await session.execute(select(Client))
    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await session.execute(update(Client).values(notes="x"))


async def test_orm_filter_hides_other_agencies_and_clients(client, make_agency, make_client):
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Agency, AuditEvent, Client
    from tenants.scoping import set_tenant, unscoped

    a, b = await make_agency(), await make_agency()
    x = await make_client(a, legal_name="X")
    await make_client(a, legal_name="Y")
    await make_client(b, legal_name="B's")
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(a.id))
        names = sorted((await session.execute(select(Client.display_name))).scalars())
        assert names == ["X", "Y"]
        assert [g.id for g in (await session.execute(select(Agency))).scalars()] == [a.id]
        # joins and aliases are filtered too
        joined = (
            (
                await session.execute(
                    select(Client.display_name).join(Agency, Agency.id == Client.agency_id)
                )
            )
            .scalars()
            .all()
        )
        assert sorted(joined) == ["X", "Y"]
        await set_tenant(
            session, TenantContext.for_agency(a.id, frozenset({ids.decode("cli", x["id"])}))
        )
        assert (await session.execute(select(Client.display_name))).scalars().all() == ["X"]
        events = (await session.execute(select(AuditEvent))).scalars().all()
        assert events and all(e.client_id == ids.decode("cli", x["id"]) for e in events)
        async with unscoped(session, "test: operator view"):
            total = (await session.execute(select(Client.agency_id))).scalars().all()
            assert {a.id, b.id} <= set(total)


async def test_cross_tenant_write_is_refused(client, make_agency):
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import set_tenant

    a, b = await make_agency(), await make_agency()
    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(a.id))
            session.add(Client(agency_id=b.id, legal_name="x", display_name="x"))
            await session.flush()


async def test_tenant_scope_bug_is_a_generic_500_for_clients(client):
    """If a handler ever forgot its tenant, the caller sees a plain 500 with no detail."""
    from fastapi import FastAPI

    from services.kit.web import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise TenantScopeMissing("ORM statement with no tenant in scope")

    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.get("/boom")
    assert resp.status_code == 500
    assert "tenant" not in resp.text


async def test_client_scoped_person_sees_themselves_but_not_other_users(
    client, make_agency, make_client
):
    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Membership, User
    from tenants.roles import Role
    from tenants.scoping import set_tenant

    agency = await make_agency()
    x = ids.decode("cli", (await make_client(agency, legal_name="X"))["id"])
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        staff = await identity.create_user(session, agency.id, email="staff@example.com")
        session.add(Membership(agency_id=agency.id, user_id=staff.id, role=Role.AGENCY_STAFF))
        member = await identity.create_user(session, agency.id, email="m@example.com")
        session.add(
            Membership(agency_id=agency.id, user_id=member.id, role=Role.CLIENT_MEMBER, client_id=x)
        )
    async with unit_of_work() as session:
        ctx = TenantContext(agency_id=agency.id, client_ids=frozenset({x}), user_id=staff.id)
        await set_tenant(session, ctx)
        seen = sorted((await session.execute(select(User.email))).scalars())
    # themselves and the people of their clients; not the owner, not other clients' people
    assert seen == ["m@example.com", "staff@example.com"]


async def test_an_error_inside_unscoped_is_not_masked(client):
    """A failing statement inside the bypass surfaces as itself, and the session's context
    is restored for the next transaction."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from services.kit.db import unit_of_work
    from tenants.scoping import current_tenant, unscoped

    with pytest.raises(DBAPIError) as err:
        async with unit_of_work() as session:
            async with unscoped(session, "test: failing statement"):
                await session.execute(text("SELECT * FROM no_such_table"))
    assert "no_such_table" in str(err.value)
    assert current_tenant(session) is None


def test_tables_imported_late_are_still_scoped():
    """The scoping maps must follow tables registered after their first use: a query defined
    at import time (tenants.reads) once froze them before the OIDC tables existed, leaving
    those unscoped on SQLite."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import services.clients.repository  # defines a TenantQuery at import: uses the maps early
from tenants import scoping
early = set(scoping._scoped_model_by_table())
import services.models_registry
from services.kit.models import metadata
late = set(scoping._scoped_model_by_table())
need = {t for t in metadata.tables.values() if "agency_id" in t.c}
missing = sorted(t.name for t in need - late)
assert not missing, missing
assert len(late) > len(early), (len(early), len(late))
print("ok")
"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
