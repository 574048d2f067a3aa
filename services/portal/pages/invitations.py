"""Accepting an invitation from its link: set a name and a password (or, with an account
already, sign in with it), then signed in."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.identity import service as identity
from services.kit.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.kit.web import DBSession
from services.portal import flow, forms, security
from services.portal import impersonation as impersonation_views
from services.portal import service as portal
from services.portal.auth import CsrfChecked, PublicAgency
from services.portal.rendering import page
from services.portal.routing import FormRejected, PageGone, PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

_INVITE_GONE = (
    "This invitation link is not valid any more: it was already used, revoked or it expired. "
    "Ask the person who invited you for a new one."
)


async def _open_invitation(session: AsyncSession, token: str) -> tuple[Any, Any]:
    try:
        inv = await identity.open_invitation(session, flow.link_token(token))
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
    return await flow.after_sign_in(
        session, agency, user, cookie, None, "welcome", previous=security.session_cookie(request)
    )
