"""Identity use cases: credentials → Principal, API keys, browser sessions, users,
memberships and invitations. No HTTP here; endpoints and the portal call these."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import access
from services.identity import repository as repo
from services.identity.keycache import invalidate_on_commit, last_used, principal_cache
from services.identity.models import ApiKey, AuthThrottle, Invitation, PasswordReset, UserSession
from services.kit import ids, jobs
from services.kit.crypto import (
    constant_time_equal,
    hash_password,
    new_token,
    open_compact,
    password_needs_rehash,
    seal_compact,
    sha256_hex,
    verify_password,
)
from services.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from services.kit.types import utcnow
from services.settings import get_settings
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, AgencyStatus, Client, Membership, User, UserStatus
from tenants.principal import Principal
from tenants.reads import tenant_reads
from tenants.roles import AGENCY_ROLES, CLIENT_ROLES, Permission, Role, permissions_for
from tenants.scoping import scope_to, set_tenant

API_KEY_PREFIX = "sbk"
LAST_USED_RESOLUTION = timedelta(seconds=60)
INVITATION_TTL = timedelta(days=7)
MIN_PASSWORD_LENGTH = 10

# ---- API keys ----------------------------------------------------------------------------


def make_api_key(agency_id: uuid.UUID) -> tuple[str, str, str]:
    """A new key: `sbk_<agency>_<secret>`. Returns (key, display prefix, sha256)."""
    secret = new_token(32)
    raw = f"{API_KEY_PREFIX}_{ids.encode('a', agency_id)[2:]}_{secret}"
    return raw, f"{API_KEY_PREFIX}_…{secret[-6:]}", sha256_hex(raw)


def agency_of_api_key(raw: str) -> uuid.UUID | None:
    """The agency a key names (the lookup then happens inside that tenant only)."""
    parts = raw.split("_")
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not (30 <= len(parts[2]) <= 60):
        return None
    return ids.decode("a", f"a_{parts[1]}")


_operator_key_hash: tuple[str, str] | None = None


def _is_operator_key(key_hash: str) -> bool:
    global _operator_key_hash
    configured = get_settings().operator_api_key
    if not configured:
        return False
    if _operator_key_hash is None or _operator_key_hash[0] != configured:
        _operator_key_hash = (configured, sha256_hex(configured))
    return constant_time_equal(key_hash, _operator_key_hash[1])


async def resolve_api_key(raw: str) -> Principal:
    """Turn an `Authorization: Bearer` value into a Principal: from the per-process cache
    (see keycache), or with one read-only transaction in the key's agency (lean read path)."""
    key_hash = sha256_hex(raw)
    if _is_operator_key(key_hash):
        return Principal.operator()
    agency_id = agency_of_api_key(raw)
    if agency_id is None:
        raise Unauthorized("the bearer token is not a Switchboard API key")
    cached = principal_cache.get(key_hash)
    if cached is not None and cached.agency_id == agency_id:
        return cached
    generation = principal_cache.generation
    async with tenant_reads(TenantContext.for_agency(agency_id)) as reads:
        key = await reads.one_or_none(repo.API_KEY_BY_HASH, key_hash=key_hash)
    now = utcnow()
    if key is None:
        raise Unauthorized("the API key is unknown, revoked or expired")
    if key["revoked_at"] is not None or (key["expires_at"] and key["expires_at"] <= now):
        raise Unauthorized("the API key is unknown, revoked or expired")
    if key["agency_status"] != AgencyStatus.ACTIVE:
        raise Unauthorized("the agency of this API key is not active")
    if key["last_used_at"] is None or now - key["last_used_at"] > LAST_USED_RESOLUTION:
        await last_used.record(agency_id, key["id"], now)
    role = Role(key["role"])
    principal = Principal(
        kind="api_key",
        agency_id=agency_id,
        agency_slug=key["agency_slug"],
        role=role,
        permissions=permissions_for({role}),
        client_ids=frozenset({key["client_id"]}) if key["client_id"] else None,
        api_key_id=key["id"],
        label=f"API key {key['name']}",
    )
    principal_cache.put(key_hash, principal, key["expires_at"], generation)
    return principal


async def create_api_key(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    role: Role | None = None,
    client_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    assert principal.agency_id is not None
    if client_id is not None:
        await _require_client(session, client_id)
        role = role or Role.CLIENT_OWNER
        if role not in CLIENT_ROLES:
            raise ValidationFailed("a client-scoped key takes a client role", field="role")
    else:
        role = role or Role.AGENCY_ADMIN
        if role not in AGENCY_ROLES:
            raise ValidationFailed("an agency-wide key takes an agency role", field="role")
    access.check_grant(principal, role)
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    raw, prefix, key_hash = make_api_key(principal.agency_id)
    key = ApiKey(
        agency_id=principal.agency_id,
        name=name,
        key_hash=key_hash,
        prefix=prefix,
        role=role,
        client_id=client_id,
        created_by=principal.actor_id,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, raw


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    key = await repo.api_key(session, key_id)
    if key is None:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    await invalidate_on_commit(session, key.key_hash)
    return key


# ---- people ------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def principal_for_user(
    session: AsyncSession, user: User, agency: Agency, *, session_id: uuid.UUID | None = None
) -> Principal:
    memberships = await repo.memberships_of(session, user.id)
    roles = {Role(m.role) for m in memberships}
    agency_roles = roles & AGENCY_ROLES
    client_ids: frozenset[uuid.UUID] | None
    if agency_roles:
        role = max(agency_roles, key=lambda r: r.rank)
        roles = agency_roles
        if role is Role.AGENCY_STAFF:
            client_ids = frozenset(await repo.assigned_client_ids(session, user.id))
        else:
            client_ids = None
    else:
        client_ids = frozenset(m.client_id for m in memberships if m.client_id)
        role = max(roles, key=lambda r: r.rank) if roles else Role.CLIENT_MEMBER
        if not roles:
            roles = set()
    return Principal(
        kind="user",
        agency_id=agency.id,
        agency_slug=agency.slug,
        role=role,
        permissions=permissions_for(roles),
        client_ids=client_ids,
        user_id=user.id,
        label=user.email,
        session_id=session_id,
    )


async def create_user(
    session: AsyncSession,
    agency_id: uuid.UUID,
    *,
    email: str,
    name: str = "",
    password: str | None = None,
) -> User:
    email = normalize_email(email)
    if await repo.user_by_email(session, email) is not None:
        raise Conflict(f"a user with e-mail {email} already exists in this agency", field="email")
    if password is not None:
        check_password_strength(password)
    user = User(
        agency_id=agency_id,
        email=email,
        name=name,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a user with e-mail {email} already exists", field="email") from exc
    return user


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > 1024:
        raise ValidationFailed("the password is too long", field="password")


async def _require_client(session: AsyncSession, client_id: uuid.UUID) -> None:
    from sqlalchemy import select

    found = (await session.execute(select(Client.id).where(Client.id == client_id))).first()
    if found is None:
        raise NotFound("no such client")


async def _check_role_target(
    session: AsyncSession, principal: Principal, role: Role, client_id: uuid.UUID | None
) -> None:
    """A role fits its scope (agency roles: no client; client roles: a visible client) and
    the caller may grant it."""
    if (role in AGENCY_ROLES) != (client_id is None):
        raise ValidationFailed(
            "agency roles take no client_id; client roles need one", field="client_id"
        )
    if client_id is not None:
        await _require_client(session, client_id)
    elif principal.is_client_scoped:
        raise Forbidden("client-scoped callers may grant roles on their clients only")
    access.check_grant(principal, role)


async def add_membership(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID,
    role: Role,
    client_id: uuid.UUID | None,
) -> Membership:
    assert principal.agency_id is not None
    if await repo.user(session, user_id) is None:
        raise NotFound("no such user")
    await access.check_may_act_on(principal, user_id)
    await _check_role_target(session, principal, role, client_id)
    existing = await repo.membership_for(session, user_id, client_id)
    if existing is not None:
        raise Conflict("the user already has a role there; change it instead")
    m = Membership(agency_id=principal.agency_id, user_id=user_id, role=role, client_id=client_id)
    session.add(m)
    await session.flush()
    return m


async def change_membership(
    session: AsyncSession, principal: Principal, membership_id: uuid.UUID, role: Role
) -> Membership:
    m = await repo.membership(session, membership_id)
    if m is None:
        raise NotFound("no such membership")
    if (role in AGENCY_ROLES) != (m.client_id is None):
        raise ValidationFailed("the role does not fit the membership's scope", field="role")
    await access.check_may_act_on(principal, m.user_id)
    access.check_grant(principal, Role(m.role))
    access.check_grant(principal, role)
    if Role(m.role) is Role.AGENCY_OWNER and role is not Role.AGENCY_OWNER:
        await _keep_an_owner(session, m)
    m.role = role
    await session.flush()
    return m


async def remove_membership(
    session: AsyncSession, principal: Principal, membership_id: uuid.UUID
) -> None:
    m = await repo.membership(session, membership_id)
    if m is None:
        raise NotFound("no such membership")
    await access.check_may_act_on(principal, m.user_id)
    access.check_grant(principal, Role(m.role))
    if Role(m.role) is Role.AGENCY_OWNER:
        await _keep_an_owner(session, m)
    await session.delete(m)
    await session.flush()


async def _keep_an_owner(session: AsyncSession, leaving: Membership) -> None:
    from sqlalchemy import func, select

    stmt = (
        select(func.count())
        .select_from(Membership)
        .where(Membership.role == Role.AGENCY_OWNER, Membership.id != leaving.id)
    )
    if (await session.execute(stmt)).scalar_one() == 0:
        raise Conflict("an agency must keep at least one owner")


async def update_user(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    *,
    name: str | None = None,
    status: UserStatus | None = None,
) -> User:
    """Change a person's name or status (disabling signs them out everywhere). Any field is
    a change of the person: who may make it is `access`'s one rule."""
    user = await repo.user(session, user_id)
    if user is None:
        raise NotFound("no such user")
    if name is None and status is None:
        return user
    await access.check_may_act_on(principal, user.id)
    changed = False
    if status is not None and status != user.status:
        if user.id == principal.user_id and status is UserStatus.DISABLED:
            raise Conflict("you cannot disable yourself")
        user.status = status
        if status is UserStatus.DISABLED:
            await revoke_user_sessions(session, user.id)
        changed = True
    if name is not None and name != user.name:
        user.name = name
        changed = True
    if changed:
        user.updated_at = utcnow()
        await session.flush()
    return user


# ---- invitations -------------------------------------------------------------------------


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
    await _check_role_target(session, principal, role, client_id)
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


# ---- browser sessions ----------------------------------------------------------------------


# ---- sign-in throttling ------------------------------------------------------------------

THROTTLE_WINDOW = timedelta(minutes=15)
# Failures before a key is slowed down. The low limit applies to one e-mail from one address,
# so an attacker elsewhere cannot cheaply lock a person out; the e-mail-wide limit stops a
# distributed guess; the address-wide one stops stuffing many accounts from one place. A
# browser the person signed in with before ("dev", see the device tokens below) is judged by
# its own failures only.
THRESHOLDS = {"acct-ip": 5, "acct": 50, "ip": 20, "mfa": 5, "dev": 5}
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)


def _throttle_keys(email: str, ip: str | None, device_id: str | None = None) -> list[str]:
    if device_id is not None:  # a known browser: its own counter, not the account's
        return [f"dev:{device_id}"]
    keys = [f"acct:{email}"]
    if ip:
        keys += [f"acct-ip:{email}|{ip}", f"ip:{ip}"]
    return keys


# ---- device tokens (OWASP "Slow Down Online Guessing Attacks with Device Cookies") ----------
#
# A browser that completed a sign-in gets a device token: {user, random device id, issued at},
# sealed (AES-256-GCM, services.kit.crypto) to the agency, so it cannot be forged, read or
# moved to another agency. A password sign-in that presents a valid token of the same person
# is counted and locked under `dev:<device id>` only: an attacker's failures elsewhere, which
# lock the account for unknown browsers, do not lock that person's own browser out. Each
# successful sign-in issues a fresh token (a new device id).

DEVICE_TTL = timedelta(days=180)
_DEVICE_PURPOSE = "device-token"


def issue_device_token(agency_id: uuid.UUID, user_id: uuid.UUID) -> str:
    payload = {"u": user_id.hex, "d": new_token(16), "t": int(utcnow().timestamp())}
    return seal_compact(
        json.dumps(payload).encode(), purpose=_DEVICE_PURPOSE, context=str(agency_id)
    )


def trusted_device(agency_id: uuid.UUID, user_id: uuid.UUID, token: str) -> str | None:
    """The device id of a valid, unexpired token issued to `user_id` in this agency."""
    raw = open_compact(token, purpose=_DEVICE_PURPOSE, context=str(agency_id), max_length=400)
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
        issued = datetime.fromtimestamp(int(payload["t"]), tz=utcnow().tzinfo)
        owner, device_id = str(payload["u"]), str(payload["d"])
    except Exception:  # sealed by us but not a device token's shape
        return None
    if owner != user_id.hex or utcnow() - issued > DEVICE_TTL:
        return None
    return device_id


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
    keys = _throttle_keys(email, ip, device_id)
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
    from services.identity import mfa

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


# ---- password reset ------------------------------------------------------------------------

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
    from services.identity import mfa

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
        from services.identity import impersonation

        principal = await impersonation.principal_of(session, agency, row, user)
        if principal is not None:
            await scope_to(session, principal)
        return principal
    principal = await principal_for_user(session, user, agency, session_id=row.id)
    if agency.mfa_required:
        from services.identity import mfa

        if not await mfa.has_second_factor(session, user.id):
            principal = dataclasses.replace(principal, extra={"second_factor": "setup_required"})
    await scope_to(session, principal)
    return principal


# ---- how a browser session ends -----------------------------------------------------------

# Why a session ended (the `reason` of end_sessions).
SIGNED_OUT = "signed_out"  # the person signed out (portal, RP-initiated logout)
REVOKED = "revoked"  # revoked from elsewhere: "sign out everywhere", disabled, reset, SCIM
ROTATED = "rotated"  # replaced by a new session id at a privilege change (second factor)
REPLACED = "replaced"  # the browser signed in again (prompt=login, another account)
IMPERSONATION_ENDED = "impersonation_ended"  # the "view as" it carried is over


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


SessionEndHook = Callable[[AsyncSession, Sequence[UserSession]], Awaitable[object]]
_SESSION_END_HOOKS: list[SessionEndHook] = []


def on_sessions_ended(hook: SessionEndHook) -> None:
    """Register what runs, in the same transaction, when browser sessions end (idempotent)."""
    if hook not in _SESSION_END_HOOKS:
        _SESSION_END_HOOKS.append(hook)


async def rotate_session(
    session: AsyncSession, agency: Agency, row: UserSession, user: User
) -> str:
    """A privilege change (the second factor accepted): the session id changes. The old row
    ends, a new full session with the same browser facts takes its place; returns its cookie
    token."""
    await end_sessions(session, [row], reason=ROTATED)
    return await open_session(session, agency, user, ip=row.ip, user_agent=row.user_agent)


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
        from services.identity import impersonation

        imp = await impersonation.by_id(session, row.impersonation_id)
        if imp is not None and await impersonation.end(session, imp, how=impersonation.SIGNED_OUT):
            return
    await end_sessions(session, [row], reason=reason)


async def sign_out(session: AsyncSession, principal: Principal) -> None:
    if principal.session_id is None:
        return
    from sqlalchemy import select

    row = (
        await session.execute(select(UserSession).where(UserSession.id == principal.session_id))
    ).scalar_one_or_none()
    if row is not None:
        await end_sessions(session, [row], reason=SIGNED_OUT)
    if row is not None and row.impersonation_id is not None:
        from services.identity import impersonation

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


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> int:
    from sqlalchemy import select

    rows = (
        (
            await session.execute(
                select(UserSession).where(
                    UserSession.user_id == user_id, UserSession.revoked_at.is_(None)
                )
            )
        )
        .scalars()
        .all()
    )
    return len(await end_sessions(session, rows, reason=REVOKED))


def require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden(f"this needs the {permission.value} permission")


__all__: Sequence[str] = [
    "accept_invitation",
    "create_api_key",
    "resolve_api_key",
    "sign_in",
]
