"""Agency queries. Listing all agencies is operator work and runs unscoped by the caller."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tenants.models import Agency


async def by_id(session: AsyncSession, agency_id: uuid.UUID) -> Agency | None:
    return (
        await session.execute(select(Agency).where(Agency.id == agency_id))
    ).scalar_one_or_none()


async def by_slug(session: AsyncSession, slug: str) -> Agency | None:
    return (await session.execute(select(Agency).where(Agency.slug == slug))).scalar_one_or_none()


async def page(
    session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Sequence[Agency]:
    stmt = select(Agency).order_by(Agency.created_at, Agency.id).limit(limit)
    if after is not None:
        stmt = stmt.where(
            or_(
                Agency.created_at > after[0],
                (Agency.created_at == after[0]) & (Agency.id > after[1]),
            )
        )
    return (await session.execute(stmt)).scalars().all()
