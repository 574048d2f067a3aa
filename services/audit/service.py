"""The audit trail's reads: the agency's events, newest first, filtered and paged."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import repository as repo
from services.kit import ids
from services.kit.errors import ValidationFailed
from tenants.models import AuditEvent


def target_of(public_id: str | None) -> uuid.UUID | None:
    """The object a `target_id` filter names (any kind of public id), or a 422."""
    if not public_id:
        return None
    found = ids.decode(public_id.partition("_")[0], public_id)
    if found is None:
        raise ValidationFailed("target_id is not a valid id", field="target_id")
    return found


async def events(
    session: AsyncSession,
    *,
    action: str | None,
    target_id: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[AuditEvent]:
    return list(
        await repo.page(
            session, action=action, target_id=target_of(target_id), after=after, limit=limit
        )
    )
