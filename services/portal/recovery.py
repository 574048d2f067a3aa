"""Recovery codes on their own: someone whose second factor is a passkey (no authenticator
app) gets them here, and anyone with a second factor can replace used-up ones. Shown once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.identity import mfa
from services.identity import repository as identity_repo
from services.kit.errors import ValidationFailed
from services.kit.web import DBSession
from services.portal.auth import CsrfChecked, NotImpersonating, PortalAgency, SignedIn
from services.portal.routing import FormRejected, PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


@router.post(
    "/account/recovery-codes",
    name="portal_recovery_codes",
    dependencies=[CsrfChecked, NotImpersonating],
)
async def recovery_codes(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    from services.portal.endpoints import _account_page

    me = await identity_repo.user(session, principal.user_id)
    assert me is not None
    try:
        codes = await mfa.issue_recovery_codes(session, agency, me)
    except ValidationFailed as exc:
        raise FormRejected(
            await _account_page(request, session, agency, principal, error=exc.detail, status=422)
        ) from None
    return await _account_page(request, session, agency, principal, recovery_codes=codes)
