"""Purging sign-in state that has served its purpose: browser sessions well past their end,
used or expired password-reset links, and throttle counters whose window and lock are over.
Runs for every agency at once under the audited bypass (see services/retention.py)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_

from services.identity.models import AuthThrottle, PasswordReset, UserSession
from services.kit.db import unit_of_work
from services.kit.types import utcnow
from tenants.scoping import unscoped

SESSION_GRACE = timedelta(days=7)  # ended sessions stay visible a week (sign-in history)
RESET_GRACE = timedelta(days=1)
THROTTLE_IDLE = timedelta(days=1)


async def purge_expired() -> dict[str, int]:
    now = utcnow()
    async with (
        unit_of_work() as session,
        unscoped(session, "retention: purge ended sessions, reset links, throttles"),
    ):
        sessions = await session.execute(
            delete(UserSession).where(
                or_(
                    UserSession.expires_at < now - SESSION_GRACE,
                    UserSession.revoked_at < now - SESSION_GRACE,
                )
            )
        )
        resets = await session.execute(
            delete(PasswordReset).where(PasswordReset.expires_at < now - RESET_GRACE)
        )
        throttles = await session.execute(
            delete(AuthThrottle).where(
                AuthThrottle.window_started_at < now - THROTTLE_IDLE,
                or_(AuthThrottle.locked_until.is_(None), AuthThrottle.locked_until < now),
            )
        )
    return {
        "user_sessions": sessions.rowcount or 0,
        "password_resets": resets.rowcount or 0,
        "auth_throttles": throttles.rowcount or 0,
    }
