"""What more than one page group goes through, below all of them (`services.portal.pages`):

* `after_sign_in`: where every sign-in goes next (password, invitation, password reset,
  upstream provider): the second-factor prompt when one is owed, else on;
* `account_page`: the signed-in person's account page, which every account form re-renders
  (two-step sign-in, passkeys, recovery codes);
* `link_token`: the shape of the token in an invitation or password-reset link.

HTTP only, like the pages: these call services and render templates.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.identity import impersonation, mfa, passkeys
from services.identity import service as identity
from services.kit.errors import NotFound
from services.portal import security
from services.portal import service as portal
from services.portal.rendering import page
from tenants.principal import Principal


async def after_sign_in(
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


async def account_page(
    request: Request,
    session: AsyncSession,
    agency: Any,
    principal: Principal,
    *,
    recovery_codes: list[str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    me = await portal.me(session, principal)
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


def link_token(token: str) -> str:
    """The token of an invitation or password-reset link; any other shape is a 404."""
    if not (20 <= len(token) <= 64) or not token.isalnum():
        raise NotFound("no such invitation")
    return token
