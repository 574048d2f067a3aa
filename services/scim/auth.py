"""Declared access rules for SCIM: the agency API manages tokens with `scim:manage`; the SCIM
endpoints of `/a/{slug}/scim/v2` take one of that agency's SCIM tokens as a bearer token."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request

from services.agencies.service import by_public_slug
from services.identity.auth import require
from services.kit.errors import NotFound, Unauthorized
from services.kit.web import DBSession
from services.scim import service
from tenants.principal import Principal
from tenants.roles import Permission

ScimTokensManage = Annotated[Principal, Depends(require(Permission.SCIM_MANAGE))]


async def scim_principal(request: Request, slug: str, session: DBSession) -> Principal:
    """The directory calling `slug`'s SCIM endpoint. The agency comes from the address; the
    token must be one of that agency's, so another agency's token is a 401 here."""
    agency = await by_public_slug(session, slug)
    if agency is None:
        raise NotFound("no such SCIM service")
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
