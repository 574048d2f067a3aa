"""The portal side of audited impersonation ("View as a client user"); the use cases are in
`services.identity.impersonation`.

Cookies. Starting swaps the browser's `sb_session` for the new session of the person being
viewed, and keeps the staff member's own session token in `sb_imp_return`: sealed
(AES-256-GCM, bound to the agency and to this one impersonation), HttpOnly, SameSite=Lax,
scoped to the agency's portal like the session cookie. The staff session stays valid
meanwhile, but no request can use it: the browser only presents the impersonation session.
"End now" (`POST /impersonation/end`) and the end of the time (`GET /impersonation/over`,
where every request of an impersonation session that stopped working is sent; with no such
session behind the cookie it changes nothing, so a cross-site link cannot sign anyone out) end the
impersonation, open the sealed token, check that it is still a live session of the same
staff member, and put it back; otherwise the browser goes to the sign-in page. Signing out
while viewing ends the impersonation and signs the staff session out as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from services.identity import impersonation
from services.identity import service as identity
from services.identity.models import Impersonation
from services.kit import ids
from services.kit.errors import Forbidden
from services.kit.types import utcnow
from services.portal import repository as repo
from services.portal import security
from services.portal.labels import ROLE_LABELS
from services.portal.routing import LoginRequired
from services.settings import get_settings
from tenants.models import Agency
from tenants.principal import Principal
from tenants.roles import CLIENT_ROLES, Permission, Role
from tenants.scoping import Widening, current_tenant, widen_to_agency

RETURN_COOKIE = "sb_imp_return"
ACCESS_LIST_SIZE = 20
VIEW_AS_LIMIT = 200


class ImpersonationOver(LoginRequired):
    """The browser's impersonation session stopped working (time up, ended, revoked): every
    page sends it to `/impersonation/over`, which ends it and restores the staff member."""

    def __init__(self, slug: str) -> None:
        super().__init__(slug, None)
        self.url = f"/a/{slug}/impersonation/over"


# ---- cookies ------------------------------------------------------------------------------------


def _return_blob(request: Request) -> str:
    return request.cookies.get(RETURN_COOKIE, "")[:400]


def _set_return(response: Response, slug: str, value: str) -> None:
    response.set_cookie(
        RETURN_COOKIE,
        value,
        path=security.cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )


def _clear_return(response: Response, slug: str) -> None:
    response.delete_cookie(
        RETURN_COOKIE,
        path=security.cookie_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )


# ---- the banner ---------------------------------------------------------------------------------


@dataclass
class Banner:
    client_id: str
    client_name: str
    reason: str
    expires_at: datetime
    impersonator: str


async def banner(session: AsyncSession, principal: Principal) -> Banner | None:
    imp_id = impersonation.impersonation_id_of(principal)
    imp = await impersonation.by_id(session, imp_id) if imp_id else None
    if imp is None:
        return None
    return Banner(
        client_id=ids.encode("cli", imp.client_id),
        client_name=await impersonation.client_name(session, imp.client_id),
        reason=imp.reason,
        expires_at=imp.expires_at,
        impersonator=principal.extra.get("impersonator_label", ""),
    )


# ---- the client record page: the start form, and the access list --------------------------------


@dataclass
class Candidate:
    id: str
    name: str
    email: str
    role_label: str


@dataclass
class ViewAs:
    people: list[Candidate]
    durations: tuple[int, ...] = impersonation.DURATIONS
    default_minutes: int = impersonation.DEFAULT_MINUTES
    reason_min: int = impersonation.REASON_MIN
    reason_max: int = impersonation.REASON_MAX


async def view_as(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID
) -> ViewAs | None:
    """The "View as a client user" form, for people who may start one on this client."""
    if not principal.can(Permission.CLIENTS_IMPERSONATE) or impersonation.is_impersonating(
        principal
    ):
        return None
    people = [
        Candidate(ids.encode("usr", u.id), u.name or u.email, u.email, ROLE_LABELS[Role(role)])
        for u, role in await repo.client_people(session, client_id, VIEW_AS_LIMIT)
        if u.id != principal.user_id
    ]
    return ViewAs(people)


@dataclass
class Access:
    """One "view as" of the client by the agency, as its audit events tell it."""

    staff: str
    staff_email: str
    user: str
    reason: str
    started_at: datetime
    minutes: int
    expires_at: datetime | None
    ended_at: datetime | None = None
    how: str | None = None
    minutes_used: int | None = None
    details: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.ended_at is None and (self.expires_at is None or self.expires_at > utcnow())


def _when(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


async def agency_access(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID
) -> list[Access] | None:
    """ "Access by your agency": who viewed the portal as one of the client's people, when,
    why and for how long (from the audit trail; for those who may read it)."""
    if not principal.can(Permission.AUDIT_READ):
        return None
    events = await repo.impersonation_events(session, client_id, ACCESS_LIST_SIZE * 2)
    ends = {e.target_id: e for e in events if e.action == "impersonation.ended"}
    out: list[Access] = []
    for e in events:
        if e.action != "impersonation.started":
            continue
        data = e.data or {}
        item = Access(
            staff=str(data.get("staff_name") or e.actor_label),
            staff_email=e.actor_label,
            user=str(data.get("user_name") or data.get("user_email") or "someone"),
            reason=str(data.get("reason", "")),
            started_at=e.occurred_at,
            minutes=int(data.get("minutes") or 0),
            expires_at=_when(data.get("expires_at")),
        )
        end = ends.get(e.target_id)
        if end is not None:
            item.ended_at = _when(end.data.get("ended_at")) or end.occurred_at
            item.how = str(end.data.get("how", ""))
            item.minutes_used = int(end.data.get("minutes_used") or 0) or None
        out.append(item)
    return out[:ACCESS_LIST_SIZE]


# ---- start, end, over ---------------------------------------------------------------------------


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def start(
    request: Request,
    agency: Agency,
    staff: Principal,
    session: AsyncSession,
    client_id: uuid.UUID,
    *,
    user_id: str,
    reason: str,
    minutes: str,
) -> Response:
    """Start viewing; raises ValidationFailed (field user_id, reason or minutes)."""
    try:
        duration: int | None = int(minutes) if minutes else impersonation.DEFAULT_MINUTES
    except ValueError:
        duration = None
    started = await impersonation.start(
        session,
        agency,
        staff,
        client_id=client_id,
        user_id=ids.decode("usr", user_id) if user_id else None,
        reason=reason,
        minutes=duration,
        ip=_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    staff_token = security.session_cookie(request)
    imp = started.impersonation
    base = f"/a/{agency.slug}"
    landing = f"{base}/apps" if started.role in CLIENT_ROLES else f"{base}/clients"
    response = security.see_other(landing, agency.slug)
    security.set_session_cookie(response, agency.slug, started.token)
    _set_return(response, agency.slug, impersonation.seal_return(agency.id, imp.id, staff_token))
    return response


async def _back_to_staff(
    request: Request, agency: Agency, session: AsyncSession, imp: Impersonation, flash: str
) -> Response:
    """After the end: the staff member's own session again if it still works, else sign-in."""
    staff_token = impersonation.open_return(agency.id, imp.id, _return_blob(request))
    if current_tenant(session) is not None:
        await widen_to_agency(session, Widening.BACK_FROM_IMPERSONATION)
    staff = (
        await identity.resolve_browser_session(session, agency, staff_token)
        if staff_token
        else None
    )
    if staff is not None and staff.user_id == imp.actor_user_id and staff_token:
        url = f"/a/{agency.slug}/clients"
        if staff.can(Permission.CLIENTS_READ) and staff.tenant().allows_client(imp.client_id):
            url += "/" + ids.encode("cli", imp.client_id)
        response = security.see_other(url, agency.slug, flash)
        security.set_session_cookie(response, agency.slug, staff_token)
    else:
        signin = f"/a/{agency.slug}/login"
        response = security.see_other(signin, agency.slug, "impersonation_signin")
        security.clear_session_cookie(response, agency.slug)
    _clear_return(response, agency.slug)
    return response


async def end(
    request: Request, agency: Agency, principal: Principal, session: AsyncSession
) -> Response:
    """ "End now": end the impersonation and go back to being oneself."""
    imp_id = impersonation.impersonation_id_of(principal)
    imp = await impersonation.by_id(session, imp_id) if imp_id else None
    if imp is None:  # not viewing as anyone
        return security.see_other(f"/a/{agency.slug}/", agency.slug)
    await impersonation.end(session, imp, how=impersonation.ENDED)
    return await _back_to_staff(request, agency, session, imp, "impersonation_ended")


async def over(request: Request, agency: Agency, session: AsyncSession) -> Response:
    """Where an impersonation session that stopped working lands: the end is recorded (time
    up, or revoked) and the staff member gets their own session back."""
    token = security.session_cookie(request)
    row = await impersonation.session_row(session, token)
    imp = (
        await impersonation.by_id(session, row.impersonation_id)
        if row and row.impersonation_id
        else None
    )
    if imp is None:
        # No view to end. A GET (a link on any site can send one) never signs out: whatever
        # session the browser holds stays, and the portal's entry page takes it from there.
        response = security.see_other(f"/a/{agency.slug}/", agency.slug)
        if row is not None and row.impersonation_id is not None:
            security.clear_session_cookie(response, agency.slug)  # dead, its view gone
        if _return_blob(request):
            _clear_return(response, agency.slug)
        return response
    if await identity.resolve_browser_session(session, agency, token) is not None:
        return security.see_other(f"/a/{agency.slug}/", agency.slug)  # still running: nothing to do
    how = impersonation.why_over(imp)
    await impersonation.end(session, imp, how=how)
    flash = "impersonation_expired" if how == impersonation.EXPIRED else "impersonation_over"
    return await _back_to_staff(request, agency, session, imp, flash)


async def stale(session: AsyncSession, token: str) -> bool:
    """Is this cookie an impersonation session (that no longer resolves)?"""
    row = await impersonation.session_row(session, token)
    return row is not None and row.impersonation_id is not None


async def sign_out_staff(request: Request, agency: Agency, session: AsyncSession) -> None:
    """Signing out while viewing signs the staff member's own session out too."""
    token = security.session_cookie(request)
    row = await impersonation.session_row(session, token)
    if row is None or row.impersonation_id is None:
        return
    staff_token = impersonation.open_return(agency.id, row.impersonation_id, _return_blob(request))
    staff_row = await impersonation.session_row(session, staff_token or "")
    imp = await impersonation.by_id(session, row.impersonation_id)
    if staff_row is not None and imp is not None and staff_row.user_id == imp.actor_user_id:
        await identity.end_sessions(session, [staff_row], reason=identity.SIGNED_OUT)


def clear_return(response: Response, slug: str) -> None:
    _clear_return(response, slug)


async def refuse_for_cookie(request: Request, session: AsyncSession) -> None:
    """Public pages that act on an account (accepting an invitation, setting a password from
    a reset link) are refused while this browser is viewing the portal as someone else."""
    row = await impersonation.session_row(session, security.session_cookie(request))
    if (
        row is not None
        and row.impersonation_id is not None
        and row.revoked_at is None
        and row.expires_at > utcnow()
    ):
        raise Forbidden(impersonation.REFUSED)
