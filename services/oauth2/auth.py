"""Declared access for the provider.

* The issuer's machine endpoints (discovery, JWKS, token, userinfo, revocation, introspection)
  work inside the agency the issuer URL names: `IssuerAgency` resolves the slug (an explicit,
  logged unscoped lookup) and puts the session in that tenant. Callers then authenticate as
  relying parties (client credentials) or with an access token, inside that tenant only.
* The browser endpoints (authorize, consent, logout) use the portal's own dependencies.
* Registering relying parties needs the `oauth_clients:manage` permission.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends

from services.agencies import service as agencies
from services.agencies.schemas import SLUG_RE
from services.identity.auth import require
from services.kit.errors import NotFound
from services.kit.web import DBSession
from tenants.context import TenantContext
from tenants.models import Agency, AgencyStatus
from tenants.principal import Principal
from tenants.roles import Permission
from tenants.scoping import set_tenant


async def issuer_agency(slug: str, session: DBSession) -> Agency:
    agency = await agencies.by_public_slug(session, slug) if SLUG_RE.match(slug) else None
    if agency is None or agency.status != AgencyStatus.ACTIVE:
        raise NotFound("no such issuer")
    principal = Principal.system(agency.id, label="openid provider")
    await set_tenant(session, TenantContext.for_agency(agency.id), principal)
    structlog.contextvars.bind_contextvars(agency_id=str(agency.id))
    return agency


IssuerAgency = Annotated[Agency, Depends(issuer_agency)]
OAuthClientsManage = Annotated[Principal, Depends(require(Permission.OAUTH_CLIENTS_MANAGE))]
# Which solutions a client has is the agency's decision: never a client role's.
ClientSolutionsManage = Annotated[Principal, Depends(require(Permission.CLIENTS_SOLUTIONS))]


def _register_api_tokens() -> None:
    from services.identity import auth as identity_auth
    from services.oauth2.service import resolve_api_access_token

    if resolve_api_access_token not in identity_auth.token_resolvers:
        identity_auth.token_resolvers.append(resolve_api_access_token)


_register_api_tokens()
