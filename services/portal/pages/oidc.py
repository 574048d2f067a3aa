"""The OpenID provider's browser pages, in the agency's brand: `oauth2/authorize` (and
`resume`, back from the sign-in page), `oauth2/consent`, `oauth2/logout` (portal session, CSRF
on every form, branded error pages, never an open redirect). Each handler snapshots the
request, calls a use case of `services.oauth2.service` and turns its outcome into a page or
a redirect. The machine endpoints (token, userinfo, revoke, introspect) stay in
`services.oauth2.endpoints`.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from services.identity import impersonation
from services.kit.web import DBSession
from services.oauth2 import service
from services.oauth2.http import snapshot
from services.oauth2.server import HttpSnapshot
from services.portal import security
from services.portal.auth import CsrfChecked, MaybeSignedIn, PortalAgency, SignedIn
from services.portal.rendering import error_page, page
from services.portal.routing import PortalRoute
from services.settings import get_settings
from tenants.models import Agency
from tenants.principal import Principal

router = APIRouter(prefix="/a/{slug}/oauth2", route_class=PortalRoute, include_in_schema=False)


def _allow_form_target(response: Response, origin: str | None) -> Response:
    """The consent and logout forms end in a redirect to the relying party: browsers apply
    the page's CSP `form-action` to that redirect, so it names the RP's origin too."""
    csp = response.headers.get("Content-Security-Policy")
    if csp and origin:
        response.headers["Content-Security-Policy"] = csp.replace(
            "form-action 'self'", f"form-action 'self' {origin}"
        )
    return response


# While the person signs in, the pending authorization request waits in a short-lived cookie
# scoped to the agency's oauth2 path; the portal's sign-in page gets a short `next` back to
# `oauth2/resume`. (The request is public data: the same parameters could be in any link.)
PENDING_COOKIE = "sb_oidc_request"
PENDING_MAX_AGE = 900
PENDING_MAX_BYTES = 3500


def _pending_path(slug: str) -> str:
    return f"/a/{slug}/oauth2/"


def _remember_pending(response: Response, slug: str, pairs: list[tuple[str, str]]) -> bool:
    value = base64.urlsafe_b64encode(json.dumps(pairs).encode()).decode()
    if len(value) > PENDING_MAX_BYTES:
        return False
    response.set_cookie(
        PENDING_COOKIE,
        value,
        max_age=PENDING_MAX_AGE,
        path=_pending_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )
    return True


def _pending(request: Request) -> list[tuple[str, str]] | None:
    raw = request.cookies.get(PENDING_COOKIE, "")
    try:
        pairs = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        return None
    return [(k, v) for k, v in pairs]


async def _authorize_response(
    request: Request,
    agency: Agency,
    principal: Principal | None,
    session: DBSession,
    decision: bool | None,
    snap: HttpSnapshot | None = None,
    interstitial: bool = False,
) -> Response:
    if impersonation.is_impersonating(principal):
        # Signing in to an app would hand it the viewed person's identity (tokens, consent).
        return error_page(
            request,
            403,
            title="Not while viewing as someone else",
            message=impersonation.REFUSED_SOLUTIONS,
        )
    outcome = await service.authorize(
        session, agency, principal, snap or await snapshot(request), decision=decision
    )
    if isinstance(outcome, service.Redirect):
        response: Response
        if interstitial:
            # Back from the sign-in form: browsers apply that form page's CSP `form-action`
            # to every redirect the form submission leads to, so a redirect to the app's
            # origin would be blocked. A page that moves on by itself ends the chain here.
            response = page(request, "oauth2/continue.html", {"url": outcome.url})
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
        else:
            response = RedirectResponse(
                outcome.url, status_code=303 if request.method == "POST" else 302
            )
        if PENDING_COOKIE in request.cookies:
            response.delete_cookie(PENDING_COOKIE, path=_pending_path(agency.slug))
        return response
    if isinstance(outcome, service.ErrorPage):
        return error_page(
            request, 400, title="This sign-in link is not valid", message=outcome.message
        )
    if isinstance(outcome, service.NeedsLogin):
        response = RedirectResponse("", status_code=303)
        if _remember_pending(response, agency.slug, outcome.request):
            target = f"/a/{agency.slug}/oauth2/resume"
        else:
            target = service.authorize_path(agency.slug, outcome.request)
        safe = security.safe_next(target, agency.slug)
        query = {"next": safe} if safe else {}
        if outcome.reauthenticate and principal is not None:
            # The form even for a signed-in browser; its session lives on until a new sign-in
            # succeeds (which replaces it): a link from anywhere cannot sign anyone out.
            query["reauth"] = "1"
        response.headers["location"] = f"/a/{agency.slug}/login" + (
            f"?{urlencode(query)}" if query else ""
        )
        return response
    response = page(
        request,
        "oauth2/consent.html",
        {
            "client_name": outcome.client_name,
            "scopes": outcome.scopes,
            "fields": outcome.fields,
        },
    )
    return _allow_form_target(response, outcome.redirect_origin)


@router.api_route("/authorize", methods=["GET", "POST"], name="oauth2_authorize")
async def authorize(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    return await _authorize_response(request, agency, principal, session, None)


@router.get("/resume", name="oauth2_resume")
async def resume(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    """Back from the sign-in page: continue the authorization request that was waiting."""
    pairs = _pending(request)
    if not pairs:
        return error_page(
            request,
            400,
            title="This sign-in request has expired",
            message="Go back to the app you came from and start again.",
        )
    url = get_settings().base_url.rstrip("/") + service.authorize_path(agency.slug, pairs)
    snap = HttpSnapshot("GET", url, request.headers, pairs, [])
    return await _authorize_response(
        request, agency, principal, session, None, snap, interstitial=True
    )


@router.post("/consent", name="oauth2_consent", dependencies=[CsrfChecked])
async def consent(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    form = await request.form()
    decision = form.get("decision") == "allow"
    return await _authorize_response(request, agency, principal, session, decision)


async def _logout_response(
    request: Request,
    agency: Agency,
    principal: Principal | None,
    session: DBSession,
    confirmed: bool,
) -> Response:
    outcome = await service.logout(
        session, agency, principal, await snapshot(request), confirmed=confirmed
    )
    if outcome.error is not None:
        return error_page(
            request, 400, title="This sign-out link is not valid", message=outcome.error
        )
    response: Response
    if outcome.confirm:
        response = page(
            request,
            "oauth2/logout.html",
            {"client_name": outcome.client_name, "fields": outcome.fields},
        )
        origin = service.url_origin(outcome.redirect_uri) if outcome.redirect_uri else None
        return _allow_form_target(response, origin)
    if outcome.redirect_uri:
        response = RedirectResponse(outcome.redirect_uri, status_code=303)
    else:
        request.state.portal_principal = None
        response = page(request, "oauth2/signed_out.html", {"signed_out": outcome.signed_out})
    if outcome.signed_out:
        security.clear_session_cookie(response, agency.slug)
    return response


@router.get("/logout", name="oauth2_logout")
async def logout(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    return await _logout_response(request, agency, principal, session, confirmed=False)


@router.post("/logout", name="oauth2_logout_confirm", dependencies=[CsrfChecked])
async def logout_confirm(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    return await _logout_response(request, agency, principal, session, confirmed=True)
