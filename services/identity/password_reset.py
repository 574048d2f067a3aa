"""Password reset: a request that looks the same whatever the address, a link e-mailed by a
job to an active account (minted when the mail is sent), and setting the new password, which
signs the person out everywhere and still asks for their second factor."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import mfa
from services.identity import repository as repo
from services.identity.models import PasswordReset
from services.identity.sessions import open_session, revoke_user_sessions
from services.identity.users import check_password_strength, normalize_email
from services.kit import jobs
from services.kit.crypto import hash_password, new_token, sha256_hex
from services.kit.errors import NotFound
from services.kit.types import utcnow
from services.settings import get_settings
from tenants import audit
from tenants.models import Agency, User, UserStatus

RESET_TTL = timedelta(hours=1)
RESETS_PER_HOUR = 3


def password_reset_url(agency_slug: str, token: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}/a/{agency_slug}/reset/{token}"


async def request_password_reset(
    session: AsyncSession, agency: Agency, email: str, *, ip: str | None
) -> None:
    """Ask for a reset link. The request does the same work whatever the address (an audit
    event and a queued job: no account oracle in the answer or its timing); the job looks
    the address up and e-mails a link if an active account has it (`issue_password_reset`)."""
    email = normalize_email(email)
    audit.record(
        session,
        "auth.password_reset_requested",
        agency_id=agency.id,
        target_type="user",
        data={"email": email[:320]},
    )
    jobs.enqueue(session, "identity.password_reset.request", agency.id, email=email[:320], ip=ip)


async def issue_password_reset(
    session: AsyncSession, agency: Agency, email: str, *, ip: str | None
) -> None:
    """(In the job.) E-mail a reset link if an active account has this address; at most a
    few links an hour per person."""
    email = normalize_email(email)
    user = await repo.user_by_email(session, email)
    if user is None or user.status != UserStatus.ACTIVE:
        return
    now = utcnow()
    if await repo.count_password_resets_since(session, user.id, now - timedelta(hours=1)) >= (
        RESETS_PER_HOUR
    ):
        return
    row = PasswordReset(
        agency_id=agency.id,
        user_id=user.id,
        # A hash of a token nobody holds: the link is minted when the mail is sent
        # (mint_password_reset_url), so no job or queue ever carries it.
        token_hash=sha256_hex(new_token(32)),
        expires_at=now + RESET_TTL,
        requested_ip=ip,
    )
    session.add(row)
    await session.flush()
    jobs.enqueue(session, "identity.password_reset.deliver", agency.id, reset_id=str(row.id))


def mint_password_reset_url(row: PasswordReset, agency_slug: str) -> str:
    """The reset link, minted at send time in the delivering task's transaction."""
    token = new_token(32)
    row.token_hash = sha256_hex(token)
    return password_reset_url(agency_slug, token)


async def open_password_reset(session: AsyncSession, token: str) -> tuple[PasswordReset, User]:
    row = await repo.password_reset_by_hash(session, sha256_hex(token))
    user = await repo.user(session, row.user_id) if row is not None else None
    if (
        row is None
        or user is None
        or row.used_at is not None
        or row.expires_at <= utcnow()
        or user.status != UserStatus.ACTIVE
    ):
        raise NotFound("this reset link is invalid, used or expired")
    return row, user


async def reset_password(
    session: AsyncSession,
    agency: Agency,
    token: str,
    *,
    password: str,
    ip: str | None,
    user_agent: str | None,
) -> tuple[User, str]:
    """Set a new password from a reset link: every other session is signed out, every other
    open link dies, throttling on this person is lifted, and a fresh session is opened."""
    row, user = await open_password_reset(session, token)
    check_password_strength(password)
    now = utcnow()
    user.password_hash = hash_password(password)
    user.email_verified = True
    user.updated_at = now
    for other in await repo.open_password_resets(session, user.id):
        other.used_at = now
    row.used_at = now
    await revoke_user_sessions(session, user.id)
    await repo.clear_throttles_of(session, user.email)
    # A reset proves control of the mailbox, not of the second factor: still owed.
    pending = await mfa.has_second_factor(session, user.id)
    cookie = await open_session(
        session, agency, user, ip=ip, user_agent=user_agent, mfa_pending=pending
    )
    audit.record(
        session, "auth.password_reset", agency_id=agency.id, target_type="user", target_id=user.id
    )
    await session.flush()
    return user, cookie
