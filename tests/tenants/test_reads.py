"""The lean read path (tenants.reads): its first wall is checked when a query is defined, its
second wall (PostgreSQL RLS) on every transaction; it returns what the ORM path returns."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import bindparam, select

from services.kit.errors import TenantScopeMissing
from tests.conftest import PG_ADMIN_URL


def _tables():
    from tenants.models import Agency, Client, ClientAssignment, User

    return (
        Client.__table__,
        ClientAssignment.__table__,
        User.__table__,
        Agency.__table__,
    )


def test_a_query_must_filter_every_tenant_table_by_the_agency(client):
    from tenants.reads import TenantQuery

    clients, assignments, users, _ = _tables()
    with pytest.raises(TenantScopeMissing, match="does not filter clients"):
        TenantQuery("no filter", select(clients).where(clients.c.id == bindparam("client_id")))
    # the join's second table is not filtered
    with pytest.raises(TenantScopeMissing, match="client_assignments"):
        TenantQuery(
            "join unfiltered",
            select(clients, assignments.c.user_id)
            .select_from(clients.outerjoin(assignments, assignments.c.client_id == clients.c.id))
            .where(clients.c.agency_id == bindparam("agency_id")),
        )
    # a subquery reaches another tenant table
    with pytest.raises(TenantScopeMissing, match="users"):
        TenantQuery(
            "subquery unfiltered",
            select(clients).where(
                clients.c.agency_id == bindparam("agency_id"),
                clients.c.id.in_(select(users.c.id)),
            ),
        )
    # filtering by some other parameter is not the tenant filter
    with pytest.raises(TenantScopeMissing, match="clients"):
        TenantQuery("wrong param", select(clients).where(clients.c.agency_id == bindparam("a")))
    # an aliased tenant table cannot be checked, so it is refused
    alias = clients.alias("c2")
    with pytest.raises(TenantScopeMissing):
        TenantQuery("alias", select(alias).where(alias.c.agency_id == bindparam("agency_id")))
    ok = TenantQuery(
        "fine", select(clients.c.id).where(clients.c.agency_id == bindparam("agency_id"))
    )
    assert ok.name == "fine"


async def test_the_agency_comes_from_the_tenant_only(client, make_agency):
    from services.clients.repository import CLIENT_WITH_STAFF
    from tenants.context import TenantContext
    from tenants.reads import tenant_reads

    with pytest.raises(TenantScopeMissing):
        async with tenant_reads(TenantContext(agency_id=None)):
            pass
    with pytest.raises(TenantScopeMissing):
        async with tenant_reads(TenantContext(agency_id=None, unscoped_reason="x")):
            pass
    agency = await make_agency()
    with pytest.raises(TenantScopeMissing, match="never from a caller"):
        async with tenant_reads(TenantContext.for_agency(agency.id)) as reads:
            await reads.all(CLIENT_WITH_STAFF, client_id=uuid.uuid4(), agency_id=uuid.uuid4())


async def test_reads_match_the_orm_and_stay_in_the_tenant(client, make_agency, make_client):
    from services.clients import repository
    from services.clients.schemas import ClientOut
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    a, b = await make_agency(), await make_agency()
    owner = ids.decode("usr", a.owner_user_id)
    made = await make_client(
        a,
        legal_name="Bella Vista Trattoria LLC",
        display_name="Bella Vista",
        categories=["restaurant", "italian"],
        hours={"mon": ["11:00-22:00"]},
        assigned_staff=[a.owner_user_id],
    )
    cid = ids.decode("cli", made["id"])
    found = await repository.read_with_staff(TenantContext.for_agency(a.id), cid)
    assert found is not None
    row, staff = found
    assert staff == [owner]
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(a.id))
        orm = await repository.get_with_staff(session, cid)
    assert orm is not None
    assert ClientOut.of_row(row, staff) == ClientOut.of(*orm)
    assert ClientOut.of_row(row, staff).model_dump(mode="json") == made
    # another agency's id is simply not there
    assert await repository.read_with_staff(TenantContext.for_agency(b.id), cid) is None


pg = pytest.mark.skipif(not PG_ADMIN_URL, reason="needs PostgreSQL (SWITCHBOARD_TEST_PG_URL)")


@pytest.mark.postgres
@pg
async def test_rls_applies_inside_the_read_transaction(client, make_agency, make_client):
    from tenants.context import TenantContext
    from tenants.reads import tenant_reads

    a, b = await make_agency(), await make_agency()
    await make_client(a)
    await make_client(b)
    async with tenant_reads(TenantContext.for_agency(a.id)) as reads:
        driver = reads._driver
        # raw SQL with no filter at all: the database itself returns only agency A's rows
        agencies = await driver.fetch("SELECT DISTINCT agency_id FROM clients")
        assert [r["agency_id"] for r in agencies] == [a.id]
        assert await driver.fetchval("SELECT current_user") == "switchboard_app"
        assert await driver.fetchval("SHOW transaction_read_only") == "on"
        with pytest.raises(Exception, match="read-only transaction"):
            await driver.execute("UPDATE clients SET notes = 'x'")


@pytest.mark.postgres
@pg
async def test_client_scope_uses_the_client_role(client, make_agency, make_client):
    from services.kit import ids
    from tenants.context import TenantContext
    from tenants.reads import tenant_reads

    a = await make_agency()
    mine, other = await make_client(a), await make_client(a)
    scope = frozenset({ids.decode("cli", mine["id"])})
    async with tenant_reads(TenantContext.for_agency(a.id, scope)) as reads:
        rows = await reads._driver.fetch("SELECT id FROM clients")
        assert [r["id"] for r in rows] == [ids.decode("cli", mine["id"])]
        assert await reads._driver.fetchval("SELECT current_user") == "switchboard_client"
    assert other["id"] != mine["id"]


@pytest.mark.postgres
@pg
async def test_pooled_connection_keeps_nothing_after_errors_or_cancellation(
    client, make_agency, make_client
):
    from services.kit.db import get_read_pool
    from tenants.context import TenantContext
    from tenants.reads import tenant_reads

    a = await make_agency()
    await make_client(a)
    ctx = TenantContext.for_agency(a.id)

    with pytest.raises(RuntimeError):
        async with tenant_reads(ctx) as reads:
            await reads._driver.fetch("SELECT 1")
            raise RuntimeError("the caller failed")
    with pytest.raises(Exception, match="division by zero"):
        async with tenant_reads(ctx) as reads:
            await reads._driver.fetch("SELECT 1/0")

    async def slow() -> None:
        async with tenant_reads(ctx) as reads:
            await reads._driver.fetch("SELECT pg_sleep(5)")

    task = asyncio.create_task(slow())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # Every connection the pool hands out afterwards is clean: no transaction, the login
    # role, no tenant.
    pool = await get_read_pool()
    conns = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        for conn in conns:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT current_setting('app.agency_id', true)") in (
                None,
                "",
            )
            assert await conn.fetchval("SELECT current_user") != "switchboard_app"
    finally:
        for conn in conns:
            await pool.release(conn)
