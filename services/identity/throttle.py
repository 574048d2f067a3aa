"""Sign-in throttling: failed attempts counted per key in `AuthThrottle` rows, and keys locked
for a while that doubles with each lock. Passwords (`signin`), second factors (`mfa`,
`passkeys`: one per-person key, `mfa:<user>`, shared by codes and passkeys), upstream sign-in
and re-authentication all count here."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import repository as repo
from services.identity.models import AuthThrottle
from services.kit.errors import TooManyAttempts
from services.kit.types import utcnow
from tenants import audit
from tenants.models import Agency

THROTTLE_WINDOW = timedelta(minutes=15)
# Failures before a key is slowed down. The low limit applies to one e-mail from one address,
# so an attacker elsewhere cannot cheaply lock a person out; the e-mail-wide limit stops a
# distributed guess; the address-wide one stops stuffing many accounts from one place. A
# browser the person signed in with before ("dev", see `devices`) is judged by its own
# failures only.
THRESHOLDS = {"acct-ip": 5, "acct": 50, "ip": 20, "mfa": 5, "dev": 5}
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)


def sign_in_keys(email: str, ip: str | None, device_id: str | None = None) -> list[str]:
    """The keys a password sign-in counts against: the e-mail's, the e-mail's from this
    address and the address's; or, for a browser holding this person's device token, only
    that device's."""
    if device_id is not None:  # a known browser: its own counter, not the account's
        return [f"dev:{device_id}"]
    keys = [f"acct:{email}"]
    if ip:
        keys += [f"acct-ip:{email}|{ip}", f"ip:{ip}"]
    return keys


def second_factor_keys(user_id: uuid.UUID) -> list[str]:
    """The one per-person key every second-factor attempt counts against (authenticator and
    recovery codes, passkey assertions, re-authentication)."""
    return [f"mfa:{user_id}"]


async def refuse_if_throttled(
    session: AsyncSession, agency: Agency, keys: list[str], email: str
) -> list[AuthThrottle]:
    rows = await repo.throttles(session, keys)
    now = utcnow()
    locked = [r.locked_until for r in rows if r.locked_until and r.locked_until > now]
    if locked:
        wait = math.ceil((max(locked) - now).total_seconds())
        audit.record(
            session,
            "auth.login_throttled",
            agency_id=agency.id,
            target_type="user",
            data={"email": email[:320], "retry_after": wait},
        )
        raise TooManyAttempts(
            f"too many failed sign-ins; try again in {_human_wait(wait)}", retry_after=wait
        )
    return rows


async def count_failure(
    session: AsyncSession, agency: Agency, keys: list[str], rows: list[AuthThrottle]
) -> None:
    """Count a failed sign-in against each key; past a threshold, lock it for a while that
    doubles with each lock (30 s, 1 min, 2 min, … at most 15 min)."""
    now = utcnow()
    known = {r.key: r for r in rows}
    for key in keys:
        row = known.get(key)
        if row is None:
            row = AuthThrottle(agency_id=agency.id, key=key, window_started_at=now)
            try:
                async with session.begin_nested():
                    session.add(row)
                    await session.flush()
            except IntegrityError:  # a concurrent failure created it first
                continue
        if now - row.window_started_at > THROTTLE_WINDOW:
            row.failures, row.window_started_at = 0, now
        row.failures += 1
        threshold = THRESHOLDS[key.split(":", 1)[0]]
        if row.failures >= threshold:
            row.locked_until = now + min(FIRST_LOCK * (2**row.lock_count), MAX_LOCK)
            row.lock_count += 1
            row.failures, row.window_started_at = 0, now
    await session.flush()


def _human_wait(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"
