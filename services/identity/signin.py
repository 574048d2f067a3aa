"""Password sign-in, and the browser session behind a cookie: resolving it to a Principal
(a second factor still owed, the agency's policy, an impersonation it carries) and ending it
(signing out, a new sign-in replacing it)."""

from __future__ import annotations

import dataclasses

from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import impersonation, mfa
from services.identity import repository as repo
from services.identity.devices import trusted_device
from services.identity.sessions import (
    LAST_USED_RESOLUTION,
    SIGNED_OUT,
    end_sessions,
    open_session,
    rotate_session,
)
from services.identity.throttle import count_failure, refuse_if_throttled, sign_in_keys
from services.identity.users import normalize_email, principal_for_user
from services.kit.crypto import hash_password, password_needs_rehash, sha256_hex, verify_password
from services.kit.errors import Unauthorized
from services.kit.types import utcnow
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, User, UserStatus
from tenants.principal import Principal
from tenants.scoping import scope_to, set_tenant

# Principal.extra["second_factor"] of a session the agency's policy holds to the account page
# until the person has a second factor.
SETUP_REQUIRED = "setup_required"


async def sign_in(
    session: AsyncSession,
    agency: Agency,
    *,
    email: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
    device: str = "",
) -> tuple[User, str]:
    """Check a password and open a server-side session. Returns (user, cookie token).

    Unknown e-mail and wrong password cost the same (one argon2 verification each) and give
    the same answer; repeated failures are slowed down per e-mail and per address, or, for a
    browser holding this person's device token (`device`), per device only.
    """
    email = normalize_email(email)
    user = await repo.user_by_email(session, email)
    device_id = trusted_device(agency.id, user.id, device) if user is not None else None
    keys = sign_in_keys(email, ip, device_id)
    rows = await refuse_if_throttled(session, agency, keys, email)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or user.status != UserStatus.ACTIVE:
        await count_failure(session, agency, keys, rows)
        audit.record(
            session,
            "auth.login_failed",
            agency_id=agency.id,
            target_type="user",
            target_id=user.id if user else None,
            data={"email": email[:320]},
        )
        raise Unauthorized("the e-mail or password is not right")
    for key in keys[:2]:  # this person's (or device's) counters; the address keeps its own
        await repo.clear_throttle(session, key)
    assert user.password_hash is not None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    pending = await mfa.has_second_factor(session, user.id)
    token = await open_session(
        session, agency, user, ip=ip, user_agent=user_agent, mfa_pending=pending
    )
    audit.record(
        session,
        "auth.login",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"second_factor": "pending"} if pending else None,
    )
    await session.flush()
    return user, token


async def resolve_browser_session(
    session: AsyncSession, agency: Agency, token: str
) -> Principal | None:
    await set_tenant(session, TenantContext.for_agency(agency.id))
    row = await repo.session_by_hash(session, sha256_hex(token))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.mfa_pending:
        return None
    user = await repo.user(session, row.user_id)
    if user is None or user.status != UserStatus.ACTIVE:
        return None
    if now - row.last_seen_at > LAST_USED_RESOLUTION:
        row.last_seen_at = now
    if row.impersonation_id is not None:  # agency staff viewing the portal as this person
        principal = await impersonation.principal_of(session, agency, row, user)
        if principal is not None:
            await scope_to(session, principal)
        return principal
    principal = await principal_for_user(session, user, agency, session_id=row.id)
    if agency.mfa_required and not await mfa.has_second_factor(session, user.id):
        principal = dataclasses.replace(principal, extra={"second_factor": SETUP_REQUIRED})
    await scope_to(session, principal)
    return principal


async def finish_second_factor_setup(
    session: AsyncSession, agency: Agency, principal: Principal
) -> str | None:
    """After a second factor was added in a session the agency's policy held to the account
    page (`resolve_browser_session` marks it `setup_required`): that session becomes a full
    one, a privilege change, so its id changes as when a second factor is accepted at sign-in
    (`rotate_session`). Returns the new session's cookie token, which the caller must hand to
    the browser; None when nothing changes (the session was not held, or still no second
    factor exists)."""
    if principal.extra.get("second_factor") != SETUP_REQUIRED or principal.session_id is None:
        return None
    if principal.user_id is None or not await mfa.has_second_factor(session, principal.user_id):
        return None
    row = await repo.user_session(session, principal.session_id)
    user = await repo.user(session, principal.user_id)
    if row is None or row.revoked_at is not None or user is None:
        return None
    return await rotate_session(session, agency, row, user)


async def end_session_by_token(
    session: AsyncSession, agency: Agency, token: str, *, reason: str
) -> None:
    """End the session behind a cookie value, if it is still live (a new sign-in replacing
    what the browser held). An impersonation session ends its impersonation too."""
    await set_tenant(session, TenantContext.for_agency(agency.id))
    row = await repo.session_by_hash(session, sha256_hex(token)) if token else None
    if row is None or row.revoked_at is not None:
        return
    if row.impersonation_id is not None:
        imp = await impersonation.by_id(session, row.impersonation_id)
        if imp is not None and await impersonation.end(session, imp, how=impersonation.SIGNED_OUT):
            return
    await end_sessions(session, [row], reason=reason)


async def sign_out(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is None:
        return
    row = await repo.user_session(session, principal.session_id)
    if row is not None:
        await end_sessions(session, [row], reason=SIGNED_OUT)
    if row is not None and row.impersonation_id is not None:
        await impersonation.end_current(session, principal, how=impersonation.SIGNED_OUT)
    assert principal.agency_id is not None
    audit.record(
        session,
        "auth.logout",
        agency_id=principal.agency_id,
        target_type="user",
        target_id=principal.user_id,
    )
    await session.flush()
