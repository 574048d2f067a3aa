"""Audit-log queries (read-only: the log is append-only)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import AuditEvent


async def page(
    session: AsyncSession,
    *,
    action: str | None,
    target_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[AuditEvent]:
    """Newest first; `after` is the (occurred_at, id) of the last row of the previous page."""
    stmt = select(AuditEvent).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == target_id)
    if after is not None:
        at, last = after
        stmt = stmt.where(
            or_(
                AuditEvent.occurred_at < at,
                (AuditEvent.occurred_at == at) & (AuditEvent.id < last),
            )
        )
    return (await session.execute(stmt.limit(limit))).scalars().all()
