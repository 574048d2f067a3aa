"""Celery entry points of the OpenID Connect provider."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import users as identity_users
from services.oauth2 import backchannel
from services.worker import tenant_task
from tenants.scoping import current_tenant


@tenant_task(backchannel.TASK)
async def deliver_backchannel_logout(
    session: AsyncSession, client_id: str, session_id: str, user_id: str
) -> None:
    """One logout token to one relying party (OpenID Connect Back-Channel Logout)."""
    tenant = current_tenant(session)
    agency_id = tenant.agency_id if tenant is not None else None
    agency = (
        await identity_users.agency_of_session(session, agency_id)
        if agency_id is not None
        else None
    )
    if agency is None:
        return
    await backchannel.deliver(
        session, agency, uuid.UUID(client_id), uuid.UUID(session_id), uuid.UUID(user_id)
    )
