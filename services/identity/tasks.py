"""Celery entry points for identity."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import repository as repo
from services.kit import mail
from services.worker import tenant_task


@tenant_task("identity.invitation.deliver")
async def deliver_invitation(session: AsyncSession, invitation_id: str, url: str) -> None:
    inv = await repo.invitation(session, uuid.UUID(invitation_id))
    if inv is None or inv.revoked_at or inv.accepted_at:
        return
    agency = await repo.agency(session, inv.agency_id)
    agency_name = agency.name if agency else "Your agency"
    body = (
        f"Hello{(' ' + inv.name) if inv.name else ''},\n\n"
        f"{agency_name} invites you to its client portal.\n\n"
        f"Accept the invitation and choose your password here:\n{url}\n\n"
        f"The link works once and expires on {inv.expires_at:%Y-%m-%d %H:%M} UTC.\n"
    )
    await mail.send(
        session,
        inv.agency_id,
        to=inv.email,
        subject=f"{agency_name} invited you to Switchboard",
        body=body,
        sender_name=agency_name,
    )
