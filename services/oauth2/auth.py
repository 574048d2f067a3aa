"""Declared access for the provider.

* The issuer's machine endpoints (discovery, JWKS, token, userinfo, revocation, introspection)
  work inside the agency the issuer URL names: `IssuerAgency` resolves the slug (the shared
  `agencies.auth.agency_in_path`) and puts the session in that tenant. Callers then
  authenticate as relying parties (client credentials) or with an access token, inside that
  tenant only.
* The browser endpoints (authorize, consent, logout) use the portal's own dependencies.
* Registering relying parties needs the `oauth_clients:manage` permission.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.agencies.auth import agency_in_path
from services.identity.auth import require
from services.kit.web import DBSession
from tenants.context import TenantContext
from tenants.models import Agency
from tenants.principal import Principal
from tenants.roles import Permission
from tenants.scoping import set_tenant

_NamedIssuer = Annotated[Agency, Depends(agency_in_path("no such issuer"))]


async def issuer_agency(agency: _NamedIssuer, session: DBSession) -> Agency:
    principal = Principal.system(agency.id, label="openid provider")
    await set_tenant(session, TenantContext.for_agency(agency.id), principal)
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
