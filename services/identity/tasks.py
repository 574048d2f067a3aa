"""Task entry points for identity (listed in services/tasks.py).

The invitation link is sealed in the outbox (the inviter got it in the API response); the
password-reset link is minted here, at send time, so the outbox holds only the reset's id.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.identity import repository as repo
from services.identity.password_reset import issue_password_reset, mint_password_reset_url
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
        sender_name=(agency.mail_from_name if agency else None) or agency_name,
        sender_address=agency.mail_from_address if agency else None,
    )


@tenant_task("identity.password_reset.request")
async def request_password_reset(session: AsyncSession, email: str, ip: str | None) -> None:
    """A reset asked for on the forgot-password page (every well-formed address lands here,
    so the page does the same work for all): the link is issued only for an account."""
    from tenants.scoping import current_tenant

    ctx = current_tenant(session)
    agency = await repo.agency(session, ctx.agency_id) if ctx and ctx.agency_id else None
    if agency is not None:
        await issue_password_reset(session, agency, email, ip=ip)


@tenant_task("identity.password_reset.deliver")
async def deliver_password_reset(session: AsyncSession, reset_id: str) -> None:
    from sqlalchemy import select

    from services.identity.models import PasswordReset

    row = (
        await session.execute(
            select(PasswordReset).where(col(PasswordReset.id) == uuid.UUID(reset_id))
        )
    ).scalar_one_or_none()
    if row is None or row.used_at is not None:
        return
    user = await repo.user(session, row.user_id)
    agency = await repo.agency(session, row.agency_id)
    if user is None or agency is None:
        return
    url = mint_password_reset_url(row, agency.slug)
    body = (
        f"Hello{(' ' + user.name) if user.name else ''},\n\n"
        f"Someone (hopefully you) asked to reset the password of your {agency.name} account.\n\n"
        f"Choose a new password here:\n{url}\n\n"
        f"The link works once and expires at {row.expires_at:%H:%M} UTC. "
        "If you did not ask for it, ignore this message: your password stays as it is.\n"
    )
    await mail.send(
        session,
        row.agency_id,
        to=user.email,
        subject=f"Reset your {agency.name} password",
        body=body,
        sender_name=agency.mail_from_name or agency.name,
        sender_address=agency.mail_from_address,
    )
