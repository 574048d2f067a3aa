"""HTTP for the OpenID Connect provider. HTTP only: each handler snapshots the request, calls
a use case of `services.oauth2.service` and turns its outcome into a response.

* `{issuer}` = `{BASE_URL}/a/{slug}`: discovery, JWKS, and `oauth2/` token, userinfo,
  revoke, introspect (machine endpoints, OAuth error bodies);
* `oauth2/authorize`, `oauth2/consent`, `oauth2/logout`: browser pages in the agency's brand
  (portal session, CSRF on every form, branded error pages, never an open redirect);
* `/api/v1/oauth-clients`: the agency registers its relying parties.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from services.identity import impersonation
from services.kit import ids
from services.kit.errors import BadRequest
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.oauth2 import service
from services.oauth2.auth import ClientSolutionsManage, IssuerAgency, OAuthClientsManage
from services.oauth2.schemas import (
    ClientSolutionOut,
    OAuthClientCreate,
    OAuthClientCreated,
    OAuthClientOut,
    OAuthClientUpdate,
)
from services.oauth2.server import HttpSnapshot, ProviderResponse, issuer_for
from services.portal import security
from services.portal.auth import CsrfChecked, MaybeSignedIn, PortalAgency, SignedIn
from services.portal.rendering import error_page, page
from services.portal.routing import PortalRoute
from services.records.auth import ClientsRead
from services.settings import get_settings
from tenants.models import Agency
from tenants.principal import Principal

router = APIRouter()
issuer = APIRouter(prefix="/a/{slug}", include_in_schema=False)
browser = APIRouter(prefix="/a/{slug}/oauth2", route_class=PortalRoute, include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["oauth clients"])

URLENCODED = "application/x-www-form-urlencoded"
FORM_TYPES = (URLENCODED, "multipart/form-data")
MAX_FORM_FIELDS = 1000  # as Starlette's form parser


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body as Starlette's form parser reads it (raw
    bytes as Latin-1, %-escapes as UTF-8), without the streaming parser: token requests are
    small and this is the provider's hottest path."""
    try:
        return parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as exc:
        limit = f"Too many fields. Maximum number of fields is {MAX_FORM_FIELDS}."
        raise BadRequest(limit) from exc


async def snapshot(request: Request, *, machine: bool = False) -> HttpSnapshot:
    """The request as the provider reads it. `machine`: an issuer endpoint (token, userinfo,
    revoke, introspect), whose urlencoded body nothing else has read."""
    form: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "")
    if machine and request.method == "POST" and content_type.startswith(URLENCODED):
        form = _urlencoded(await request.body())
    elif request.method == "POST" and content_type.startswith(FORM_TYPES):
        data = await request.form()
        form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    query = list(request.query_params.multi_items())
    url = get_settings().base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return HttpSnapshot(request.method, url, request.headers, query, form)


def _respond(result: ProviderResponse) -> Response:
    headers = {k: v for k, v in result.headers if k.lower() != "content-type"}
    if isinstance(result.body, dict):
        return Response(
            json.dumps(result.body),
            status_code=result.status,
            headers=headers,
            media_type="application/json",
        )
    return Response(result.body or b"", status_code=result.status, headers=headers)


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
    return _respond(await service.token(session, agency, await snapshot(request, machine=True)))


@issuer.api_route("/oauth2/userinfo", methods=["GET", "POST"], name="oauth2_userinfo")
async def userinfo(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    snap = await snapshot(request, machine=True)
    return _respond(await service.userinfo(session, agency, snap))


@issuer.post("/oauth2/revoke", name="oauth2_revoke")
async def revoke(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    snap = await snapshot(request, machine=True)
    return _respond(await service.endpoint(session, agency, "revocation", snap))


@issuer.post("/oauth2/introspect", name="oauth2_introspect")
async def introspect(request: Request, agency: IssuerAgency, session: DBSession) -> Response:
    snap = await snapshot(request, machine=True)
    return _respond(await service.endpoint(session, agency, "introspection", snap))


# ---- browser: authorize, consent, logout -----------------------------------------------------


def _allow_form_target(response: Response, origin: str | None) -> Response:
    """The consent and logout forms end in a redirect to the relying party: browsers apply
    the page's CSP `form-action` to that redirect, so it names the RP's origin too."""
    csp = response.headers.get("Content-Security-Policy")
    if csp and origin:
        response.headers["Content-Security-Policy"] = csp.replace(
            "form-action 'self'", f"form-action 'self' {origin}"
        )
    return response


# While the person signs in, the pending authorization request waits in a short-lived cookie
# scoped to the agency's oauth2 path; the portal's sign-in page gets a short `next` back to
# `oauth2/resume`. (The request is public data: the same parameters could be in any link.)
PENDING_COOKIE = "sb_oidc_request"
PENDING_MAX_AGE = 900
PENDING_MAX_BYTES = 3500


def _pending_path(slug: str) -> str:
    return f"/a/{slug}/oauth2/"


def _remember_pending(response: Response, slug: str, pairs: list[tuple[str, str]]) -> bool:
    value = base64.urlsafe_b64encode(json.dumps(pairs).encode()).decode()
    if len(value) > PENDING_MAX_BYTES:
        return False
    response.set_cookie(
        PENDING_COOKIE,
        value,
        max_age=PENDING_MAX_AGE,
        path=_pending_path(slug),
        httponly=True,
        samesite="lax",
        secure=get_settings().secure_cookies,
    )
    return True


def _pending(request: Request) -> list[tuple[str, str]] | None:
    raw = request.cookies.get(PENDING_COOKIE, "")
    try:
        pairs = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except (ValueError, TypeError):
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        return None
    return [(k, v) for k, v in pairs]


async def _authorize_response(
    request: Request,
    agency: Agency,
    principal: Principal | None,
    session: DBSession,
    decision: bool | None,
    snap: HttpSnapshot | None = None,
    interstitial: bool = False,
) -> Response:
    if impersonation.is_impersonating(principal):
        # Signing in to an app would hand it the viewed person's identity (tokens, consent).
        return error_page(
            request,
            403,
            title="Not while viewing as someone else",
            message=impersonation.REFUSED_SOLUTIONS,
        )
    outcome = await service.authorize(
        session, agency, principal, snap or await snapshot(request), decision=decision
    )
    if isinstance(outcome, service.Redirect):
        response: Response
        if interstitial:
            # Back from the sign-in form: browsers apply that form page's CSP `form-action`
            # to every redirect the form submission leads to, so a redirect to the app's
            # origin would be blocked. A page that moves on by itself ends the chain here.
            response = page(request, "oauth2/continue.html", {"url": outcome.url})
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
        else:
            response = RedirectResponse(
                outcome.url, status_code=303 if request.method == "POST" else 302
            )
        if PENDING_COOKIE in request.cookies:
            response.delete_cookie(PENDING_COOKIE, path=_pending_path(agency.slug))
        return response
    if isinstance(outcome, service.ErrorPage):
        return error_page(
            request, 400, title="This sign-in link is not valid", message=outcome.message
        )
    if isinstance(outcome, service.NeedsLogin):
        response = RedirectResponse("", status_code=303)
        if _remember_pending(response, agency.slug, outcome.request):
            target = f"/a/{agency.slug}/oauth2/resume"
        else:
            target = service.authorize_path(agency.slug, outcome.request)
        safe = security.safe_next(target, agency.slug)
        query = {"next": safe} if safe else {}
        if outcome.reauthenticate and principal is not None:
            # The form even for a signed-in browser; its session lives on until a new sign-in
            # succeeds (which replaces it): a link from anywhere cannot sign anyone out.
            query["reauth"] = "1"
        response.headers["location"] = f"/a/{agency.slug}/login" + (
            f"?{urlencode(query)}" if query else ""
        )
        return response
    response = page(
        request,
        "oauth2/consent.html",
        {
            "client_name": outcome.client_name,
            "scopes": outcome.scopes,
            "fields": outcome.fields,
        },
    )
    return _allow_form_target(response, outcome.redirect_origin)


@browser.api_route("/authorize", methods=["GET", "POST"], name="oauth2_authorize")
async def authorize(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    return await _authorize_response(request, agency, principal, session, None)


@browser.get("/resume", name="oauth2_resume")
async def resume(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    """Back from the sign-in page: continue the authorization request that was waiting."""
    pairs = _pending(request)
    if not pairs:
        return error_page(
            request,
            400,
            title="This sign-in request has expired",
            message="Go back to the app you came from and start again.",
        )
    url = get_settings().base_url.rstrip("/") + service.authorize_path(agency.slug, pairs)
    snap = HttpSnapshot("GET", url, request.headers, pairs, [])
    return await _authorize_response(
        request, agency, principal, session, None, snap, interstitial=True
    )


@browser.post("/consent", name="oauth2_consent", dependencies=[CsrfChecked])
async def consent(
    request: Request, agency: PortalAgency, principal: SignedIn, session: DBSession
) -> Response:
    form = await request.form()
    decision = form.get("decision") == "allow"
    return await _authorize_response(request, agency, principal, session, decision)


async def _logout_response(
    request: Request,
    agency: Agency,
    principal: Principal | None,
    session: DBSession,
    confirmed: bool,
) -> Response:
    outcome = await service.logout(
        session, agency, principal, await snapshot(request), confirmed=confirmed
    )
    if outcome.error is not None:
        return error_page(
            request, 400, title="This sign-out link is not valid", message=outcome.error
        )
    if outcome.confirm:
        response = page(
            request,
            "oauth2/logout.html",
            {"client_name": outcome.client_name, "fields": outcome.fields},
        )
        origin = None
        if outcome.redirect_uri:
            from services.oauth2.service import _origin

            origin = _origin(outcome.redirect_uri)
        return _allow_form_target(response, origin)
    if outcome.redirect_uri:
        response: Response = RedirectResponse(outcome.redirect_uri, status_code=303)
    else:
        request.state.portal_principal = None
        response = page(request, "oauth2/signed_out.html", {"signed_out": outcome.signed_out})
    if outcome.signed_out:
        security.clear_session_cookie(response, agency.slug)
    return response


@browser.get("/logout", name="oauth2_logout")
async def logout(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    return await _logout_response(request, agency, principal, session, confirmed=False)


@browser.post("/logout", name="oauth2_logout_confirm", dependencies=[CsrfChecked])
async def logout_confirm(
    request: Request, agency: PortalAgency, principal: MaybeSignedIn, session: DBSession
) -> Response:
    return await _logout_response(request, agency, principal, session, confirmed=True)


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
# order. `router` carries the browser pages and the API.
router.include_router(browser)
router.include_router(api)
