"""Invitations: a link that gives a role to an e-mail address (a new person, or one who is
already in the agency: then the same rule as any change of them applies). The link is
delivered by a job (`identity.invitation.deliver`), sealed in its outbox row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import access
from services.identity import repository as repo
from services.identity.models import Invitation
from services.identity.users import (
    check_password_strength,
    check_role_target,
    create_user,
    normalize_email,
)
from services.kit import jobs
from services.kit.crypto import hash_password, new_token, sha256_hex
from services.kit.errors import Conflict, NotFound
from services.kit.types import utcnow
from services.settings import get_settings
from tenants.models import Agency, Membership, User
from tenants.principal import Principal
from tenants.roles import Role

INVITATION_TTL = timedelta(days=7)


@dataclass
class IssuedInvitation:
    invitation: Invitation
    token: str


def invitation_url(agency_slug: str, token: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}/a/{agency_slug}/invite/{token}"


async def invite(
    session: AsyncSession,
    principal: Principal,
    *,
    email: str,
    role: Role,
    client_id: uuid.UUID | None = None,
    name: str = "",
) -> IssuedInvitation:
    assert principal.agency_id is not None
    await check_role_target(session, principal, role, client_id)
    email = normalize_email(email)
    # An invitation to someone who exists adds a role to them: the same rule as any change,
    # decided on the agency-wide record (the caller's scope may not show the person).
    found = await access.user_id_by_email(principal, email)
    if found is not None:
        await access.check_may_act_on(principal, found)
    existing = await repo.user_by_email(session, email)
    if existing is not None and await repo.membership_for(session, existing.id, client_id):
        raise Conflict(f"{email} already has a role there", field="email")
    token = new_token(32)
    inv = Invitation(
        agency_id=principal.agency_id,
        email=email,
        name=name,
        role=role,
        client_id=client_id,
        token_hash=sha256_hex(token),
        invited_by=principal.actor_id,
        expires_at=utcnow() + INVITATION_TTL,
    )
    session.add(inv)
    await session.flush()
    jobs.enqueue(
        session,
        "identity.invitation.deliver",
        principal.agency_id,
        invitation_id=str(inv.id),
        # The caller gets the link now, so the token exists now: it travels sealed.
        secrets={"url": invitation_url(principal.agency_slug or "", token)},
    )
    return IssuedInvitation(inv, token)


async def revoke_invitation(
    session: AsyncSession, principal: Principal, invitation_id: uuid.UUID
) -> Invitation:
    inv = await repo.invitation(session, invitation_id)
    if inv is None:
        raise NotFound("no such invitation")
    access.check_grant(principal, Role(inv.role))
    if inv.accepted_at is None and inv.revoked_at is None:
        inv.revoked_at = utcnow()
        await session.flush()
    return inv


async def open_invitation(session: AsyncSession, token: str) -> Invitation:
    inv = await repo.invitation_by_hash(session, sha256_hex(token))
    if inv is None or inv.revoked_at or inv.accepted_at or inv.expires_at <= utcnow():
        raise NotFound("this invitation link is invalid, used or expired")
    return inv


async def accept_invitation(
    session: AsyncSession, agency: Agency, token: str, *, name: str, password: str
) -> User:
    inv = await open_invitation(session, token)
    user = await repo.user_by_email(session, inv.email)
    if user is None:
        user = await create_user(session, agency.id, email=inv.email, name=name, password=password)
    elif user.password_hash is None:
        check_password_strength(password)
        user.password_hash = hash_password(password)
    user.email_verified = True
    if await repo.membership_for(session, user.id, inv.client_id) is None:
        session.add(
            Membership(agency_id=agency.id, user_id=user.id, role=inv.role, client_id=inv.client_id)
        )
    inv.accepted_at = utcnow()
    await session.flush()
    return user


async def list_invitations(session: AsyncSession) -> list[Invitation]:
    return list(await repo.invitations(session))


async def get_invitation(session: AsyncSession, invitation_id: uuid.UUID) -> Invitation:
    found = await repo.invitation(session, invitation_id)
    if found is None:
        raise NotFound("no such invitation")
    return found
