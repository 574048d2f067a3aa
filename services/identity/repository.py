"""All identity queries. Every one runs inside the session's tenant scope."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.models import (
    ApiKey,
    AuthThrottle,
    Invitation,
    Passkey,
    PasswordReset,
    RecoveryCode,
    TotpCredential,
    UserSession,
)
from tenants.models import Agency, ClientAssignment, Membership, User
from tenants.reads import TenantQuery


async def agency(session: AsyncSession, agency_id: uuid.UUID) -> Agency | None:
    return (
        await session.execute(select(Agency).where(Agency.id == agency_id))
    ).scalar_one_or_none()


_keys = ApiKey.__table__  # type: ignore[attr-defined]
_agencies = Agency.__table__  # type: ignore[attr-defined]

# The key behind an `Authorization: Bearer` value and the state of its agency, on the lean
# read path (tenants.reads): run on every cache miss of the API's authentication.
API_KEY_BY_HASH = TenantQuery(
    "api key by hash",
    select(
        _keys.c.id,
        _keys.c.name,
        _keys.c.role,
        _keys.c.client_id,
        _keys.c.expires_at,
        _keys.c.revoked_at,
        _keys.c.last_used_at,
        _agencies.c.slug.label("agency_slug"),
        _agencies.c.status.label("agency_status"),
    )
    .select_from(_keys.join(_agencies, _agencies.c.id == _keys.c.agency_id))
    .where(
        _keys.c.agency_id == bindparam("agency_id"),
        _agencies.c.id == bindparam("agency_id"),
        _keys.c.key_hash == bindparam("key_hash"),
    ),
)


async def api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return (await session.execute(select(ApiKey).where(ApiKey.id == key_id))).scalar_one_or_none()


async def api_keys(session: AsyncSession) -> Sequence[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
    return (await session.execute(stmt)).scalars().all()


async def session_by_hash(session: AsyncSession, token_hash: str) -> UserSession | None:
    stmt = select(UserSession).where(UserSession.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def user_session(session: AsyncSession, session_id: uuid.UUID) -> UserSession | None:
    stmt = select(UserSession).where(UserSession.id == session_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return (await session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    stmt = select(User).where(User.email == email.strip().lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def users(
    session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Sequence[User]:
    stmt = select(User).order_by(User.created_at, User.id).limit(limit)
    if after is not None:
        stmt = stmt.where((User.created_at, User.id) > after)  # type: ignore[operator]
    return (await session.execute(stmt)).scalars().all()


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> Sequence[Membership]:
    stmt = select(Membership).where(Membership.user_id == user_id).order_by(Membership.created_at)
    return (await session.execute(stmt)).scalars().all()


async def memberships_for_users(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> Sequence[Membership]:
    if not user_ids:
        return []
    stmt = select(Membership).where(Membership.user_id.in_(user_ids))
    return (await session.execute(stmt)).scalars().all()


async def membership(session: AsyncSession, membership_id: uuid.UUID) -> Membership | None:
    stmt = select(Membership).where(Membership.id == membership_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def membership_for(
    session: AsyncSession, user_id: uuid.UUID, client_id: uuid.UUID | None
) -> Membership | None:
    stmt = select(Membership).where(Membership.user_id == user_id)
    stmt = stmt.where(
        Membership.client_id.is_(None) if client_id is None else Membership.client_id == client_id
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def assigned_client_ids(session: AsyncSession, user_id: uuid.UUID) -> set[uuid.UUID]:
    stmt = select(ClientAssignment.client_id).where(ClientAssignment.user_id == user_id)
    return set((await session.execute(stmt)).scalars().all())


async def invitation(session: AsyncSession, invitation_id: uuid.UUID) -> Invitation | None:
    stmt = select(Invitation).where(Invitation.id == invitation_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def invitation_by_hash(session: AsyncSession, token_hash: str) -> Invitation | None:
    stmt = select(Invitation).where(Invitation.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def invitations(session: AsyncSession) -> Sequence[Invitation]:
    stmt = select(Invitation).order_by(Invitation.created_at.desc(), Invitation.id)
    return (await session.execute(stmt)).scalars().all()


async def throttles(session: AsyncSession, keys: Sequence[str]) -> list[AuthThrottle]:
    """The counters for these keys, locked for this transaction (concurrent failures count)."""
    stmt = select(AuthThrottle).where(AuthThrottle.key.in_(keys)).with_for_update()
    return list((await session.execute(stmt)).scalars().all())


async def clear_throttle(session: AsyncSession, key: str) -> None:
    stmt = select(AuthThrottle).where(AuthThrottle.key == key)
    for row in (await session.execute(stmt)).scalars().all():
        await session.delete(row)


async def password_reset_by_hash(session: AsyncSession, token_hash: str) -> PasswordReset | None:
    stmt = select(PasswordReset).where(PasswordReset.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def open_password_resets(session: AsyncSession, user_id: uuid.UUID) -> list[PasswordReset]:
    stmt = select(PasswordReset).where(
        PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None)
    )
    return list((await session.execute(stmt)).scalars().all())


async def count_password_resets_since(
    session: AsyncSession, user_id: uuid.UUID, since: datetime
) -> int:
    stmt = (
        select(func.count())
        .select_from(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.created_at >= since)
    )
    return int((await session.execute(stmt)).scalar_one())


async def clear_throttles_of(session: AsyncSession, email: str) -> None:
    """Every counter about one person (any address): a password reset proves who they are."""
    stmt = select(AuthThrottle).where(
        or_(AuthThrottle.key == f"acct:{email}", AuthThrottle.key.startswith(f"acct-ip:{email}|"))
    )
    for row in (await session.execute(stmt)).scalars().all():
        await session.delete(row)


async def totp_of(session: AsyncSession, user_id: uuid.UUID) -> TotpCredential | None:
    stmt = select(TotpCredential).where(TotpCredential.user_id == user_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def recovery_codes_of(session: AsyncSession, user_id: uuid.UUID) -> list[RecoveryCode]:
    stmt = select(RecoveryCode).where(RecoveryCode.user_id == user_id)
    return list((await session.execute(stmt)).scalars().all())


async def passkeys_of(session: AsyncSession, user_id: uuid.UUID) -> list[Passkey]:
    stmt = (
        select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.created_at, Passkey.id)
    )
    return list((await session.execute(stmt)).scalars().all())


async def has_passkey(session: AsyncSession, user_id: uuid.UUID) -> bool:
    stmt = select(Passkey.id).where(Passkey.user_id == user_id).limit(1)
    return (await session.execute(stmt)).first() is not None


async def passkey(session: AsyncSession, passkey_id: uuid.UUID) -> Passkey | None:
    return (
        await session.execute(select(Passkey).where(Passkey.id == passkey_id))
    ).scalar_one_or_none()


async def passkey_by_credential(session: AsyncSession, credential_id: str) -> Passkey | None:
    """The passkey with this credential id in the session's agency (another agency's passkey
    is simply not found)."""
    stmt = select(Passkey).where(Passkey.credential_id == credential_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def passkeys_created_since(session: AsyncSession, user_id: uuid.UUID, since: datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(Passkey)
        .where(Passkey.user_id == user_id, Passkey.created_at >= since)
    )
    return int((await session.execute(stmt)).scalar_one())
