"""The server-rendered portal: the agency console and the client portal, under /a/{slug}/.

HTTP only: every handler reads the form, calls a service and renders a template. Access is
declared with the permission aliases of `services.portal.auth`; every form is CSRF-checked;
errors become branded pages (see `services.portal.routing`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.agencies import service as agencies
from services.agencies.schemas import Branding
from services.identity import impersonation, mfa, passkeys, upstream
from services.identity import repository as identity_repo
from services.identity import service as identity
from services.identity.schemas import InvitationCreate
from services.kit import ids
from services.kit import schemas as kit_schemas
from services.kit.errors import (
    Conflict,
    Forbidden,
    InvalidCursor,
    InvalidTransition,
    NotFound,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.portal import forms, security
from services.portal import impersonation as impersonation_views
from services.portal import passkeys as passkey_routes
from services.portal import service as portal
from services.portal.auth import (
    AgencyManage,
    ClientsCreate,
    ClientsImpersonate,
    ClientsLifecycle,
    ClientsRead,
    ClientsUpdate,
    CsrfChecked,
    MaybeSignedIn,
    NotImpersonating,
    PortalAgency,
    PublicAgency,
    SignedIn,
    UsersInvite,
    UsersRead,
)
from services.portal.rendering import page
from services.portal.routing import FormRejected, PageGone, PortalRoute, install_not_found_page
from services.records import service as records
from services.records.repository import ClientSort
from services.settings import get_settings
from tenants.models import LifecycleStage
from tenants.principal import Principal
from tenants.roles import CLIENT_ROLES, Permission, Role

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

SORTS = {"name": ClientSort.NAME, "newest": ClientSort.NEWEST, "oldest": ClientSort.OLDEST}
Text = Annotated[kit_schemas.Text, Query(max_length=200)]


def _client_id(public_id: str) -> Any:
    return path_id("cli", public_id, "client")


# ---- entry, sign-in, sign-out -------------------------------------------------------------------


@router.get("", name="portal_root_bare")
@router.get("/", name="portal_root")
async def root(agency: PortalAgency, principal: MaybeSignedIn) -> Response:
    if principal is None:
        return security.see_other(f"/a/{agency.slug}/login")
    return security.see_other(portal.landing(principal, f"/a/{agency.slug}"))


@router.get("/login", name="portal_login_page")
async def login_page(
    request: Request,
    agency: PortalAgency,
    principal: MaybeSignedIn,
    session: DBSession,
    next: Text = "",
    reauth: Text = "",
) -> Response:
    target = security.safe_next(next, agency.slug)
    if principal is not None and reauth != "1":
        return security.see_other(target or portal.landing(principal, f"/a/{agency.slug}"))
    # reauth=1 (an app asked for a fresh sign-in, OpenID Connect prompt=login): the form, and
    # the session this browser holds stays until the new sign-in succeeds and replaces it.
    return page(
        request,
        "login.html",
        {
            "email": "",
            "next": target or "",
            "error": None,
            "reauth": principal is not None,
            "upstream": await upstream.enabled_providers(session, agency),
        },
    )


@router.post("/login", name="portal_login", dependencies=[CsrfChecked])
async def login(request: Request, agency: PublicAgency, session: DBSession) -> Response:
    form = await request.form()
    email = forms._text(form, "email")
    password = form.get("password")
    target = security.safe_next(form.get("next"), agency.slug)
    error = None
    status = 401
    if not email or not isinstance(password, str) or not password:
        error = "Enter your e-mail address and your password."
    else:
        try:
            user, token = await identity.sign_in(
                session,
                agency,
                email=email[:320],
                password=password[:1024],
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
                device=security.device_cookie(request),
            )
        except Unauthorized:
            error = "That e-mail and password do not match an account. Check both and try again."
        except TooManyAttempts as exc:
            error = f"Too many failed sign-ins. For your security, {exc.detail.split('; ')[-1]}."
            status = 429
    if error is not None:
        # Returned, not raised: the failed attempt's audit event and counters are committed.
        return page(
            request,
            "login.html",
            {
                "email": email,
                "next": target or "",
                "error": error,
                "upstream": await upstream.enabled_providers(session, agency),
            },
            status=status,
        )
    return await _after_sign_in(
        session, agency, user, token, target, previous=security.session_cookie(request)
    )


async def _after_sign_in(
    session: AsyncSession,
    agency: Any,
    user: Any,
    token: str,
    target: str | None,
    flash: str | None = None,
    *,
    previous: str = "",
) -> Response:
    """Set the session cookie and go on: to the code prompt when a second factor is owed,
    else to where the person was going (and the browser is a known device from now on). The
    session the browser held before (`previous`) ends: the new sign-in replaces it."""
    slug = agency.slug
    if previous and previous != token:
        await identity.end_session_by_token(session, agency, previous, reason=identity.REPLACED)
    if await mfa.has_second_factor(session, user.id):
        response = security.see_other(
            f"/a/{slug}/login/verify" + (f"?next={quote(target, safe='/')}" if target else "")
        )
    else:
        principal = await identity.principal_for_user(session, user, agency)
        destination = target or portal.landing(principal, f"/a/{slug}")
        response = security.see_other(destination, slug, flash)
        security.set_device_cookie(response, slug, identity.issue_device_token(agency.id, user.id))
    security.set_session_cookie(response, slug, token)
    return response


@router.get("/login/verify", name="portal_mfa_page")
async def mfa_page(
    request: Request, agency: PublicAgency, session: DBSession, next: Text = ""
) -> Response:
    token = security.session_cookie(request)
    pending = await mfa.pending_sign_in(session, agency, token) if token else None
    if pending is None:
        return security.see_other(f"/a/{agency.slug}/login")
    target = security.safe_next(next, agency.slug) or ""
    factors = await mfa.second_factors(session, pending[1].id)
    return page(request, "verify.html", {"next": target, "error": None, "factors": factors})


@router.post("/login/verify", name="portal_mfa", dependencies=[CsrfChecked])
async def mfa_verify(request: Request, agency: PublicAgency, session: DBSession) -> Response:
    form = await request.form()
    target = security.safe_next(form.get("next"), agency.slug)
    token = security.session_cookie(request) or ""
    code = forms._text(form, "code")[:40]
    try:
        user, fresh = await mfa.complete_sign_in(
            session, agency, token, code, ip=request.client.host if request.client else None
        )
    except NotFound:
        return security.see_other(f"/a/{agency.slug}/login")
    except (Unauthorized, TooManyAttempts) as exc:
        throttled = isinstance(exc, TooManyAttempts)
        pending = await mfa.pending_sign_in(session, agency, token)
        return page(
            request,
            "verify.html",
            {
                "next": target or "",
                "error": f"Too many wrong codes. {exc.detail.split('; ')[-1].capitalize()}."
                if throttled
                else "That code is not right. Try the current one.",
                "factors": await mfa.second_factors(session, pending[1].id) if pending else set(),
            },
            status=429 if throttled else 401,
        )
    principal = await identity.principal_for_user(session, user, agency)
    response = security.see_other(target or portal.landing(principal, f"/a/{agency.slug}"))
    security.set_session_cookie(response, agency.slug, fresh)  # a new session id
    security.set_device_cookie(
        response, agency.slug, identity.issue_device_token(agency.id, user.id)
    )
    return response


# ---- the signed-in person's own account ---------------------------------------------------------


async def _account_page(
    request: Request,
    session: AsyncSession,
    agency: Any,
    principal: Principal,
    *,
    recovery_codes: list[str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    me = await identity_repo.user(session, principal.user_id)
    assert me is not None
    enrolled = await mfa.has_totp(session, me.id)
    viewing_as = impersonation.is_impersonating(principal)
    enrolment = None if enrolled or viewing_as else await mfa.pending_enrolment(session, agency, me)
    return page(
        request,
        "account.html",
        {
            "nav": "account",
            "me": me,
            "enrolled": enrolled,
            "enrolment": enrolment,
            "passkeys": await passkeys.passkeys_of(session, me.id),
            "recovery_codes": recovery_codes,
            "recovery_left": await mfa.recovery_codes_left(session, me.id),
            "error": error,
            "setup_required": principal.extra.get("second_factor") == "setup_required"
            and not recovery_codes,
            "viewing_as": viewing_as,
        },
        status=status,
    )


@router.get("/account", name="portal_account")
async def account(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    return await _account_page(request, session, agency, principal)


@router.post(
    "/account/mfa/start", name="portal_mfa_start", dependencies=[CsrfChecked, NotImpersonating]
)
async def mfa_start(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await identity_repo.user(session, principal.user_id)
    assert me is not None
    try:
        await mfa.start_enrolment(session, agency, me)
    except Conflict as exc:
        return await _account_page(
            request, session, agency, principal, error=exc.detail, status=409
        )
    return security.see_other(f"/a/{agency.slug}/account")


@router.post(
    "/account/mfa/confirm", name="portal_mfa_confirm", dependencies=[CsrfChecked, NotImpersonating]
)
async def mfa_confirm(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await identity_repo.user(session, principal.user_id)
    assert me is not None
    code = forms._text(await request.form(), "code")[:40]
    try:
        codes = await mfa.confirm_enrolment(session, agency, me, code)
    except (ValidationFailed, NotFound) as exc:
        return await _account_page(
            request, session, agency, principal, error=exc.detail, status=422
        )
    return await _account_page(request, session, agency, principal, recovery_codes=codes)


@router.post(
    "/account/mfa/remove", name="portal_mfa_remove", dependencies=[CsrfChecked, NotImpersonating]
)
async def mfa_remove(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await identity_repo.user(session, principal.user_id)
    assert me is not None
    code = forms._text(await request.form(), "code")[:40]
    try:
        await mfa.remove(session, agency, me, code)
    except ValidationFailed as exc:
        raise FormRejected(
            await _account_page(request, session, agency, principal, error=exc.detail, status=422)
        ) from None
    return security.see_other(f"/a/{agency.slug}/account")


@router.post(
    "/account/sessions/revoke",
    name="portal_sign_out_everywhere",
    dependencies=[CsrfChecked, NotImpersonating],
)
async def sign_out_everywhere(
    agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    assert principal.user_id is not None
    await identity.revoke_user_sessions(session, principal.user_id)
    response = security.see_other(f"/a/{agency.slug}/login", agency.slug, "signed_out_everywhere")
    security.clear_session_cookie(response, agency.slug)
    return response


@router.post("/logout", name="portal_logout", dependencies=[CsrfChecked])
async def logout(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    if principal is not None:
        if impersonation.is_impersonating(principal):
            await impersonation_views.sign_out_staff(request, agency, session)
        await identity.sign_out(session, principal)
    response = security.see_other(f"/a/{agency.slug}/login", agency.slug, "signed_out")
    security.clear_session_cookie(response, agency.slug)
    if impersonation_views.RETURN_COOKIE in request.cookies:
        impersonation_views.clear_return(response, agency.slug)
    return response


# ---- clients ------------------------------------------------------------------------------------


@router.get("/clients", name="portal_clients")
async def clients_list(
    request: Request,
    agency: PortalAgency,
    principal: ClientsRead,
    session: DBSession,
    q: Text = "",
    stage: Text = "",
    sort: Text = "name",
    cursor: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    try:
        stage_filter = LifecycleStage(stage) if stage else None
    except ValueError:
        stage_filter = None
    sort_key = sort if sort in SORTS else "name"
    try:
        listing = await portal.client_list(
            session,
            q=q.strip() or None,
            stage=stage_filter,
            sort=SORTS[sort_key],
            cursor=cursor or None,
        )
    except InvalidCursor:  # a tampered or stale cursor: start from the first page
        listing = await portal.client_list(
            session, q=q.strip() or None, stage=stage_filter, sort=SORTS[sort_key], cursor=None
        )
        cursor = ""
    context = {
        "nav": "clients",
        "listing": listing,
        "q": q.strip(),
        "stage": stage_filter.value if stage_filter else "",
        "sort": sort_key,
        "cursor": cursor,
    }
    partial = request.headers.get("hx-request") and request.headers.get("hx-target") == "results"
    response = page(request, "clients/_results.html" if partial else "clients/list.html", context)
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


def _client_form(
    request: Request,
    *,
    principal: Principal,
    values: dict[str, Any],
    errors: dict[str, str],
    staff: list[portal.Person],
    client: portal.ClientDetail | None = None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "clients/form.html",
        {
            "nav": "clients",
            "values": values,
            "errors": errors,
            "staff_choices": staff,
            "days": forms.DAYS,
            "detail": client,
            "can_assign": principal.can(Permission.CLIENTS_ASSIGN),
        },
        status=status,
    )


@router.get("/clients/new", name="portal_client_new")
async def client_new(request: Request, principal: ClientsCreate, session: DBSession) -> Response:
    values = forms.blank_client_values()
    return _client_form(
        request,
        principal=principal,
        values=values,
        errors={},
        staff=await portal.staff_choices(session, principal),
    )


@router.post("/clients", name="portal_client_create", dependencies=[CsrfChecked])
async def client_create(
    request: Request, agency: PortalAgency, principal: ClientsCreate, session: DBSession
) -> Response:
    values = forms.client_values(await request.form())
    can_assign = principal.can(Permission.CLIENTS_ASSIGN)
    try:
        view = await records.create(
            session, principal, forms.to_client_create(values, can_assign=can_assign)
        )
    except forms.FormErrors as exc:
        errors = exc.errors
    except ValidationFailed as exc:
        errors = forms.error_of(exc)
    else:
        return security.see_other(
            f"/a/{agency.slug}/clients/{ids.encode('cli', view.client.id)}",
            agency.slug,
            "client_created",
        )
    staff = await portal.staff_choices(session, principal)
    raise FormRejected(
        _client_form(
            request, principal=principal, values=values, errors=errors, staff=staff, status=422
        )
    )


@router.get("/clients/{client_id}", name="portal_client")
async def client_detail(
    request: Request, client_id: str, principal: ClientsRead, session: DBSession
) -> Response:
    detail = await portal.client_detail(session, principal, _client_id(client_id))
    return page(request, "clients/detail.html", {"nav": "clients", "detail": detail, "error": None})


@router.get("/clients/{client_id}/edit", name="portal_client_edit")
async def client_edit(
    request: Request, client_id: str, principal: ClientsUpdate, session: DBSession
) -> Response:
    detail = await portal.client_detail(session, principal, _client_id(client_id))
    values = forms.client_values_of(detail.client, [p.id for p in detail.staff])
    return _client_form(
        request,
        principal=principal,
        values=values,
        errors={},
        client=detail,
        staff=await portal.staff_choices(session, principal),
    )


@router.post("/clients/{client_id}/edit", name="portal_client_update", dependencies=[CsrfChecked])
async def client_update(
    request: Request,
    agency: PortalAgency,
    client_id: str,
    principal: ClientsUpdate,
    session: DBSession,
) -> Response:
    cid = _client_id(client_id)
    detail = await portal.client_detail(session, principal, cid)  # 404 before anything else
    values = forms.client_values(await request.form())
    can_assign = principal.can(Permission.CLIENTS_ASSIGN)
    try:
        await records.update(
            session, principal, cid, forms.to_client_update(values, can_assign=can_assign)
        )
    except forms.FormErrors as exc:
        errors = exc.errors
    except ValidationFailed as exc:
        errors = forms.error_of(exc)
    else:
        return security.see_other(
            f"/a/{agency.slug}/clients/{detail.id}", agency.slug, "client_updated"
        )
    staff = await portal.staff_choices(session, principal)
    raise FormRejected(
        _client_form(
            request,
            principal=principal,
            values=values,
            errors=errors,
            client=detail,
            staff=staff,
            status=422,
        )
    )


@router.post(
    "/clients/{client_id}/lifecycle", name="portal_client_lifecycle", dependencies=[CsrfChecked]
)
async def client_lifecycle(
    request: Request,
    agency: PortalAgency,
    client_id: str,
    principal: ClientsLifecycle,
    session: DBSession,
) -> Response:
    cid = _client_id(client_id)
    form = await request.form()
    reason = forms._text(form, "reason")[:500] or None
    try:
        stage = LifecycleStage(forms._text(form, "stage"))
    except ValueError:
        stage = None
    error = None
    if stage is None:
        await records.get(session, cid)  # an unknown client stays a 404
        error, status = "Choose one of the stages offered.", 422
    else:
        try:
            await records.change_lifecycle(session, cid, stage, reason)
        except InvalidTransition as exc:
            error, status = forms.error_of(exc)["stage"], 409
    if error is None:
        return security.see_other(
            f"/a/{agency.slug}/clients/{client_id}", agency.slug, "lifecycle_changed"
        )
    detail = await portal.client_detail(session, principal, cid)
    raise FormRejected(
        page(
            request,
            "clients/detail.html",
            {"nav": "clients", "detail": detail, "error": error},
            status=status,
        )
    )


# ---- "View as a client user" (audited impersonation; services/portal/impersonation.py) ------


@router.post(
    "/clients/{client_id}/impersonate", name="portal_impersonate", dependencies=[CsrfChecked]
)
async def impersonate(
    request: Request,
    agency: PortalAgency,
    client_id: str,
    principal: ClientsImpersonate,
    session: DBSession,
) -> Response:
    cid = _client_id(client_id)
    detail = await portal.client_detail(session, principal, cid)  # 404 before anything else
    form = await request.form()
    values = {k: forms._text(form, k)[:600] for k in ("user_id", "reason", "minutes")}
    try:
        return await impersonation_views.start(request, agency, principal, session, cid, **values)
    except ValidationFailed as exc:
        errors = forms.error_of(exc, "reason")
    raise FormRejected(
        page(
            request,
            "clients/detail.html",
            {
                "nav": "clients",
                "detail": detail,
                "error": None,
                "view_as_values": values,
                "view_as_errors": errors,
            },
            status=422,
        )
    )


@router.post("/impersonation/end", name="portal_impersonation_end", dependencies=[CsrfChecked])
async def impersonation_end(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    return await impersonation_views.end(request, agency, principal, session)


@router.get("/impersonation/over", name="portal_impersonation_over")
async def impersonation_over(
    request: Request, agency: PublicAgency, session: DBSession
) -> Response:
    return await impersonation_views.over(request, agency, session)


# ---- team and invitations -----------------------------------------------------------------------


async def _team_page(
    request: Request,
    principal: Principal,
    session: DBSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    roles = portal.grantable_roles(principal)
    clients = await portal.client_choices(session) if any(r in CLIENT_ROLES for r in roles) else []
    return page(
        request,
        "team.html",
        {
            "nav": "team",
            "team": await portal.team(session, principal),
            "roles": roles,
            "client_roles": [r.value for r in roles if r in CLIENT_ROLES],
            "clients": clients,
            "values": values or {"email": "", "name": "", "role": "", "client_id": ""},
            "errors": errors or {},
        },
        status=status,
    )


@router.get("/team", name="portal_team")
async def team(request: Request, principal: UsersRead, session: DBSession) -> Response:
    return await _team_page(request, principal, session)


@router.post("/team/invitations", name="portal_invite", dependencies=[CsrfChecked])
async def invite(
    request: Request, agency: PortalAgency, principal: UsersInvite, session: DBSession
) -> Response:
    form = await request.form()
    values = {k: forms._text(form, k) for k in ("email", "name", "role", "client_id")}
    errors: dict[str, str] = {}
    try:
        role = Role(values["role"])
    except ValueError:
        role = None
        errors["role"] = "Choose a role."
    client_uuid = None
    if role in CLIENT_ROLES:
        client_uuid = ids.decode("cli", values["client_id"]) if values["client_id"] else None
        if client_uuid is None:
            errors["client_id"] = "Choose the client this person will work with."
    try:
        data = forms.validate(
            InvitationCreate,
            {
                "email": values["email"],
                "name": values["name"],
                "role": values["role"] or None,
            },
        )
    except forms.FormErrors as exc:
        errors = {**exc.errors, **errors}
    if not errors and role is not None:
        try:
            await identity.invite(
                session,
                principal,
                email=str(data.email),
                name=data.name,
                role=role,
                client_id=client_uuid,
            )
        except (ValidationFailed, Conflict) as exc:
            errors = forms.error_of(exc, "email")
        except Forbidden as exc:
            errors = forms.error_of(exc, "role")
        except NotFound:
            errors = {"client_id": "Choose the client this person will work with."}
        else:
            return security.see_other(f"/a/{agency.slug}/team", agency.slug, "invited")
    raise FormRejected(
        await _team_page(request, principal, session, values=values, errors=errors, status=422)
    )


@router.post(
    "/team/invitations/{invitation_id}/revoke",
    name="portal_invitation_revoke",
    dependencies=[CsrfChecked],
)
async def revoke_invitation(
    agency: PortalAgency, invitation_id: str, principal: UsersInvite, session: DBSession
) -> Response:
    await identity.revoke_invitation(
        session, principal, path_id("inv", invitation_id, "invitation")
    )
    return security.see_other(f"/a/{agency.slug}/team", agency.slug, "invitation_revoked")


def _token(token: str) -> str:
    if not (20 <= len(token) <= 64) or not token.isalnum():
        raise NotFound("no such invitation")
    return token


_INVITE_GONE = (
    "This invitation link is not valid any more: it was already used, revoked or it expired. "
    "Ask the person who invited you for a new one."
)


async def _open_invitation(session: AsyncSession, token: str) -> tuple[Any, Any]:
    try:
        inv = await identity.open_invitation(session, _token(token))
    except NotFound:
        raise PageGone(_INVITE_GONE) from None
    return inv, await portal.invitation_view(session, inv)


@router.get("/invite/{token}", name="portal_invitation")
async def invitation_page(
    request: Request, token: str, agency: PublicAgency, session: DBSession
) -> Response:
    inv, view = await _open_invitation(session, token)
    return page(
        request, "invite.html", {"invitation": view, "values": {"name": inv.name}, "errors": {}}
    )


@router.post("/invite/{token}", name="portal_invitation_accept", dependencies=[CsrfChecked])
async def accept_invitation(
    request: Request, token: str, agency: PublicAgency, session: DBSession
) -> Response:
    await impersonation_views.refuse_for_cookie(request, session)
    _, view = await _open_invitation(session, token)
    form = await request.form()
    name = forms._text(form, "name")[:200]
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    errors: dict[str, str] = {}
    ip = request.client.host if request.client else None
    agent = request.headers.get("user-agent")
    if view.has_account:
        try:
            user, cookie = await identity.sign_in(
                session,
                agency,
                email=view.email,
                password=password[:1024],
                ip=ip,
                user_agent=agent,
                device=security.device_cookie(request),
            )
        except Unauthorized:
            errors["password"] = "That is not the password of your account."  # noqa: S105
        else:
            await identity.accept_invitation(session, agency, token, name=name, password=password)
    else:
        if not name:
            errors["name"] = "Tell us your name."
        if password != form.get("password_confirm"):
            errors["password_confirm"] = "The two passwords are not the same."  # noqa: S105
        if not errors:
            try:
                await identity.accept_invitation(
                    session, agency, token, name=name, password=password
                )
            except (ValidationFailed, Conflict) as exc:
                errors = forms.error_of(exc, "password")
            else:
                user, cookie = await identity.sign_in(
                    session, agency, email=view.email, password=password, ip=ip, user_agent=agent
                )
    if errors:
        raise FormRejected(
            page(
                request,
                "invite.html",
                {"invitation": view, "values": {"name": name}, "errors": errors},
                status=422,
            )
        )
    return await _after_sign_in(
        session, agency, user, cookie, None, "welcome", previous=security.session_cookie(request)
    )


# ---- password reset ------------------------------------------------------------------------------

_RESET_GONE = (
    "This password-reset link is not valid any more: it was already used, a newer one replaced "
    "it, or it expired after an hour. Ask for a new one from the sign-in page."
)


@router.get("/forgot", name="portal_forgot_page")
async def forgot_page(request: Request, agency: PublicAgency) -> Response:
    return page(request, "forgot.html", {"email": "", "sent": False, "error": None})


@router.post("/forgot", name="portal_forgot", dependencies=[CsrfChecked])
async def forgot(request: Request, agency: PublicAgency, session: DBSession) -> Response:
    form = await request.form()
    email = forms._text(form, "email")[:320]
    if "@" not in email:
        return page(
            request,
            "forgot.html",
            {"email": email, "sent": False, "error": "Enter the e-mail you sign in with."},
            status=422,
        )
    await identity.request_password_reset(
        session, agency, email, ip=request.client.host if request.client else None
    )
    # The same answer whether or not the address has an account.
    return page(request, "forgot.html", {"email": "", "sent": True, "error": None})


async def _open_reset(session: AsyncSession, token: str) -> Any:
    try:
        _, user = await identity.open_password_reset(session, _token(token))
    except NotFound:
        raise PageGone(_RESET_GONE) from None
    return user


@router.get("/reset/{token}", name="portal_reset_page")
async def reset_page(
    request: Request, token: str, agency: PublicAgency, session: DBSession
) -> Response:
    user = await _open_reset(session, token)
    return page(request, "reset.html", {"email": user.email, "errors": {}})


@router.post("/reset/{token}", name="portal_reset", dependencies=[CsrfChecked])
async def reset(request: Request, token: str, agency: PublicAgency, session: DBSession) -> Response:
    await impersonation_views.refuse_for_cookie(request, session)
    user = await _open_reset(session, token)
    form = await request.form()
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    errors: dict[str, str] = {}
    if password != form.get("password_confirm"):
        errors["password_confirm"] = "The two passwords are not the same."  # noqa: S105
    else:
        try:
            user, cookie = await identity.reset_password(
                session,
                agency,
                _token(token),
                password=password[:1024],
                ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
        except ValidationFailed as exc:
            errors = forms.error_of(exc, "password")
    if errors:
        raise FormRejected(
            page(request, "reset.html", {"email": user.email, "errors": errors}, status=422)
        )
    return await _after_sign_in(session, agency, user, cookie, None, flash="password_reset")


# ---- agency branding ----------------------------------------------------------------------------

BRANDING_FIELDS = (
    "name",
    "brand_logo_url",
    "brand_primary_color",
    "brand_accent_color",
    "support_email",
    "mail_from_name",
    "mail_from_address",
    "mfa_required",
)


def _branding_page(
    request: Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    return page(
        request,
        "branding.html",
        {"nav": "branding", "values": values, "errors": errors},
        status=status,
    )


@router.get("/settings/branding", name="portal_branding")
async def branding(request: Request, agency: PortalAgency, principal: AgencyManage) -> Response:
    values = {k: getattr(agency, k) or "" for k in BRANDING_FIELDS}
    return _branding_page(request, values, {})


@router.post("/settings/branding", name="portal_branding_update", dependencies=[CsrfChecked])
async def branding_update(
    request: Request, agency: PortalAgency, principal: AgencyManage, session: DBSession
) -> Response:
    form = await request.form()
    values = {k: forms._text(form, k) for k in BRANDING_FIELDS}
    try:
        # Empty logo and support e-mail clear them; the colours are always set.
        data = forms.validate(
            Branding,
            {
                "name": values["name"],
                "brand_logo_url": values["brand_logo_url"] or None,
                "support_email": values["support_email"] or None,
                "mail_from_name": values["mail_from_name"] or None,
                "mail_from_address": values["mail_from_address"] or None,
                "mfa_required": values["mfa_required"] == "on",
                **{
                    k: values[k] for k in ("brand_primary_color", "brand_accent_color") if values[k]
                },
            },
        )
    except forms.FormErrors as exc:
        raise FormRejected(_branding_page(request, values, exc.errors, status=422)) from None
    assert principal.agency_id is not None
    await agencies.update_branding(session, principal.agency_id, data)
    return security.see_other(f"/a/{agency.slug}/settings/branding", agency.slug, "branding_saved")


# ---- e-mail outbox ------------------------------------------------------------------------------


@router.get("/settings/outbox", name="portal_outbox")
async def outbox(
    request: Request, agency: PortalAgency, principal: AgencyManage, session: DBSession
) -> Response:
    items = await portal.outbox(session)
    return page(
        request,
        "outbox.html",
        {"nav": "outbox", "items": items, "smtp": bool(get_settings().smtp_host)},
    )


# ---- solutions: "Open" signs the person in to a solution's app --------------------------------


async def _solutions(session: AsyncSession, principal: Principal) -> list[Any]:
    from services.oauth2 import service as oauth2

    return list(await oauth2.solutions_for(session, principal))


@router.get("/apps", name="portal_apps")
async def solutions(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    apps = [
        {
            "id": ids.encode("oac", row.id),
            "name": row.name,
            "description": row.description,
            "launchable": bool(row.initiate_login_uri),
        }
        for row in await _solutions(session, principal)
    ]
    return page(request, "apps.html", {"nav": "apps", "apps": apps})


@router.get("/apps/{solution_id}/open", name="portal_app_open")
async def open_solution(
    solution_id: str, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    """OpenID Connect third-party-initiated login: send the browser to the app's login
    address with our issuer; the app starts an authorization, which this signed-in session
    answers without asking for a password again."""
    from services.oauth2.server import issuer_for

    if impersonation.is_impersonating(principal):
        raise Forbidden(impersonation.REFUSED_SOLUTIONS)
    wanted = ids.decode("oac", solution_id)
    found = next((r for r in await _solutions(session, principal) if r.id == wanted), None)
    if found is None or not found.initiate_login_uri:
        raise NotFound("no such solution")
    params = {"iss": issuer_for(agency.slug), "target_link_uri": found.initiate_login_uri}
    if principal.user_id is not None:
        user = await identity_repo.user(session, principal.user_id)
        if user is not None:
            params["login_hint"] = user.email
    sep = "&" if "?" in found.initiate_login_uri else "?"
    return security.see_other(f"{found.initiate_login_uri}{sep}{urlencode(params)}")


# ---- mounting -----------------------------------------------------------------------------------


def mount_portal(app: FastAPI) -> None:
    app.mount(
        "/static",
        StaticFiles(directory=get_settings().static_dir, check_dir=False),
        name="static",
    )
    app.include_router(router)
    from services.portal.apps_admin import router as apps_admin_router
    from services.portal.recovery import router as recovery_router

    app.include_router(apps_admin_router)
    app.include_router(recovery_router)
    app.include_router(passkey_routes.router)
    from services.portal.upstream import router as upstream_router

    app.include_router(upstream_router)
    install_not_found_page(app)
