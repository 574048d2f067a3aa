"""All client-record queries. The tenant (and client scope) is added by the session."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.clients.schemas import ClientSort
from tenants.context import TenantContext
from tenants.models import Client, ClientAssignment, LifecycleStage, Membership, User
from tenants.reads import Row, TenantQuery, tenant_reads
from tenants.roles import AGENCY_ROLES


async def get_with_staff(
    session: AsyncSession, client_id: uuid.UUID
) -> tuple[Client, list[uuid.UUID]] | None:
    """A client and its assigned staff in one round trip (the hot path of the API)."""
    stmt = (
        select(Client, ClientAssignment.user_id)
        .outerjoin(
            ClientAssignment,
            (ClientAssignment.agency_id == Client.agency_id)
            & (ClientAssignment.client_id == Client.id),
        )
        .where(Client.id == client_id)
        .order_by(ClientAssignment.created_at)
    )
    rows = (await session.execute(stmt)).all()
    if not rows:
        return None
    return rows[0][0], [user_id for _, user_id in rows if user_id is not None]


_clients = Client.__table__  # type: ignore[attr-defined]
_assignments = ClientAssignment.__table__  # type: ignore[attr-defined]

# The API's hottest read, outside the ORM (see tenants.reads): one row per assigned staff
# member, or one row with a NULL staff_user_id.
CLIENT_WITH_STAFF = TenantQuery(
    "client with assigned staff",
    select(_clients, _assignments.c.user_id.label("staff_user_id"))
    .select_from(
        _clients.outerjoin(
            _assignments,
            (_assignments.c.agency_id == bindparam("agency_id"))
            & (_assignments.c.client_id == _clients.c.id),
        )
    )
    .where(_clients.c.agency_id == bindparam("agency_id"), _clients.c.id == bindparam("client_id"))
    .order_by(_assignments.c.created_at),
)


async def read_with_staff(
    ctx: TenantContext, client_id: uuid.UUID
) -> tuple[Row, list[uuid.UUID]] | None:
    """`get_with_staff` for read-only callers, on the lean path: the client's columns as a
    mapping and its assigned staff, in one statement and one read-only transaction."""
    async with tenant_reads(ctx) as reads:
        rows = await reads.all(CLIENT_WITH_STAFF, client_id=client_id)
    if not rows:
        return None
    return rows[0], [r["staff_user_id"] for r in rows if r["staff_user_id"] is not None]


async def get(session: AsyncSession, client_id: uuid.UUID) -> Client | None:
    return (
        await session.execute(select(Client).where(Client.id == client_id))
    ).scalar_one_or_none()


async def page(
    session: AsyncSession,
    *,
    q: str | None,
    stage: LifecycleStage | None,
    sort: ClientSort,
    after: tuple[Any, uuid.UUID] | None,
    limit: int,
) -> Sequence[Client]:
    stmt = select(Client)
    if q:
        needle = q.lower()
        stmt = stmt.where(
            or_(
                *(
                    func.lower(col).contains(needle, autoescape=True)
                    for col in (
                        Client.display_name,
                        Client.legal_name,
                        Client.email,
                        Client.phone,
                        Client.city,
                        Client.website,
                    )
                )
            )
        )
    if stage is not None:
        stmt = stmt.where(Client.lifecycle_stage == stage)
    if sort is ClientSort.NAME:
        key, order = Client.display_name, (Client.display_name, Client.id)
        if after is not None:
            stmt = stmt.where(or_(key > after[0], (key == after[0]) & (Client.id > after[1])))
    elif sort is ClientSort.OLDEST:
        key, order = Client.created_at, (Client.created_at, Client.id)
        if after is not None:
            stmt = stmt.where(or_(key > after[0], (key == after[0]) & (Client.id > after[1])))
    else:
        key = Client.created_at
        order = (Client.created_at.desc(), Client.id.desc())  # type: ignore[assignment]
        if after is not None:
            stmt = stmt.where(or_(key < after[0], (key == after[0]) & (Client.id < after[1])))
    stmt = stmt.order_by(*order).limit(limit)
    return (await session.execute(stmt)).scalars().all()


async def staff_of(
    session: AsyncSession, client_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    if not client_ids:
        return out
    stmt = (
        select(ClientAssignment.client_id, ClientAssignment.user_id)
        .where(ClientAssignment.client_id.in_(client_ids))
        .order_by(ClientAssignment.created_at)
    )
    for client_id, user_id in (await session.execute(stmt)).all():
        out[client_id].append(user_id)
    return out


async def agency_team_ids(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The subset of user_ids that hold an agency role (owner, admin or staff)."""
    if not user_ids:
        return set()
    stmt = (
        select(Membership.user_id)
        .where(
            Membership.user_id.in_(user_ids),
            Membership.client_id.is_(None),
            Membership.role.in_([r.value for r in AGENCY_ROLES]),
        )
        .join(User, (User.agency_id == Membership.agency_id) & (User.id == Membership.user_id))
    )
    return set((await session.execute(stmt)).scalars().all())


async def replace_staff(
    session: AsyncSession, agency_id: uuid.UUID, client_id: uuid.UUID, user_ids: list[uuid.UUID]
) -> None:
    current = (await staff_of(session, [client_id])).get(client_id, [])
    removed = set(current) - set(user_ids)
    if removed:
        rows = (
            (
                await session.execute(
                    select(ClientAssignment).where(
                        ClientAssignment.client_id == client_id,
                        ClientAssignment.user_id.in_(removed),
                    )
                )
            )
            .scalars()
            .all()
        )
        for row in rows:
            await session.delete(row)
    for user_id in user_ids:
        if user_id not in current:
            session.add(ClientAssignment(agency_id=agency_id, client_id=client_id, user_id=user_id))
