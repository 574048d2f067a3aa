"""The agency's settings pages: branding (and whether two-step sign-in is required), and the
e-mail outbox. (Sign-in options are in `pages.upstream`, registered apps in
`pages.apps_admin`.)"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.agencies import service as agencies
from services.agencies.schemas import Branding
from services.kit.web import DBSession
from services.portal import forms, security
from services.portal import service as portal
from services.portal.auth import AgencyManage, CsrfChecked, PortalAgency
from services.portal.rendering import page
from services.portal.routing import FormRejected, PortalRoute
from services.settings import get_settings

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

BRANDING_FIELDS = (
    "name",
    "brand_logo_url",
    "brand_primary_color",
    "brand_accent_color",
    "support_email",
    "mail_from_name",
    "mail_from_address",
    "mfa_required",
)


def _branding_page(
    request: Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    return page(
        request,
        "branding.html",
        {"nav": "branding", "values": values, "errors": errors},
        status=status,
    )


@router.get("/settings/branding", name="portal_branding")
async def branding(request: Request, agency: PortalAgency, principal: AgencyManage) -> Response:
    values = {k: getattr(agency, k) or "" for k in BRANDING_FIELDS}
    return _branding_page(request, values, {})


@router.post("/settings/branding", name="portal_branding_update", dependencies=[CsrfChecked])
async def branding_update(
    request: Request, agency: PortalAgency, principal: AgencyManage, session: DBSession
) -> Response:
    form = await request.form()
    values = {k: forms._text(form, k) for k in BRANDING_FIELDS}
    try:
        # Empty logo and support e-mail clear them; the colours are always set.
        data = forms.validate(
            Branding,
            {
                "name": values["name"],
                "brand_logo_url": values["brand_logo_url"] or None,
                "support_email": values["support_email"] or None,
                "mail_from_name": values["mail_from_name"] or None,
                "mail_from_address": values["mail_from_address"] or None,
                "mfa_required": values["mfa_required"] == "on",
                **{
                    k: values[k] for k in ("brand_primary_color", "brand_accent_color") if values[k]
                },
            },
        )
    except forms.FormErrors as exc:
        raise FormRejected(_branding_page(request, values, exc.errors, status=422)) from None
    assert principal.agency_id is not None
    await agencies.update_branding(session, principal.agency_id, data)
    return security.see_other(f"/a/{agency.slug}/settings/branding", agency.slug, "branding_saved")


# ---- e-mail outbox ------------------------------------------------------------------------------


@router.get("/settings/outbox", name="portal_outbox")
async def outbox(
    request: Request, agency: PortalAgency, principal: AgencyManage, session: DBSession
) -> Response:
    items = await portal.outbox(session)
    return page(
        request,
        "outbox.html",
        {"nav": "outbox", "items": items, "smtp": bool(get_settings().smtp_host)},
    )
