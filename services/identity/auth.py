"""The single dependency that turns API credentials into a Principal, and the declared
permission aliases built on it. Handlers never look at role names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request

from services.identity.service import resolve_bearer
from services.kit.errors import Forbidden, Unauthorized
from services.kit.web import DBSession
from tenants.principal import Principal
from tenants.roles import Permission


async def api_principal(request: Request, session: DBSession) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
    principal = await resolve_bearer(session, credentials.strip())
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(
        agency_id=str(principal.agency_id) if principal.agency_id else None,
        actor=principal.kind,
        actor_id=str(principal.actor_id) if principal.actor_id else None,
    )
    return principal


AnyPrincipal = Annotated[Principal, Depends(api_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: AnyPrincipal) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"this needs the {permission.value} permission")
        return principal

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency
