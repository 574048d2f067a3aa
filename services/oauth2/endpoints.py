"""HTTP for the OpenID Connect provider. HTTP only: each handler snapshots the request, calls
a use case of `services.oauth2.service` and turns its outcome into a response.

* `{issuer}` = `{BASE_URL}/a/{slug}`: discovery, JWKS, and `oauth2/` token, userinfo,
  revoke, introspect (machine endpoints, OAuth error bodies);
* `/api/v1/oauth-clients`: the agency registers its relying parties.

The browser pages (`oauth2/authorize`, `consent`, `logout`) are the portal's
(`services.portal.pages.oidc`); what both read the request and answer with is
`services.oauth2.http`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from services.clients.auth import ClientsRead
from services.kit import ids
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.oauth2 import service
from services.oauth2.auth import ClientSolutionsManage, IssuerAgency, OAuthClientsManage
from services.oauth2.http import respond, snapshot
from services.oauth2.schemas import (
    ClientSolutionOut,
    OAuthClientCreate,
    OAuthClientCreated,
    OAuthClientOut,
    OAuthClientUpdate,
)
from services.oauth2.server import issuer_for
from tenants.principal import Principal

router = APIRouter()
issuer = APIRouter(prefix="/a/{slug}", include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["oauth clients"])


def _metadata(content: dict[str, Any]) -> Response:
    return JSONResponse(content, headers={"Cache-Control": "public, max-age=300"})


# ---- the issuer: discovery and keys ------------------------------------------------------------


@issuer.get("/.well-known/openid-configuration", name="oidc_discovery")
async def discovery(agency: IssuerAgency) -> Response:
    return _metadata(service.discovery_document(agency))


@issuer.get("/.well-known/oauth-authorization-server", name="oauth_metadata")
async def oauth_metadata(agency: IssuerAgency) -> Response:
    return _metadata(service.discovery_document(agency))


@issuer.get("/jwks.json", name="oidc_jwks")
async def jwks(agency: IssuerAgency, session: DBSession) -> Response:
    return _metadata(await service.jwks(session, agency))


# ---- machine endpoints ------------------------------------------------------------------------


@issuer.post("/oauth2/token", name="oauth2_token")
async def token(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    return respond(await service.token(session, agency, await snapshot(request, machine=True)))


@issuer.api_route("/oauth2/userinfo", methods=["GET", "POST"], name="oauth2_userinfo")
async def userinfo(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    snap = await snapshot(request, machine=True)
    return respond(await service.userinfo(session, agency, snap))


@issuer.post("/oauth2/revoke", name="oauth2_revoke")
async def revoke(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    snap = await snapshot(request, machine=True)
    return respond(await service.endpoint(session, agency, "revocation", snap))


@issuer.post("/oauth2/introspect", name="oauth2_introspect")
async def introspect(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    snap = await snapshot(request, machine=True)
    return respond(await service.endpoint(session, agency, "introspection", snap))


# ---- relying parties (API) ---------------------------------------------------------------------


def _out(principal: Principal, row: Any) -> OAuthClientOut:
    return OAuthClientOut.of(row, issuer_for(principal.agency_slug or ""))


@api.post(
    "/oauth-clients",
    status_code=201,
    response_model=OAuthClientCreated,
    name="oauth_clients_create",
)
async def create_client(
    body: OAuthClientCreate, principal: OAuthClientsManage, session: DBSession
) -> OAuthClientCreated:
    row, secret = await service.create_client(session, principal, body)
    return OAuthClientCreated(**_out(principal, row).model_dump(), client_secret=secret)


@api.get("/oauth-clients", response_model=list[OAuthClientOut], name="oauth_clients_list")
async def list_clients(principal: OAuthClientsManage, session: DBSession) -> list[OAuthClientOut]:
    return [_out(principal, row) for row in await service.list_clients(session)]


@api.get(
    "/oauth-clients/{oauth_client_id}", response_model=OAuthClientOut, name="oauth_clients_get"
)
async def get_client(
    oauth_client_id: str, principal: OAuthClientsManage, session: DBSession
) -> OAuthClientOut:
    cid = path_id("oac", oauth_client_id, "OAuth client")
    return _out(principal, await service.get_client(session, cid))


@api.patch(
    "/oauth-clients/{oauth_client_id}", response_model=OAuthClientOut, name="oauth_clients_update"
)
async def update_client(
    oauth_client_id: str,
    body: OAuthClientUpdate,
    principal: OAuthClientsManage,
    session: DBSession,
) -> OAuthClientOut:
    cid = path_id("oac", oauth_client_id, "OAuth client")
    return _out(principal, await service.update_client(session, cid, body))


@api.post(
    "/oauth-clients/{oauth_client_id}/secret",
    response_model=OAuthClientCreated,
    name="oauth_clients_rotate_secret",
)
async def rotate_secret(
    oauth_client_id: str, principal: OAuthClientsManage, session: DBSession
) -> OAuthClientCreated:
    cid = path_id("oac", oauth_client_id, "OAuth client")
    row, secret = await service.rotate_client_secret(session, cid)
    return OAuthClientCreated(**_out(principal, row).model_dump(), client_secret=secret)


@api.delete("/oauth-clients/{oauth_client_id}", status_code=204, name="oauth_clients_delete")
async def delete_client(
    oauth_client_id: str, principal: OAuthClientsManage, session: DBSession
) -> Response:
    await service.delete_client(session, path_id("oac", oauth_client_id, "OAuth client"))
    return Response(status_code=204)


# ---- solutions enabled per client (API) ---------------------------------------------------------


@api.get(
    "/clients/{client_id}/solutions",
    response_model=list[ClientSolutionOut],
    name="client_solutions_list",
    tags=["clients"],
)
async def list_client_solutions(
    client_id: str, principal: ClientsRead, session: DBSession
) -> list[ClientSolutionOut]:
    cid = path_id("cli", client_id, "client")
    return [
        ClientSolutionOut(
            solution_id=ids.encode("oac", row.id),
            name=row.name,
            description=row.description,
            enabled_at=enabled_at,
        )
        for row, enabled_at in await service.client_solutions(session, cid)
    ]


@api.put(
    "/clients/{client_id}/solutions/{solution_id}",
    status_code=204,
    name="client_solutions_enable",
    tags=["clients"],
)
async def enable_client_solution(
    client_id: str, solution_id: str, principal: ClientSolutionsManage, session: DBSession
) -> Response:
    """Enable a solution (a relying party registered with `solution: true`) for a client: its
    people see it in the portal and may sign in to it. Idempotent."""
    cid = path_id("cli", client_id, "client")
    sid = path_id("oac", solution_id, "solution")
    await service.enable_solution(session, principal, cid, sid)
    return Response(status_code=204)


@api.delete(
    "/clients/{client_id}/solutions/{solution_id}",
    status_code=204,
    name="client_solutions_disable",
    tags=["clients"],
)
async def disable_client_solution(
    client_id: str, solution_id: str, principal: ClientSolutionsManage, session: DBSession
) -> Response:
    cid = path_id("cli", client_id, "client")
    await service.disable_solution(session, cid, path_id("oac", solution_id, "solution"))
    return Response(status_code=204)


# `issuer` (discovery, keys, token, userinfo, revoke, introspect) is mounted by itself, first
# (services/app.py): machine clients call the token endpoint most, and routes are matched in
# order. `router` carries the API; the browser pages are mounted with the portal's.
router.include_router(api)
