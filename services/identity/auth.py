"""The single dependency that turns API credentials into a Principal, and the declared
permission aliases built on it. Handlers never look at role names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.apikeys import resolve_api_key
from services.kit import web
from services.kit.errors import Forbidden, Unauthorized
from tenants.principal import Principal
from tenants.roles import Permission
from tenants.scoping import bind_principal, scope_to

# Bearer tokens other than API keys: OAuth access tokens, resolved by the OpenID provider
# (services/oauth2), which registers itself here (it sits above identity in the layers).
token_resolvers: list[Callable[[str], Awaitable[Principal]]] = []


async def api_principal(request: Request) -> Principal:
    """The caller of an API route. Needs no request session: a cached key costs nothing, an
    uncached one one short transaction; the request's session, if the route opens one, is
    scoped to the principal whichever of the two dependencies FastAPI resolves first."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized(
            "send an API key or an OAuth access token as `Authorization: Bearer <token>`"
        )
    raw = credentials.strip()
    if raw.count(".") == 2 and token_resolvers:  # a JWT: an OAuth access token
        principal = await token_resolvers[0](raw)
    else:
        principal = await resolve_api_key(raw)
    request.state.principal = principal
    session: AsyncSession | None = getattr(request.state, "db", None)
    if session is not None:
        if principal.agency_id is None:
            bind_principal(session, principal)
        else:
            await scope_to(session, principal)
    structlog.contextvars.bind_contextvars(
        agency_id=str(principal.agency_id) if principal.agency_id else None,
        actor=principal.kind,
        actor_id=str(principal.actor_id) if principal.actor_id else None,
    )
    return principal


def _scope_request_session(request: Request, session: AsyncSession) -> None:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        bind_principal(session, principal)


web.session_openers.append(_scope_request_session)

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


# Declared by identity because its own routes need it (the agency's sign-in providers) and
# identity sits beside agencies, never above it; `services.agencies.auth` re-exports it.
AgencyManage = Annotated[Principal, Depends(require(Permission.AGENCY_MANAGE))]
