"""Audited impersonation: agency staff entering a client's portal as one of its people.

* **Start** (`start`): a member of the agency who holds `clients:impersonate` for the client
  (owners and admins: every client; staff: the clients assigned to them) names one of the
  client's people, a reason and a duration (15, 30 or 60 minutes). Viewing as someone is
  acting on them, so `access.decide` (who may act on whom) must allow it too: staff cannot
  view as a person who also works for a client not assigned to them. That writes an
  `Impersonation` row and opens a NEW browser session of the person, marked with the
  impersonation and ending when it does; `impersonation.started` is audited on the client, so
  its owner can read it. The staff member's own session is not touched (the portal keeps its
  token sealed in a cookie to restore it afterwards: `seal_return` / `open_return`).
* **Every request** in that session (`principal_of`) re-checks everything and resolves to the
  person's principal for that one client: the person's role there, the permissions of that
  role *intersected* with the staff member's own, minus `NEVER` (no nested impersonation, no
  API keys). Audit events of that principal name the staff member as the actor and carry
  `impersonating` (see `tenants/audit.py`). The session stops working at `expires_at`, when
  the view is ended, and as soon as the staff member or the person no longer qualifies.
* **End** (`end`): by the staff member, by signing out, or noticed once it is over;
  `impersonation.ended` says how.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import access, mfa
from services.identity import repository as repo
from services.identity.models import Impersonation, UserSession
from services.identity.sessions import IMPERSONATION_ENDED, end_sessions
from services.identity.users import principal_for_user
from services.kit import ids
from services.kit.crypto import new_token, open_compact, seal_compact, sha256_hex
from services.kit.errors import Forbidden, NotFound, ValidationFailed
from services.kit.types import utcnow
from tenants import audit
from tenants.models import Agency, Client, User, UserStatus
from tenants.principal import Principal
from tenants.roles import AGENCY_ROLES, CLIENT_ROLES, Permission, Role, permissions_for
from tenants.scoping import Widening, agency_wide

DURATIONS = (15, 30, 60)  # minutes
DEFAULT_MINUTES = 30
MAX_MINUTES = max(DURATIONS)
REASON_MIN, REASON_MAX = 5, 500
# Never held while impersonating, whatever the two people's roles.
NEVER = frozenset({Permission.CLIENTS_IMPERSONATE, Permission.APIKEYS_MANAGE})
REFUSED = (
    "This is not possible while you view the portal as someone else. End the view (the "
    "banner at the top of the page) and try again as yourself."
)
REFUSED_SOLUTIONS = (
    "Solutions cannot be opened while you view the portal as someone else: signing in to an "
    "app would hand it this person's identity. End the view first."
)

# How an impersonation ended (`impersonation.ended` data.how).
ENDED = "ended"  # the staff member pressed "End now"
EXPIRED = "expired"  # its time was up (noticed at the next request)
SIGNED_OUT = "signed_out"  # signed out while viewing
REVOKED = "revoked"  # the session was revoked, or the staff member or person stopped qualifying

_RETURN_PURPOSE = "impersonation-return"


def is_impersonating(principal: Principal | None) -> bool:
    return principal is not None and bool(principal.extra.get(audit.IMPERSONATOR_ID))


def impersonation_id_of(principal: Principal) -> uuid.UUID | None:
    return ids.decode("imp", principal.extra.get(audit.IMPERSONATION_ID, ""))


@dataclass
class Started:
    impersonation: Impersonation
    token: str  # the new session's cookie value
    target: User
    role: Role


# ---- start --------------------------------------------------------------------------------------


async def _target_roles(
    session: AsyncSession, agency_id: uuid.UUID, user_id: uuid.UUID, staff: Principal
) -> tuple[User | None, list[tuple[Role, uuid.UUID | None]]]:
    """The person and ALL their roles: agency-wide, because a staff member's client scope
    hides agency memberships (a person holding an agency role is never impersonated)."""
    async with agency_wide(session, Widening.ROLES_OF_PERSON):
        user = await repo.user(session, user_id)
        roles = [(Role(m.role), m.client_id) for m in await repo.memberships_of(session, user_id)]
    return user, roles


def check_request(reason: str, minutes: int | None) -> tuple[str, int]:
    """The reason (trimmed, 5 to 500 characters) and a duration of 15, 30 or 60 minutes."""
    reason = reason.strip()
    if len(reason) < REASON_MIN:
        raise ValidationFailed(
            f"give a reason of at least {REASON_MIN} characters: the client can read it",
            field="reason",
        )
    if len(reason) > REASON_MAX:
        raise ValidationFailed(f"keep the reason under {REASON_MAX} characters", field="reason")
    if minutes not in DURATIONS:
        raise ValidationFailed(
            f"choose {', '.join(map(str, DURATIONS[:-1]))} or {MAX_MINUTES} minutes",
            field="minutes",
        )
    return reason, minutes


async def start(
    session: AsyncSession,
    agency: Agency,
    staff: Principal,
    *,
    client_id: uuid.UUID,
    user_id: uuid.UUID | None,
    reason: str,
    minutes: int | None,
    ip: str | None,
    user_agent: str | None,
) -> Started:
    """Open a view of `client_id`'s portal as `user_id`. The caller has found the client in
    the staff member's scope (404 otherwise)."""
    if (
        staff.kind != "user"
        or staff.user_id is None
        or is_impersonating(staff)
        or not staff.can(Permission.CLIENTS_IMPERSONATE)
    ):
        raise Forbidden(f"this needs the {Permission.CLIENTS_IMPERSONATE.value} permission")
    if not staff.tenant().allows_client(client_id):
        raise NotFound("no such client")
    reason, minutes = check_request(reason, minutes)
    not_theirs = ValidationFailed("choose one of this client's people", field="user_id")
    if user_id is None or user_id == staff.user_id:
        raise not_theirs
    target, roles = await _target_roles(session, agency.id, user_id, staff)
    role_here = next((r for r, c in roles if c == client_id and r in CLIENT_ROLES), None)
    if (
        target is None
        or target.status != UserStatus.ACTIVE
        or role_here is None
        or any(r in AGENCY_ROLES for r, _ in roles)
    ):
        raise not_theirs
    # Viewing as someone is acting on them: the one rule of who may (assigned staff: only
    # people whose every role lies on their own clients).
    access.decide(staff, access.Standing(target.id, frozenset(roles)))
    me = await repo.user(session, staff.user_id)
    now = utcnow()
    expires = now + timedelta(minutes=minutes)
    imp = Impersonation(
        agency_id=agency.id,
        actor_user_id=staff.user_id,
        client_id=client_id,
        user_id=target.id,
        reason=reason,
        started_at=now,
        expires_at=expires,
    )
    session.add(imp)
    token = new_token(32)
    row = UserSession(
        agency_id=agency.id,
        user_id=target.id,
        token_hash=sha256_hex(token),
        created_at=now,
        last_seen_at=now,
        expires_at=expires,
        ip=ip,
        user_agent=(user_agent or "")[:400] or None,
        impersonation_id=imp.id,
    )
    session.add(row)
    imp.session_id = row.id
    audit.record(
        session,
        "impersonation.started",
        agency_id=agency.id,
        target_type="impersonation",
        target_id=imp.id,
        client_id=client_id,
        data={
            "user_id": ids.encode("usr", target.id),
            "user_name": target.name or target.email,
            "user_email": target.email,
            "role": role_here.value,
            "staff_name": (me.name or me.email) if me else staff.label,
            "reason": reason,
            "minutes": minutes,
            "expires_at": expires,
        },
    )
    await session.flush()
    return Started(imp, token, target, role_here)


# ---- every request ------------------------------------------------------------------------------


async def by_id(session: AsyncSession, impersonation_id: uuid.UUID) -> Impersonation | None:
    stmt = select(Impersonation).where(Impersonation.id == impersonation_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def session_row(session: AsyncSession, token: str) -> UserSession | None:
    """The browser session behind a cookie value (the session must be in the agency)."""
    return await repo.session_by_hash(session, sha256_hex(token)) if token else None


async def principal_of(
    session: AsyncSession, agency: Agency, row: UserSession, user: User
) -> Principal | None:
    """The principal of an impersonation session, or None once it must stop working. Runs
    agency-wide (inside `signin.resolve_browser_session`), before any scoping."""
    assert row.impersonation_id is not None
    imp = await by_id(session, row.impersonation_id)
    now = utcnow()
    if (
        imp is None
        or imp.ended_at is not None
        or imp.expires_at <= now
        or imp.user_id != user.id
        or imp.session_id != row.id
    ):
        return None
    staff_user = await repo.user(session, imp.actor_user_id)
    if staff_user is None or staff_user.status != UserStatus.ACTIVE:
        return None
    staff = await principal_for_user(session, staff_user, agency)
    if not staff.can(Permission.CLIENTS_IMPERSONATE) or not staff.tenant().allows_client(
        imp.client_id
    ):
        return None  # the staff member lost the permission or the client since
    if agency.mfa_required and not await mfa.has_second_factor(session, staff_user.id):
        return None
    roles = [(Role(m.role), m.client_id) for m in await repo.memberships_of(session, user.id)]
    role = next((r for r, c in roles if c == imp.client_id and r in CLIENT_ROLES), None)
    if role is None or any(r in AGENCY_ROLES for r, _ in roles):
        return None  # the person left the client, or became agency staff
    try:
        access.decide(staff, access.Standing(user.id, frozenset(roles)))
    except Forbidden:
        return None  # e.g. the person now also works for a client that is not the staff's
    return Principal(
        kind="user",
        agency_id=agency.id,
        agency_slug=agency.slug,
        role=role,
        # Exactly the person's, for this one client, and never more than the staff member's.
        permissions=(permissions_for({role}) & staff.permissions) - NEVER,
        client_ids=frozenset({imp.client_id}),
        user_id=user.id,
        label=user.email,
        session_id=row.id,
        extra={
            audit.IMPERSONATION_ID: ids.encode("imp", imp.id),
            audit.IMPERSONATOR_ID: str(staff_user.id),
            audit.IMPERSONATOR_LABEL: staff_user.email,
            audit.IMPERSONATING: ids.encode("usr", user.id),
        },
    )


# ---- end ----------------------------------------------------------------------------------------


def why_over(imp: Impersonation) -> str:
    return EXPIRED if imp.expires_at <= utcnow() else REVOKED


async def end(session: AsyncSession, imp: Impersonation, *, how: str) -> bool:
    """End an impersonation (once): its session is revoked and `impersonation.ended` is
    audited on the client. Flushed at once, while the session is still in a scope that
    includes the client. Returns False when it had already ended."""
    if imp.ended_at is not None:
        return False
    now = utcnow()
    imp.ended_at = min(now, imp.expires_at)
    if imp.session_id is not None:
        stmt = select(UserSession).where(UserSession.id == imp.session_id)
        row = (await session.execute(stmt)).scalar_one_or_none()
        if row is not None:
            await end_sessions(session, [row], reason=IMPERSONATION_ENDED)
    audit.record(
        session,
        "impersonation.ended",
        agency_id=imp.agency_id,
        target_type="impersonation",
        target_id=imp.id,
        client_id=imp.client_id,
        data={
            "user_id": ids.encode("usr", imp.user_id),
            "how": how,
            "started_at": imp.started_at,
            "ended_at": imp.ended_at,
            "minutes_used": max(1, round((imp.ended_at - imp.started_at).total_seconds() / 60)),
        },
    )
    await session.flush()
    return True


async def end_current(session: AsyncSession, principal: Principal, *, how: str) -> None:
    """End the impersonation an impersonation principal is in (sign-out, "End now")."""
    imp_id = impersonation_id_of(principal)
    imp = await by_id(session, imp_id) if imp_id else None
    if imp is not None:
        await end(session, imp, how=how)


async def client_name(session: AsyncSession, client_id: uuid.UUID) -> str:
    stmt = select(Client.display_name).where(Client.id == client_id)
    return (await session.execute(stmt)).scalar_one_or_none() or ""


# ---- the staff member's own session, kept while viewing -----------------------------------------


def _return_context(agency_id: uuid.UUID, impersonation_id: uuid.UUID) -> str:
    return f"{agency_id}|{impersonation_id}"


def seal_return(agency_id: uuid.UUID, impersonation_id: uuid.UUID, staff_token: str) -> str:
    """The staff member's session token, sealed (AES-256-GCM) to this one impersonation: it
    opens for nothing else, and only the portal's End / expiry routes open it."""
    return seal_compact(
        staff_token.encode(),
        purpose=_RETURN_PURPOSE,
        context=_return_context(agency_id, impersonation_id),
    )


def open_return(agency_id: uuid.UUID, impersonation_id: uuid.UUID, blob: str) -> str | None:
    raw = open_compact(
        blob,
        purpose=_RETURN_PURPOSE,
        context=_return_context(agency_id, impersonation_id),
        max_length=400,
    )
    return raw.decode() if raw is not None else None
