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


def permission_guard(
    permission: Permission, principal_dependency: Callable[..., Awaitable[Principal]]
) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that resolves the principal with `principal_dependency` (API key, portal
    session) and refuses it unless it holds `permission`."""

    # A default, not an annotation: annotations are strings here and cannot see the closure.
    async def dependency(principal: Principal = Depends(principal_dependency)) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"this needs the {permission.value} permission")
        return principal

    dependency.__name__ = f"require_{permission.name.lower()}"
    return dependency


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """API routes: the caller's API key must grant `permission`."""
    return permission_guard(permission, api_principal)
