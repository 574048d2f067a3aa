"""Forgot password: asking for a reset link, and setting a new password from it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.identity import service as identity
from services.kit.errors import NotFound, ValidationFailed
from services.kit.web import DBSession
from services.portal import flow, forms
from services.portal import impersonation as impersonation_views
from services.portal.auth import CsrfChecked, PublicAgency
from services.portal.rendering import page
from services.portal.routing import FormRejected, PageGone, PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

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
        _, user = await identity.open_password_reset(session, flow.link_token(token))
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
                flow.link_token(token),
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
    return await flow.after_sign_in(session, agency, user, cookie, None, flash="password_reset")
