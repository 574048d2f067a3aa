"""Second factors: TOTP authenticator apps (RFC 6238) and single-use recovery codes.

A person with a confirmed authenticator who gives the right password gets a session marked
`mfa_pending`: it is not a signed-in session until `complete_sign_in` accepts a current code
(or an unused recovery code). Codes are throttled like passwords, and a TOTP code is accepted
once only (its time step must be newer than the last one used).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyotp
import segno
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import repository as repo
from services.identity.models import RecoveryCode, TotpCredential, UserSession
from services.identity.sessions import rotate_session
from services.identity.throttle import count_failure, refuse_if_throttled, second_factor_keys
from services.kit.crypto import constant_time_equal, new_token, seal, sha256_hex, unseal
from services.kit.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.kit.types import utcnow
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, User, UserStatus
from tenants.scoping import set_tenant

_PURPOSE = "identity/totp"
RECOVERY_CODES = 10
TOTP_WINDOW = 1  # accept the previous and next 30-second step too (clock drift)


def _context(user: User) -> str:
    return f"{user.agency_id}|{user.id}"


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)


def _secret_of(cred: TotpCredential, user: User) -> str:
    return unseal(cred.secret_sealed, purpose=_PURPOSE, context=_context(user)).decode()


async def has_totp(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """A confirmed authenticator app."""
    cred = await repo.totp_of(session, user_id)
    return cred is not None and cred.confirmed_at is not None


async def second_factors(session: AsyncSession, user_id: uuid.UUID) -> set[str]:
    """The kinds of second factor a person has: 'totp', 'passkey', and 'recovery' while
    unused recovery codes are left."""
    kinds = {"totp"} if await has_totp(session, user_id) else set()
    if await repo.has_passkey(session, user_id):
        kinds.add("passkey")
    if await recovery_codes_left(session, user_id):
        kinds.add("recovery")
    return kinds


async def recovery_codes_left(session: AsyncSession, user_id: uuid.UUID) -> int:
    return sum(1 for c in await repo.recovery_codes_of(session, user_id) if c.used_at is None)


async def issue_recovery_codes(session: AsyncSession, agency: Agency, user: User) -> list[str]:
    """Ten new single-use recovery codes (the old ones stop working), for someone with a
    second factor: the way back in when the phone or the passkeys are lost. Shown once."""
    if not await has_second_factor(session, user.id):
        raise ValidationFailed("set up an authenticator app or a passkey first", field="code")
    codes = await _new_recovery_codes(session, agency, user)
    audit.record(
        session,
        "auth.recovery_codes_issued",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"count": len(codes)},
    )
    await session.flush()
    return codes


async def has_second_factor(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """A confirmed authenticator app or at least one passkey (`identity.passkeys`): either
    makes the password alone insufficient, and either satisfies the agency's policy."""
    return await has_totp(session, user_id) or await repo.has_passkey(session, user_id)


@dataclass
class Enrolment:
    secret: str
    uri: str
    qr_svg_data_uri: str


async def start_enrolment(session: AsyncSession, agency: Agency, user: User) -> Enrolment:
    """A fresh, unconfirmed secret (replacing any earlier unconfirmed one)."""
    cred = await repo.totp_of(session, user.id)
    if cred is not None and cred.confirmed_at is not None:
        raise Conflict("an authenticator is already set up; remove it first")
    secret = pyotp.random_base32()
    sealed = seal(secret.encode(), purpose=_PURPOSE, context=_context(user))
    if cred is None:
        session.add(TotpCredential(agency_id=agency.id, user_id=user.id, secret_sealed=sealed))
    else:
        cred.secret_sealed, cred.last_step = sealed, 0
    await session.flush()
    return enrolment_view(agency, user, secret)


def enrolment_view(agency: Agency, user: User, secret: str) -> Enrolment:
    uri = _totp(secret).provisioning_uri(name=user.email, issuer_name=agency.name)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return Enrolment(secret=secret, uri=uri, qr_svg_data_uri=qr)


async def pending_enrolment(session: AsyncSession, agency: Agency, user: User) -> Enrolment | None:
    cred = await repo.totp_of(session, user.id)
    if cred is None or cred.confirmed_at is not None:
        return None
    return enrolment_view(agency, user, _secret_of(cred, user))


def _step_of(totp: pyotp.TOTP, code: str) -> int | None:
    """The time step a code belongs to (within the window), or None."""
    now = utcnow()
    for offset in range(-TOTP_WINDOW, TOTP_WINDOW + 1):
        step = totp.timecode(now) + offset
        if constant_time_equal(totp.generate_otp(step), code):
            return step
    return None


def _clean(code: str) -> str:
    return "".join(ch for ch in code if ch.isalnum()).lower()


async def confirm_enrolment(
    session: AsyncSession, agency: Agency, user: User, code: str
) -> list[str]:
    """Check a first code from the app; returns the recovery codes (shown once)."""
    cred = await repo.totp_of(session, user.id)
    if cred is None or cred.confirmed_at is not None:
        raise NotFound("no authenticator set-up is in progress")
    step = _step_of(_totp(_secret_of(cred, user)), _clean(code))
    if step is None:
        raise ValidationFailed("that code is not right; check the app's clock", field="code")
    cred.confirmed_at, cred.last_step = utcnow(), step
    codes = await _new_recovery_codes(session, agency, user)
    audit.record(
        session,
        "auth.mfa_enabled",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"method": "totp"},
    )
    await session.flush()
    return codes


async def _new_recovery_codes(session: AsyncSession, agency: Agency, user: User) -> list[str]:
    for old in await repo.recovery_codes_of(session, user.id):
        await session.delete(old)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = new_token(16)[:10].lower()  # 16 bytes: always at least 10 characters
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(agency_id=agency.id, user_id=user.id, code_hash=sha256_hex(raw)))
    return codes


async def _accept(session: AsyncSession, user: User, code: str) -> str | None:
    """'totp' or 'recovery' if the code is good (and spend it), else None. Recovery codes
    work for passkey-only people too (they get codes without an authenticator app)."""
    cleaned = _clean(code)
    if cleaned.isdigit() and len(cleaned) == 6:
        cred = await repo.totp_of(session, user.id)
        if cred is None or cred.confirmed_at is None:
            return None
        step = _step_of(_totp(_secret_of(cred, user)), cleaned)
        if step is not None and step > cred.last_step:
            cred.last_step = step
            return "totp"
        return None
    digest = sha256_hex(cleaned)
    for rc in await repo.recovery_codes_of(session, user.id):
        if rc.used_at is None and constant_time_equal(rc.code_hash, digest):
            rc.used_at = utcnow()
            return "recovery"
    return None


async def accept_code(session: AsyncSession, user: User, code: str) -> str | None:
    """Re-authentication with a current code or an unused recovery code (spent if good):
    'totp' or 'recovery', else None."""
    return await _accept(session, user, code)


async def remove(session: AsyncSession, agency: Agency, user: User, code: str) -> None:
    """Turn two-factor sign-in off, proven with a current code or a recovery code."""
    if await _accept(session, user, code) is None:
        raise ValidationFailed("that code is not right", field="code")
    cred = await repo.totp_of(session, user.id)
    if cred is not None:
        await session.delete(cred)
    for rc in await repo.recovery_codes_of(session, user.id):
        await session.delete(rc)
    audit.record(
        session, "auth.mfa_disabled", agency_id=agency.id, target_type="user", target_id=user.id
    )
    await session.flush()


async def pending_sign_in(
    session: AsyncSession, agency: Agency, token: str
) -> tuple[UserSession, User] | None:
    """The half-open session behind a cookie (password given, code owed), if any."""
    from services.identity.repository import session_by_hash
    from services.identity.repository import user as user_by_id

    await set_tenant(session, TenantContext.for_agency(agency.id))
    row = await session_by_hash(session, sha256_hex(token))
    if row is None or not row.mfa_pending or row.revoked_at or row.expires_at <= utcnow():
        return None
    found = await user_by_id(session, row.user_id)
    if found is None or found.status != UserStatus.ACTIVE:
        return None
    return row, found


async def complete_sign_in(
    session: AsyncSession, agency: Agency, token: str, code: str, *, ip: str | None
) -> tuple[User, str]:
    """Accept the second factor for a half-open session. Throttled like passwords. The
    half-open session ends and a new one is opened (a new id at the privilege change):
    returns (user, the new session's cookie token)."""
    pending = await pending_sign_in(session, agency, token)
    if pending is None:
        raise NotFound("this sign-in has expired; start again")
    row, user = pending
    keys = second_factor_keys(user.id)
    throttles = await refuse_if_throttled(session, agency, keys, user.email)
    method = await _accept(session, user, code)
    if method is None:
        await count_failure(session, agency, keys, throttles)
        audit.record(
            session, "auth.mfa_failed", agency_id=agency.id, target_type="user", target_id=user.id
        )
        raise Unauthorized("that code is not right")
    fresh = await rotate_session(session, agency, row, user)
    for key in keys:
        await repo.clear_throttle(session, key)
    audit.record(
        session,
        "auth.mfa_verified",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"method": method},
    )
    await session.flush()
    return user, fresh
