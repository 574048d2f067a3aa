"""Passkey routes of the portal (the ceremonies run in `static/js/passkeys.js`).

The browser asks for options (a JSON POST), runs `navigator.credentials.create()` or `.get()`,
and posts the result back as JSON. Both POSTs carry the page's CSRF token in the
`X-CSRF-Token` header (checked exactly like a form's field) and must be
`application/json`. The challenge travels in `sb_webauthn`, a five-minute HttpOnly cookie
holding the sealed state of `identity.passkeys` (bound to this browser's session or CSRF
cookie); every answer drops it.

* account: `POST /account/passkeys/options`, `POST /account/passkeys` (add); the forms
  `/account/passkeys/{id}/rename` and `/account/passkeys/{id}/remove` (password or code).
* second factor: `POST /login/verify/passkey/options`, `POST /login/verify/passkey`.
* password-less: `POST /login/passkey/options`, `POST /login/passkey`.

Failures are returned (not raised) so that their audit events and throttle counters commit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import JSONResponse, Response

from services.identity import mfa, passkeys, signin
from services.identity import service as identity
from services.kit.errors import (
    Conflict,
    NotFound,
    SwitchboardError,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
)
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.portal import flow, forms, security
from services.portal import service as portal
from services.portal.auth import (
    CsrfChecked,
    NotImpersonating,
    PortalAgency,
    PublicAgency,
    SignedIn,
)
from services.portal.routing import CsrfRejected, FormRejected, PortalRoute
from services.settings import get_settings
from tenants.models import Agency

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

CSRF_HEADER = "X-CSRF-Token"
CHALLENGE_COOKIE = "sb_webauthn"


async def json_csrf_protect(request: Request, agency: PortalAgency) -> None:
    """The JSON twin of `csrf_protect`: same token, sent in a header; JSON only (a cross-site
    form cannot send `application/json` without the browser asking us first)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if (
        content_type != "application/json"
        or not security.origin_allowed(request)
        or not security.csrf_valid(request, agency.slug, request.headers.get(CSRF_HEADER))
    ):
        raise CsrfRejected("the request's security token is missing or does not match")


JsonCsrfChecked = Depends(json_csrf_protect)


# ---- helpers -----------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(body: dict[str, Any], key: str, limit: int = 200) -> str:
    value = body.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _answer(slug: str, status: int, **body: Any) -> JSONResponse:
    """Every answer after a ceremony drops the challenge cookie: one try per challenge."""
    response = JSONResponse(body, status_code=status)
    response.delete_cookie(
        CHALLENGE_COOKIE,
        path=security.cookie_path(slug),
        httponly=True,
        samesite="strict",
        secure=_secure(),
    )
    return response


def _error(slug: str, exc: SwitchboardError, status: int | None = None) -> JSONResponse:
    response = _answer(slug, status or exc.status, error=_sentence(exc.detail))
    if isinstance(exc, TooManyAttempts):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _secure() -> bool:
    return get_settings().secure_cookies


def _options(slug: str, ceremony: passkeys.Ceremony) -> JSONResponse:
    response = JSONResponse({"publicKey": ceremony.options})
    response.set_cookie(
        CHALLENGE_COOKIE,
        ceremony.state,
        max_age=int(passkeys.CHALLENGE_TTL.total_seconds()),
        path=security.cookie_path(slug),
        httponly=True,
        samesite="strict",
        secure=_secure(),
    )
    return response


def _state(request: Request) -> str:
    return request.cookies.get(CHALLENGE_COOKIE, "")[:2000]


def _csrf_binding(request: Request) -> str:
    """Before sign-in the browser is known by its CSRF cookie (checked just before)."""
    return request.cookies.get(security.CSRF_COOKIE, "")


async def _landing(session: DBSession, agency: Agency, user: Any, target: str | None) -> str:
    if target:
        return target
    principal = await identity.principal_for_user(session, user, agency)
    return portal.landing(principal, f"/a/{agency.slug}")


# ---- account: add, rename, remove ----------------------------------------------------------


@router.post(
    "/account/passkeys/options",
    name="portal_passkey_options",
    dependencies=[JsonCsrfChecked, NotImpersonating],
)
async def registration_options(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await portal.me(session, principal)
    try:
        ceremony = await passkeys.begin_registration(
            session, agency, me, binding=security.session_cookie(request)
        )
    except Conflict as exc:
        return _error(agency.slug, exc)
    return _options(agency.slug, ceremony)


@router.post(
    "/account/passkeys",
    name="portal_passkey_add",
    dependencies=[JsonCsrfChecked, NotImpersonating],
)
async def add(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await portal.me(session, principal)
    body = await _body(request)
    try:
        await passkeys.finish_registration(
            session,
            agency,
            me,
            state=_state(request),
            binding=security.session_cookie(request),
            credential=body.get("credential"),
            name=_text(body, "name", 500),
        )
    except ValidationFailed as exc:
        return _error(agency.slug, exc, 422)
    except (Unauthorized, Conflict) as exc:
        return _error(agency.slug, exc, 400 if isinstance(exc, Unauthorized) else 409)
    response = _answer(agency.slug, 200, redirect=f"/a/{agency.slug}/account#passkeys")
    security.set_flash(response, agency.slug, "passkey_added")
    # A session the agency's policy held for this setup becomes a full one: a new id.
    fresh = await signin.finish_second_factor_setup(session, agency, principal)
    if fresh:
        security.adopt_session(request, response, agency.slug, fresh)
    return response


def _passkey_id(public_id: str) -> Any:
    return path_id("pk", public_id, "passkey")


@router.post(
    "/account/passkeys/{passkey_id}/rename",
    name="portal_passkey_rename",
    dependencies=[CsrfChecked, NotImpersonating],
)
async def rename(
    request: Request,
    agency: PortalAgency,
    passkey_id: str,
    principal: SignedIn,
    session: DBSession,
) -> Response:
    me = await portal.me(session, principal)
    name = forms._text(await request.form(), "name")[:500]
    try:
        await passkeys.rename(session, me, _passkey_id(passkey_id), name)
    except ValidationFailed as exc:
        raise FormRejected(
            await flow.account_page(
                request, session, agency, principal, error=_sentence(exc.detail), status=422
            )
        ) from None
    return security.see_other(f"/a/{agency.slug}/account#passkeys", agency.slug, "passkey_renamed")


@router.post(
    "/account/passkeys/{passkey_id}/remove",
    name="portal_passkey_remove",
    dependencies=[CsrfChecked, NotImpersonating],
)
async def remove(
    request: Request,
    agency: PortalAgency,
    passkey_id: str,
    principal: SignedIn,
    session: DBSession,
) -> Response:
    me = await portal.me(session, principal)
    form = await request.form()
    password = form.get("password")
    try:
        await passkeys.remove(
            session,
            agency,
            me,
            _passkey_id(passkey_id),
            password=password if isinstance(password, str) else "",
            code=forms._text(form, "code")[:40],
        )
    except (ValidationFailed, TooManyAttempts) as exc:
        # Returned, not raised: the failed attempt's counters and audit event are committed.
        return await flow.account_page(
            request,
            session,
            agency,
            principal,
            error=_sentence(exc.detail),
            status=429 if isinstance(exc, TooManyAttempts) else 422,
        )
    return security.see_other(f"/a/{agency.slug}/account#passkeys", agency.slug, "passkey_removed")


# ---- second factor ---------------------------------------------------------------------------


@router.post(
    "/login/verify/passkey/options",
    name="portal_mfa_passkey_options",
    dependencies=[JsonCsrfChecked],
)
async def second_factor_options(
    request: Request, agency: PublicAgency, session: DBSession
) -> Response:
    token = security.session_cookie(request)
    pending = await mfa.pending_sign_in(session, agency, token) if token else None
    if pending is None:
        return _answer(
            agency.slug,
            401,
            error="This sign-in has expired. Start again.",
            redirect=f"/a/{agency.slug}/login",
        )
    try:
        ceremony = await passkeys.begin_authentication(
            session, agency, binding=token, user=pending[1]
        )
    except NotFound as exc:
        return _error(agency.slug, exc)
    return _options(agency.slug, ceremony)


@router.post("/login/verify/passkey", name="portal_mfa_passkey", dependencies=[JsonCsrfChecked])
async def second_factor(request: Request, agency: PublicAgency, session: DBSession) -> Response:
    body = await _body(request)
    target = security.safe_next(body.get("next"), agency.slug)
    token = security.session_cookie(request)
    try:
        user, fresh = await passkeys.complete_sign_in(
            session, agency, token, state=_state(request), credential=body.get("credential")
        )
    except NotFound as exc:
        return _answer(
            agency.slug, 401, error=_sentence(exc.detail), redirect=f"/a/{agency.slug}/login"
        )
    except (Unauthorized, TooManyAttempts) as exc:
        return _error(agency.slug, exc)
    response = _answer(agency.slug, 200, redirect=await _landing(session, agency, user, target))
    security.set_session_cookie(response, agency.slug, fresh)  # a new session id
    security.set_device_cookie(
        response, agency.slug, identity.issue_device_token(agency.id, user.id)
    )
    return response


# ---- password-less -----------------------------------------------------------------------------


@router.post(
    "/login/passkey/options", name="portal_passkey_login_options", dependencies=[JsonCsrfChecked]
)
async def passwordless_options(
    request: Request, agency: PublicAgency, session: DBSession
) -> Response:
    ceremony = await passkeys.begin_authentication(session, agency, binding=_csrf_binding(request))
    return _options(agency.slug, ceremony)


@router.post("/login/passkey", name="portal_passkey_login", dependencies=[JsonCsrfChecked])
async def passwordless(request: Request, agency: PublicAgency, session: DBSession) -> Response:
    body = await _body(request)
    target = security.safe_next(body.get("next"), agency.slug)
    try:
        user, token = await passkeys.sign_in(
            session,
            agency,
            state=_state(request),
            binding=_csrf_binding(request),
            credential=body.get("credential"),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )
    except (Unauthorized, TooManyAttempts) as exc:
        return _error(agency.slug, exc)
    previous = security.session_cookie(request)
    if previous:  # the new sign-in replaces what this browser held
        await identity.end_session_by_token(session, agency, previous, reason=identity.REPLACED)
    response = _answer(agency.slug, 200, redirect=await _landing(session, agency, user, target))
    security.set_session_cookie(response, agency.slug, token)
    security.set_device_cookie(
        response, agency.slug, identity.issue_device_token(agency.id, user.id)
    )
    return response
