"""Declared access rules for SCIM: the agency API manages tokens with `scim:manage`; the SCIM
endpoints of `/a/{slug}/scim/v2` take one of that agency's SCIM tokens as a bearer token."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request

from services.agencies.auth import agency_in_path
from services.identity.auth import require
from services.kit.errors import Unauthorized
from services.kit.web import DBSession
from services.scim import service
from tenants.models import Agency
from tenants.principal import Principal
from tenants.roles import Permission

ScimTokensManage = Annotated[Principal, Depends(require(Permission.SCIM_MANAGE))]


_ScimAgency = Annotated[Agency, Depends(agency_in_path("no such SCIM service"))]


async def scim_principal(request: Request, agency: _ScimAgency, session: DBSession) -> Principal:
    """The directory calling `slug`'s SCIM endpoint. The agency comes from the address (an
    unknown or suspended one is a 404); the token must be one of that agency's, so another
    agency's token is a 401 here."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("send a SCIM token as `Authorization: Bearer <token>`")
    principal = await service.resolve_token(session, agency, credentials.strip())
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(
        agency_id=str(principal.agency_id), actor="scim_token", actor_id=str(principal.actor_id)
    )
    return principal


ScimCaller = Annotated[Principal, Depends(scim_principal)]
