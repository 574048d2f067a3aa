"""Declared access for the provider.

* The issuer's machine endpoints (discovery, JWKS, token, userinfo, revocation, introspection)
  work inside the agency the issuer URL names: `IssuerAgency` resolves the slug (an explicit,
  logged unscoped lookup) and puts the session in that tenant. Callers then authenticate as
  relying parties (client credentials) or with an access token, inside that tenant only.
* The browser endpoints (authorize, consent, logout) use the portal's own dependencies.
* Registering relying parties needs the `oauth_clients:manage` permission.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import Depends

from services.agencies import service as agencies
from services.agencies.schemas import SLUG_RE
from services.identity.auth import require
from services.kit.errors import NotFound
from services.kit.web import DBSession
from services.oauth2.cache import FollowerCache, columns_of, row_from
from tenants.context import TenantContext
from tenants.models import Agency, AgencyStatus
from tenants.principal import Principal
from tenants.roles import Permission
from tenants.scoping import set_tenant

# Active agencies by slug (their column values; a fresh `Agency` per request): every token
# request names its issuer. Invalidation: services/oauth2/cache.py.
_issuers: FollowerCache[str, dict[str, Any]] = FollowerCache()


async def _active_agency(session: DBSession, slug: str) -> Agency | None:
    fields = _issuers.get(slug)
    if fields is not None:
        return row_from(Agency, fields)
    generation = _issuers.generation()
    found = await agencies.by_public_slug(session, slug) if SLUG_RE.match(slug) else None
    if found is None or found.status != AgencyStatus.ACTIVE:
        return None
    _issuers.put(slug, columns_of(found), generation)
    return found


async def issuer_agency(slug: str, session: DBSession) -> Agency:
    agency = await _active_agency(session, slug)
    if agency is None:
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
