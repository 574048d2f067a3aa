"""Read queries the portal's pages need beyond the domain repositories. Every one runs inside
the session's tenant (and client) scope, like every other query."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import AuditEvent, Client, LifecycleStage, Membership, User, UserStatus
from tenants.roles import AGENCY_ROLES, CLIENT_ROLES


async def stage_counts(session: AsyncSession) -> dict[LifecycleStage, int]:
    stmt = select(Client.lifecycle_stage, func.count(Client.id)).group_by(Client.lifecycle_stage)
    return {LifecycleStage(stage): int(n) for stage, n in (await session.execute(stmt)).all()}


async def client_history(
    session: AsyncSession, client_id: uuid.UUID, limit: int
) -> Sequence[AuditEvent]:
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.client_id == client_id)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()


async def users_by_id(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, User]:
    if not user_ids:
        return {}
    stmt = select(User).where(User.id.in_(list(set(user_ids))))
    return {u.id: u for u in (await session.execute(stmt)).scalars().all()}


async def client_names(
    session: AsyncSession, client_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    if not client_ids:
        return {}
    stmt = select(Client.id, Client.display_name).where(Client.id.in_(list(set(client_ids))))
    return {cid: name for cid, name in (await session.execute(stmt)).all()}


async def client_choices(session: AsyncSession, limit: int) -> list[tuple[uuid.UUID, str]]:
    stmt = select(Client.id, Client.display_name).order_by(Client.display_name, Client.id)
    return [(cid, name) for cid, name in (await session.execute(stmt.limit(limit))).all()]


async def agency_team(session: AsyncSession) -> Sequence[User]:
    """Users holding an agency role (owner, admin, staff), by name."""
    team = select(Membership.user_id).where(
        Membership.client_id.is_(None), Membership.role.in_([r.value for r in AGENCY_ROLES])
    )
    stmt = select(User).where(User.id.in_(team)).order_by(User.name, User.email)
    return (await session.execute(stmt)).scalars().all()


async def client_people(
    session: AsyncSession, client_id: uuid.UUID, limit: int
) -> Sequence[tuple[User, str]]:
    """The client's own active people (a client role on it, no agency role), with their role
    there, by name: whom "View as a client user" offers."""
    agency_people = select(Membership.user_id).where(Membership.client_id.is_(None))
    stmt = (
        select(User, Membership.role)
        .join(
            Membership, (Membership.user_id == User.id) & (Membership.agency_id == User.agency_id)
        )
        .where(
            Membership.client_id == client_id,
            Membership.role.in_([r.value for r in CLIENT_ROLES]),
            User.status == UserStatus.ACTIVE,
            User.id.not_in(agency_people),
        )
        .order_by(User.name, User.email)
        .limit(limit)
    )
    return [(u, role) for u, role in (await session.execute(stmt)).all()]


async def impersonation_events(
    session: AsyncSession, client_id: uuid.UUID, limit: int
) -> Sequence[AuditEvent]:
    """The latest starts and ends of impersonations on this client, newest first."""
    stmt = (
        select(AuditEvent)
        .where(
            AuditEvent.client_id == client_id,
            AuditEvent.action.in_(["impersonation.started", "impersonation.ended"]),
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return (await session.execute(stmt)).scalars().all()
