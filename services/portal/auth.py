"""The portal's one principal dependency and its declared permission aliases.

slug → agency (`agencies.auth.agency_in_path`, shared with the issuer and SCIM) → session
cookie → `identity.service.resolve_browser_session`, which scopes the request's session to
the agency and, for client users and staff, to their clients. Handlers declare what they need
as a permission (`ClientsRead`, `AgencyManage`, ...), never as a role name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, Request

from services.agencies.auth import agency_in_path
from services.identity import impersonation
from services.identity import service as identity
from services.identity.auth import permission_guard
from services.kit.errors import Forbidden
from services.kit.web import DBSession
from services.portal import impersonation as impersonation_views
from services.portal import security
from services.portal import service as portal
from services.portal.rendering import Brand
from services.portal.routing import CsrfRejected, LoginRequired, SecondFactorSetupRequired
from tenants.context import TenantContext
from tenants.models import Agency
from tenants.principal import Principal
from tenants.roles import Permission
from tenants.scoping import set_tenant

_NamedAgency = Annotated[Agency, Depends(agency_in_path("no such portal"))]


async def portal_agency(request: Request, agency: _NamedAgency) -> Agency:
    """The agency the address names, its brand on every page. Unknown or suspended: the 404
    page (`routing.PortalRoute` renders the 404)."""
    request.state.portal_brand = Brand.of(agency)
    return agency


PortalAgency = Annotated[Agency, Depends(portal_agency)]


async def public_agency(agency: PortalAgency, session: DBSession) -> Agency:
    """Pages for people who are not signed in yet (sign-in, invitation): the session works
    inside the agency's tenant with no principal."""
    await set_tenant(session, TenantContext.for_agency(agency.id))
    return agency


PublicAgency = Annotated[Agency, Depends(public_agency)]


async def optional_principal(
    request: Request, agency: PortalAgency, session: DBSession
) -> Principal | None:
    token = security.session_cookie(request)
    if not token:
        return None
    principal = await identity.resolve_browser_session(session, agency, token)
    if principal is None:
        if await impersonation_views.stale(session, token):
            raise impersonation_views.ImpersonationOver(agency.slug)
        return None
    if principal.extra.get("second_factor") == "setup_required":
        own = request.url.path
        if not (own.startswith(f"/a/{agency.slug}/account") or own.endswith("/logout")):
            raise SecondFactorSetupRequired(agency.slug)
    request.state.portal_principal = principal
    request.state.portal_viewer = await portal.viewer(session, principal)
    if impersonation.is_impersonating(principal):
        request.state.portal_viewer.impersonation = await impersonation_views.banner(
            session, principal
        )
    request.state.portal_home = portal.landing(principal, f"/a/{agency.slug}")
    request.state.portal_clients = portal.clients_home(principal, f"/a/{agency.slug}")
    if impersonation.is_impersonating(principal) and request.url.path.startswith(
        f"/a/{agency.slug}/account/"
    ):
        # Whatever is added under /account/ later (credentials, links, sessions) is the
        # person's own: refused while viewing as them (the page itself hides it all).
        raise Forbidden(impersonation.REFUSED)
    structlog.contextvars.bind_contextvars(
        actor="user", actor_id=str(principal.user_id) if principal.user_id else None
    )
    if impersonation.is_impersonating(principal):
        structlog.contextvars.bind_contextvars(
            impersonator_id=principal.extra.get("impersonator_id")
        )
    return principal


MaybeSignedIn = Annotated[Principal | None, Depends(optional_principal)]


async def signed_in(request: Request, agency: PortalAgency, principal: MaybeSignedIn) -> Principal:
    if principal is None:
        if request.headers.get("hx-request"):
            came_from = urlsplit(request.headers.get("hx-current-url", ""))
        elif request.method != "GET":
            came_from = urlsplit(request.headers.get("referer", ""))
        else:
            came_from = urlsplit(str(request.url))
        next_url = came_from.path + (f"?{came_from.query}" if came_from.query else "")
        raise LoginRequired(agency.slug, security.safe_next(next_url, agency.slug))
    return principal


SignedIn = Annotated[Principal, Depends(signed_in)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """Portal pages: the signed-in person must hold `permission`."""
    return permission_guard(permission, signed_in)


ClientsRead = Annotated[Principal, Depends(require(Permission.CLIENTS_READ))]
ClientsCreate = Annotated[Principal, Depends(require(Permission.CLIENTS_CREATE))]
ClientsUpdate = Annotated[Principal, Depends(require(Permission.CLIENTS_UPDATE))]
ClientsLifecycle = Annotated[Principal, Depends(require(Permission.CLIENTS_LIFECYCLE))]
ClientsImpersonate = Annotated[Principal, Depends(require(Permission.CLIENTS_IMPERSONATE))]
UsersRead = Annotated[Principal, Depends(require(Permission.USERS_READ))]
UsersInvite = Annotated[Principal, Depends(require(Permission.USERS_INVITE))]
AgencyManage = Annotated[Principal, Depends(require(Permission.AGENCY_MANAGE))]


async def not_impersonating(principal: SignedIn) -> None:
    """Account security (password, second factors, passkeys, sessions) is the person's own:
    refused while agency staff view the portal as them."""
    if impersonation.is_impersonating(principal):
        raise Forbidden(impersonation.REFUSED)


NotImpersonating = Depends(not_impersonating)


async def csrf_protect(request: Request, agency: PortalAgency) -> None:
    """Every portal form posts a token that must match the browser's cookies."""
    form = await request.form()
    if not security.origin_allowed(request) or not security.csrf_valid(
        request, agency.slug, form.get(security.CSRF_FIELD)
    ):
        raise CsrfRejected("the form's security token is missing or does not match")


CsrfChecked = Depends(csrf_protect)
