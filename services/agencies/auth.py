"""Declared access rules for agencies, and the one dependency that resolves the agency a
public address names (`/a/{slug}/...`)."""

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends

from services.agencies import service
from services.identity.auth import AgencyManage, require
from services.kit.errors import NotFound
from services.kit.web import DBSession
from tenants.models import Agency
from tenants.principal import Principal
from tenants.roles import Permission

Operator = Annotated[Principal, Depends(require(Permission.PLATFORM_AGENCIES))]
AgencyRead = Annotated[Principal, Depends(require(Permission.AGENCY_READ))]
# Declared in identity's auth (its sign-in provider routes need it too): one alias.
__all__ = ["AgencyManage", "AgencyRead", "Operator", "agency_in_path"]


def agency_in_path(not_found: str) -> Callable[[str, DBSession], Awaitable[Agency]]:
    """A dependency for routes under `/a/{slug}/`: the active agency the slug names
    (`service.active_agency`), else a 404 with the door's own wording (the portal renders it
    as its page). Every door (the portal, the OpenID issuer, SCIM) builds its own once and
    then does its own work inside the agency (its tenant, principal, brand)."""

    async def agency_named(slug: str, session: DBSession) -> Agency:
        agency = await service.active_agency(session, slug)
        if agency is None:
            raise NotFound(not_found)
        structlog.contextvars.bind_contextvars(agency_id=str(agency.id))
        return agency

    return agency_named
