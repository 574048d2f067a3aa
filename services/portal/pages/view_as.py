"""'View as a client user': starting an audited impersonation from a client's page, ending
it, and where it lands when it is over (the cookies and the rules:
`services.portal.impersonation`, `services.identity.impersonation`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.kit.errors import ValidationFailed
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.portal import forms
from services.portal import impersonation as impersonation_views
from services.portal import service as portal
from services.portal.auth import (
    ClientsImpersonate,
    CsrfChecked,
    PortalAgency,
    PublicAgency,
    SignedIn,
)
from services.portal.rendering import page
from services.portal.routing import FormRejected, PortalRoute

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


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
    cid = path_id("cli", client_id, "client")
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
