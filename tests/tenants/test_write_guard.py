"""The first wall for writes: every INSERT, upsert and UPDATE on a tenant table is checked
against the session's tenant, whatever API built the statement (one test per shape).

Scoped to agency A, nothing may write a row of agency B, nor move a row to B, nor touch a
client outside a client-scoped session's clients. The refusal comes from the kernel
(`TenantScopeMissing`) before the database sees the statement, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError

from services.kit.errors import TenantScopeMissing


def _client_row(agency_id: uuid.UUID, name: str = "x", **extra: object) -> dict[str, object]:
    return {
        "agency_id": agency_id,
        "legal_name": name,
        "display_name": name,
        "categories": [],
        "hours": {},
        **extra,
    }


def _dialect_insert(session):  # type: ignore[no-untyped-def]
    """The dialect's own INSERT (for ON CONFLICT), as the connector upserts use it."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert


async def _names(agency_id: uuid.UUID) -> list[str]:
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency_id))
        return sorted((await session.execute(select(Client.display_name))).scalars())


async def _refused(agency_a, statement_runner) -> None:  # type: ignore[no-untyped-def]
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency_a.id))
            await statement_runner(session)


async def test_orm_add_into_another_agency_is_refused(client, make_agency):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        session.add(Client(**_client_row(b.id)))
        await session.flush()

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_core_insert_values_into_another_agency_is_refused(client, make_agency):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        await session.execute(insert(Client).values(**_client_row(b.id, "core")))

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_core_insert_multi_values_with_one_foreign_row_is_refused(client, make_agency):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        rows = [_client_row(a.id, "mine"), _client_row(b.id, "theirs")]
        await session.execute(insert(Client).values(rows))

    await _refused(a, run)
    assert await _names(a.id) == [] and await _names(b.id) == []


async def test_executemany_with_one_foreign_row_is_refused(client, make_agency):
    """`session.execute(insert(T), [dict, dict])`: the ORM's bulk path (no ORM objects)."""
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        rows = [_client_row(a.id, "mine", id=uuid.uuid4()), _client_row(b.id, "theirs")]
        rows[1]["id"] = uuid.uuid4()
        await session.execute(insert(Client), rows)

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_execution_parameters_cannot_override_the_agency(client, make_agency):
    """Parameters given at execution override `.values()`: they are what gets checked."""
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        stmt = insert(Client.__table__).values(**_client_row(a.id, "p"), id=uuid.uuid4())
        conn = await session.connection()
        await conn.execute(stmt, {"agency_id": b.id})

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_insert_without_agency_is_refused(client, make_agency):
    from tenants.models import Client

    a = await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        await session.execute(insert(Client).values(legal_name="n", display_name="n"))

    await _refused(a, run)


async def test_insert_from_select_is_refused_in_a_tenant(client, make_agency, make_client):
    """INSERT ... SELECT: the kernel cannot see the rows before the database does, so in a
    tenant it is refused (operator code may run it inside `unscoped`)."""
    from sqlalchemy import literal

    from tenants.models import Client

    a, b = await make_agency(), await make_agency()
    await make_client(a, legal_name="Source")

    async def run(session):  # type: ignore[no-untyped-def]
        source = select(
            literal(b.id).label("agency_id"),
            Client.id,
            Client.legal_name,
            Client.display_name,
            Client.timezone,
            Client.categories,
            Client.hours,
            Client.lifecycle_stage,
            Client.lifecycle_changed_at,
            Client.created_at,
            Client.updated_at,
        )
        names = [c.name for c in source.selected_columns]
        await session.execute(insert(Client).from_select(names, source))

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_upsert_into_another_agency_is_refused(client, make_agency):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        ins = _dialect_insert(session)(Client).values(**_client_row(b.id, "up"), id=uuid.uuid4())
        await session.execute(
            ins.on_conflict_do_update(
                index_elements=["agency_id", "id"], set_={"legal_name": ins.excluded.legal_name}
            )
        )

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_upsert_set_clause_cannot_move_a_row_to_another_agency(
    client, make_agency, make_client
):
    from services.kit import ids
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()
    mine = ids.decode("cli", (await make_client(a, legal_name="Mine"))["id"])

    async def run(session):  # type: ignore[no-untyped-def]
        ins = _dialect_insert(session)(Client).values(**_client_row(a.id, "Mine"), id=mine)
        await session.execute(
            ins.on_conflict_do_update(index_elements=["agency_id", "id"], set_={"agency_id": b.id})
        )

    await _refused(a, run)
    assert await _names(a.id) == ["Mine"] and await _names(b.id) == []


async def test_upsert_cannot_update_a_row_outside_the_client_scope(
    client, make_agency, make_client
):
    """Client-scoped to X, an upsert naming a membership of client Y (same agency) with
    client X in its VALUES hits the conflict and would update Y's row: the kernel limits
    DO UPDATE to rows the session may write."""
    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Membership
    from tenants.roles import Role
    from tenants.scoping import set_tenant

    agency = await make_agency()
    x = ids.decode("cli", (await make_client(agency, legal_name="X"))["id"])
    y = ids.decode("cli", (await make_client(agency, legal_name="Y"))["id"])
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        person = await identity.create_user(session, agency.id, email="y@example.com")
        theirs = Membership(
            agency_id=agency.id, user_id=person.id, role=Role.CLIENT_MEMBER, client_id=y
        )
        session.add(theirs)
    try:
        await _upsert_membership(agency.id, x, theirs.id, person.id)
    except DBAPIError as exc:
        # PostgreSQL's row-level security checks the conflicting row before any WHERE: the
        # second wall refuses the statement outright (SQLite has only the first wall).
        assert "row-level security" in str(exc)
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        role = (
            await session.execute(select(Membership.role).where(Membership.id == theirs.id))
        ).scalar_one()
    assert role == Role.CLIENT_MEMBER


async def _upsert_membership(agency_id, x, membership_id, user_id):  # type: ignore[no-untyped-def]
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Membership
    from tenants.roles import Role
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency_id, frozenset({x})))
        ins = _dialect_insert(session)(Membership).values(
            agency_id=agency_id,
            id=membership_id,
            user_id=user_id,
            role=Role.CLIENT_MEMBER,
            client_id=x,
        )
        await session.execute(
            ins.on_conflict_do_update(
                index_elements=["agency_id", "id"], set_={"role": Role.CLIENT_OWNER}
            )
        )


async def test_bulk_insert_mappings_into_another_agency_is_refused(client, make_agency):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        await session.run_sync(
            lambda s: s.bulk_insert_mappings(Client, [_client_row(b.id, "bulk", id=uuid.uuid4())])
        )

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_connection_level_insert_through_the_session_is_refused(client, make_agency):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()

    async def run(session):  # type: ignore[no-untyped-def]
        conn = await session.connection()
        await conn.execute(
            insert(Client.__table__).values(**_client_row(b.id, "conn"), id=uuid.uuid4())
        )

    await _refused(a, run)
    assert await _names(b.id) == []


async def test_update_cannot_move_rows_to_another_agency(client, make_agency, make_client):
    from tenants.models import Client

    a, b = await make_agency(), await make_agency()
    await make_client(a, legal_name="Mine")

    async def run(session):  # type: ignore[no-untyped-def]
        await session.execute(update(Client).values(agency_id=b.id))

    await _refused(a, run)
    assert await _names(a.id) == ["Mine"] and await _names(b.id) == []


async def test_update_cannot_move_a_row_outside_the_client_scope(client, make_agency, make_client):
    from services.identity import service as identity
    from services.kit import ids
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Membership
    from tenants.roles import Role
    from tenants.scoping import set_tenant

    agency = await make_agency()
    x = ids.decode("cli", (await make_client(agency, legal_name="X"))["id"])
    y = ids.decode("cli", (await make_client(agency, legal_name="Y"))["id"])
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        person = await identity.create_user(session, agency.id, email="x@example.com")
        mine = Membership(
            agency_id=agency.id, user_id=person.id, role=Role.CLIENT_MEMBER, client_id=x
        )
        session.add(mine)
    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id, frozenset({x})))
            await session.execute(
                update(Membership).where(Membership.id == mine.id).values(client_id=y)
            )
    # the bulk UPDATE by primary key (a list of dicts) is checked the same way
    with pytest.raises(TenantScopeMissing):
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id, frozenset({x})))
            await session.execute(
                update(Membership), [{"agency_id": agency.id, "id": mine.id, "client_id": y}]
            )


async def test_writes_inside_the_tenant_still_work(client, make_agency, make_client):
    """The guard refuses only what leaves the tenant: every shape above works for A's rows."""
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.models import Client
    from tenants.scoping import set_tenant

    a = await make_agency()
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(a.id))
        await session.execute(insert(Client).values(**_client_row(a.id, "c1")))
        await session.execute(
            insert(Client), [_client_row(a.id, "c2", id=uuid.uuid4()) for _ in range(1)]
        )
        await session.execute(insert(Client).values([_client_row(a.id, "c3")]))
        await session.run_sync(
            lambda s: s.bulk_insert_mappings(Client, [_client_row(a.id, "c4", id=uuid.uuid4())])
        )
        up_id = uuid.uuid4()
        ins = _dialect_insert(session)(Client).values(**_client_row(a.id, "c5"), id=up_id)
        upsert = ins.on_conflict_do_update(
            index_elements=["agency_id", "id"],
            set_={"display_name": ins.excluded.display_name, "agency_id": ins.excluded.agency_id},
        )
        await session.execute(upsert)
        again = _dialect_insert(session)(Client).values(**_client_row(a.id, "c6"), id=up_id)
        await session.execute(
            again.on_conflict_do_update(
                index_elements=["agency_id", "id"],
                set_={"display_name": again.excluded.display_name},
            )
        )
        await session.execute(
            update(Client).where(Client.display_name == "c1").values(agency_id=a.id, notes="n")
        )
    assert await _names(a.id) == ["c1", "c2", "c3", "c4", "c6"]
