"""Entry, sign-in with a password, sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.identity import impersonation, upstream
from services.identity import service as identity
from services.kit.errors import TooManyAttempts, Unauthorized
from services.kit.web import DBSession
from services.portal import flow, forms, security
from services.portal import impersonation as impersonation_views
from services.portal import service as portal
from services.portal.auth import CsrfChecked, MaybeSignedIn, PortalAgency, PublicAgency
from services.portal.forms import QueryText
from services.portal.rendering import page
from services.portal.routing import PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


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
    next: QueryText = "",
    reauth: QueryText = "",
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
    return await flow.after_sign_in(
        session, agency, user, token, target, previous=security.session_cookie(request)
    )


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
