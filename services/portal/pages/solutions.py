"""Solutions, the client portal's home: the apps the agency sells that this person may use,
and "Open", which signs them in to one (OpenID Connect third-party-initiated login)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.identity import impersonation
from services.kit import ids
from services.kit.errors import Forbidden, NotFound
from services.kit.web import DBSession
from services.oauth2 import service as oauth2
from services.oauth2.server import issuer_for
from services.portal import security
from services.portal import service as portal
from services.portal.auth import PortalAgency, SignedIn
from services.portal.rendering import page
from services.portal.routing import PortalRoute
from tenants.principal import Principal

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


async def _solutions(session: AsyncSession, principal: Principal) -> list[Any]:
    return list(await oauth2.solutions_for(session, principal))


@router.get("/apps", name="portal_apps")
async def solutions(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    apps = [
        {
            "id": ids.encode("oac", row.id),
            "name": row.name,
            "description": row.description,
            "launchable": bool(row.initiate_login_uri),
        }
        for row in await _solutions(session, principal)
    ]
    return page(request, "apps.html", {"nav": "apps", "apps": apps})


@router.get("/apps/{solution_id}/open", name="portal_app_open")
async def open_solution(
    solution_id: str, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    """OpenID Connect third-party-initiated login: send the browser to the app's login
    address with our issuer; the app starts an authorization, which this signed-in session
    answers without asking for a password again."""
    if impersonation.is_impersonating(principal):
        raise Forbidden(impersonation.REFUSED_SOLUTIONS)
    wanted = ids.decode("oac", solution_id)
    found = next((r for r in await _solutions(session, principal) if r.id == wanted), None)
    if found is None or not found.initiate_login_uri:
        raise NotFound("no such solution")
    params = {"iss": issuer_for(agency.slug), "target_link_uri": found.initiate_login_uri}
    user = await portal.user_of(session, principal)
    if user is not None:
        params["login_hint"] = user.email
    sep = "&" if "?" in found.initiate_login_uri else "?"
    return security.see_other(f"{found.initiate_login_uri}{sep}{urlencode(params)}")
