"""The signed-in person's own account: two-step sign-in with an authenticator app, recovery
codes, signing out everywhere. (Passkeys, on the same page, are in `pages.passkeys`.)

Recovery codes on their own: someone whose second factor is a passkey (no authenticator
app) gets them here, and anyone with a second factor can replace used-up ones. Shown once.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.identity import mfa, signin
from services.identity import service as identity
from services.kit.errors import Conflict, NotFound, ValidationFailed
from services.kit.web import DBSession
from services.portal import flow, forms, security
from services.portal import service as portal
from services.portal.auth import CsrfChecked, NotImpersonating, PortalAgency, SignedIn
from services.portal.routing import FormRejected, PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


@router.get("/account", name="portal_account")
async def account(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    return await flow.account_page(request, session, agency, principal)


@router.post(
    "/account/mfa/start", name="portal_mfa_start", dependencies=[CsrfChecked, NotImpersonating]
)
async def mfa_start(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await portal.me(session, principal)
    try:
        await mfa.start_enrolment(session, agency, me)
    except Conflict as exc:
        return await flow.account_page(
            request, session, agency, principal, error=exc.detail, status=409
        )
    return security.see_other(f"/a/{agency.slug}/account")


@router.post(
    "/account/mfa/confirm", name="portal_mfa_confirm", dependencies=[CsrfChecked, NotImpersonating]
)
async def mfa_confirm(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await portal.me(session, principal)
    code = forms._text(await request.form(), "code")[:40]
    try:
        codes = await mfa.confirm_enrolment(session, agency, me, code)
    except (ValidationFailed, NotFound) as exc:
        return await flow.account_page(
            request, session, agency, principal, error=exc.detail, status=422
        )
    # A session the agency's policy held for this setup becomes a full one: a new id.
    fresh = await signin.finish_second_factor_setup(session, agency, principal)
    if fresh:
        request.state.rotated_session = fresh  # the page's forms belong to the new session
    response = await flow.account_page(request, session, agency, principal, recovery_codes=codes)
    if fresh:
        security.adopt_session(request, response, agency.slug, fresh)
    return response


@router.post(
    "/account/mfa/remove", name="portal_mfa_remove", dependencies=[CsrfChecked, NotImpersonating]
)
async def mfa_remove(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await portal.me(session, principal)
    code = forms._text(await request.form(), "code")[:40]
    try:
        await mfa.remove(session, agency, me, code)
    except ValidationFailed as exc:
        raise FormRejected(
            await flow.account_page(
                request, session, agency, principal, error=exc.detail, status=422
            )
        ) from None
    return security.see_other(f"/a/{agency.slug}/account")


@router.post(
    "/account/recovery-codes",
    name="portal_recovery_codes",
    dependencies=[CsrfChecked, NotImpersonating],
)
async def recovery_codes(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    me = await portal.me(session, principal)
    try:
        codes = await mfa.issue_recovery_codes(session, agency, me)
    except ValidationFailed as exc:
        raise FormRejected(
            await flow.account_page(
                request, session, agency, principal, error=exc.detail, status=422
            )
        ) from None
    return await flow.account_page(request, session, agency, principal, recovery_codes=codes)


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
