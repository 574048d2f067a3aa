"""Server-side browser sessions: opening one, rotating its id, and the one place a session
ends (with the hooks that must follow, `on_sessions_ended`). Knows nothing of second factors
or impersonation: `signin` resolves and ends the session behind a cookie with them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.identity.models import UserSession
from services.kit.crypto import new_token, sha256_hex
from services.kit.types import utcnow
from services.settings import get_settings
from tenants.models import Agency, User

# How stale a last-used (API key) or last-seen (browser session) time may get before a
# request writes it again.
LAST_USED_RESOLUTION = timedelta(seconds=60)


async def open_session(
    session: AsyncSession,
    agency: Agency,
    user: User,
    *,
    ip: str | None,
    user_agent: str | None,
    mfa_pending: bool = False,
) -> str:
    """A new server-side browser session for `user`; returns the cookie token."""
    token = new_token(32)
    now = utcnow()
    session.add(
        UserSession(
            agency_id=agency.id,
            user_id=user.id,
            token_hash=sha256_hex(token),
            expires_at=now + timedelta(hours=get_settings().session_ttl_hours),
            ip=ip,
            user_agent=(user_agent or "")[:400] or None,
            mfa_pending=mfa_pending,
        )
    )
    user.last_login_at = now
    return token


# ---- how a browser session ends -----------------------------------------------------------

# Why a session ended (the `reason` of end_sessions).
SIGNED_OUT = "signed_out"  # the person signed out (portal, RP-initiated logout)
REVOKED = "revoked"  # revoked from elsewhere: "sign out everywhere", disabled, reset, SCIM
ROTATED = "rotated"  # replaced by a new session id at a privilege change (second factor)
REPLACED = "replaced"  # the browser signed in again (prompt=login, another account)
IMPERSONATION_ENDED = "impersonation_ended"  # the "view as" it carried is over

SessionEndHook = Callable[[AsyncSession, Sequence[UserSession]], Awaitable[object]]
_SESSION_END_HOOKS: list[SessionEndHook] = []


def on_sessions_ended(hook: SessionEndHook) -> None:
    """Register what runs, in the same transaction, when browser sessions end (idempotent)."""
    if hook not in _SESSION_END_HOOKS:
        _SESSION_END_HOOKS.append(hook)


async def end_sessions(
    session: AsyncSession, rows: Iterable[UserSession], *, reason: str
) -> list[UserSession]:
    """THE one place a browser session ends: every sign-out, revocation and rotation passes
    here, and so does what must follow a session's end (back-channel logout, registered with
    `on_sessions_ended`). Returns the sessions that were still live and are ended now."""
    now = utcnow()
    ended = [row for row in rows if row.revoked_at is None]
    for row in ended:
        row.revoked_at = now
    if ended:
        await session.flush()
        # What must follow (the provider revokes the tokens issued in them and tells the apps
        # signed in with them: OpenID Connect Back-Channel Logout) is registered by the
        # wiring (services/tasks.py), so identity does not import the provider.
        for hook in _SESSION_END_HOOKS:
            await hook(session, ended)
    return ended


async def rotate_session(
    session: AsyncSession, agency: Agency, row: UserSession, user: User
) -> str:
    """A privilege change (the second factor accepted): the session id changes. The old row
    ends, a new full session with the same browser facts takes its place; returns its cookie
    token."""
    await end_sessions(session, [row], reason=ROTATED)
    return await open_session(session, agency, user, ip=row.ip, user_agent=row.user_agent)


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> int:
    rows = (
        (
            await session.execute(
                select(UserSession).where(
                    col(UserSession.user_id) == user_id, col(UserSession.revoked_at).is_(None)
                )
            )
        )
        .scalars()
        .all()
    )
    return len(await end_sessions(session, rows, reason=REVOKED))
