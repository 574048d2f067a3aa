"""Two-step sign-in: the code prompt after the password (an authenticator app's code or a
recovery code; a passkey as second factor is in `pages.passkeys`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.identity import mfa
from services.identity import service as identity
from services.kit.errors import NotFound, TooManyAttempts, Unauthorized
from services.kit.web import DBSession
from services.portal import forms, security
from services.portal import service as portal
from services.portal.auth import CsrfChecked, PublicAgency
from services.portal.forms import QueryText
from services.portal.rendering import page
from services.portal.routing import PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


@router.get("/login/verify", name="portal_mfa_page")
async def mfa_page(
    request: Request, agency: PublicAgency, session: DBSession, next: QueryText = ""
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
