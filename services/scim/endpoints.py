"""HTTP for SCIM: token management under /api/v1 (problem+json like the rest of the API) and
the SCIM 2.0 service of each agency at /a/{slug}/scim/v2 (RFC 7644: application/scim+json
bodies, SCIM error bodies, never a 5xx for anything a client sends)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    InvalidValueException,
    ListResponse,
    NotFoundException,
    PatchOp,
    ResponseParameters,
    SCIMException,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.kit.errors import SwitchboardError, TenantScopeMissing
from services.kit.schemas import NUL_MESSAGE, has_nul, path_id
from services.kit.web import DBSession
from services.scim import schemas as s
from services.scim import service
from services.scim.auth import ScimCaller, ScimTokensManage
from services.scim.schemas import ScimTokenCreate, ScimTokenCreated, ScimTokenOut

log = structlog.get_logger("switchboard.scim")
SCIM_JSON = "application/scim+json"

# ---- SCIM tokens (agency API) ------------------------------------------------------------

tokens_router = APIRouter(prefix="/api/v1", tags=["scim"])


@tokens_router.post(
    "/scim-tokens", status_code=201, response_model=ScimTokenCreated, name="scim_tokens_create"
)
async def create_scim_token(
    body: ScimTokenCreate, principal: ScimTokensManage, session: DBSession
) -> ScimTokenCreated:
    token, raw = await service.create_token(session, principal, name=body.name)
    return ScimTokenCreated(
        **ScimTokenOut.of(token).model_dump(),
        token=raw,
        base_url=service.base_url(principal.agency_slug or ""),
    )


@tokens_router.get("/scim-tokens", response_model=list[ScimTokenOut], name="scim_tokens_list")
async def list_scim_tokens(principal: ScimTokensManage, session: DBSession) -> list[ScimTokenOut]:
    return [ScimTokenOut.of(t) for t in await service.list_tokens(session)]


@tokens_router.delete("/scim-tokens/{token_id}", status_code=204, name="scim_tokens_revoke")
async def revoke_scim_token(
    token_id: str, principal: ScimTokensManage, session: DBSession
) -> Response:
    await service.revoke_token(session, path_id("sct", token_id, "SCIM token"))
    return Response(status_code=204)


# ---- SCIM responses and errors -------------------------------------------------------------


class ScimResponse(JSONResponse):
    media_type = SCIM_JSON


def scim_error(status: int, detail: str, scim_type: str | None = None) -> ScimResponse:
    body = Error(status=status, scim_type=scim_type or None, detail=detail).model_dump(
        scim_ctx=Context.DEFAULT, exclude_none=True
    )
    return ScimResponse(body, status_code=status)


def _from_switchboard(exc: SwitchboardError) -> ScimResponse:
    if isinstance(exc, TenantScopeMissing):
        log.error("tenancy.scope_missing", detail=exc.detail)
        return scim_error(500, "An internal error occurred.")
    scim_type = {400: "invalidValue", 422: "invalidValue"}.get(exc.status)
    resp = scim_error(exc.status, exc.detail, scim_type)
    resp.headers.update(exc.headers())
    if exc.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="scim"'
    return resp


def _from_validation(exc: ValidationError) -> ScimResponse:
    errors = Error.from_validation_errors(exc)
    first = errors[0] if errors else Error(status=400, detail="invalid request")
    status = first.status or 400
    scim_type = first.scim_type or ("invalidValue" if status == 400 else None)
    return scim_error(status, first.detail or "invalid request", scim_type)


class ScimRoute(APIRoute):
    """Every answer of the SCIM service is SCIM: errors become SCIM error bodies, outside the
    request's unit of work (so the transaction has already been rolled back)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scim_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SCIMException as exc:
                return scim_error(exc.status, exc.detail, exc.scim_type or None)
            except ValidationError as exc:
                return _from_validation(exc)
            except SwitchboardError as exc:
                return _from_switchboard(exc)
            except RequestValidationError:
                return scim_error(400, "the request is not valid", "invalidSyntax")
            except StarletteHTTPException as exc:
                return scim_error(exc.status_code, str(exc.detail))
            except Exception:
                log.exception("scim.unhandled", path=request.url.path)
                return scim_error(500, "An internal error occurred.")

        return scim_handler


scim_router = APIRouter(
    prefix="/a/{slug}/scim/v2", route_class=ScimRoute, include_in_schema=False, tags=["scim"]
)


# ---- request parsing ----------------------------------------------------------------------


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidSyntaxException(detail="the request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise InvalidSyntaxException(detail="the request body must be a JSON object")
    if has_nul(data):  # the one door of every SCIM body, as StrictInput is of the API's
        raise InvalidValueException(detail=f"text {NUL_MESSAGE}")
    return data


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidValueException(detail=f"{name} must be an integer")
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise InvalidValueException(detail=f"{name} must be an integer") from exc
    return max(min(number, 2**31), -(2**31))


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValueException(detail=f"{name} must be a string")
    if has_nul(value):
        raise InvalidValueException(detail=f"{name} {NUL_MESSAGE}")
    return value


def _query(params: dict[str, Any]) -> tuple[service.Query, ResponseParameters[Any] | None]:
    start = _int(params.get("startIndex"), "startIndex")
    count = _int(params.get("count"), "count")
    order = (_text(params.get("sortOrder"), "sortOrder") or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise InvalidValueException(detail="sortOrder is ascending or descending")
    query = service.Query(
        filter=_text(params.get("filter"), "filter"),
        sort_by=_text(params.get("sortBy"), "sortBy") or None,
        descending=order == "descending",
        start_index=max(start or 1, 1),
        count=min(max(count if count is not None else s.DEFAULT_COUNT, 0), s.MAX_RESULTS),
    )
    return query, _response_parameters(params)


def _response_parameters(params: dict[str, Any]) -> ResponseParameters[Any] | None:
    wanted = {
        key: params[key]
        for key in ("attributes", "excludedAttributes")
        if params.get(key) not in (None, "", [])
    }
    if not wanted:
        return None
    return ResponseParameters.model_validate(wanted)


def _single(
    resource: Any,
    ctx: Context,
    params: ResponseParameters[Any] | None = None,
    status: int = 200,
) -> ScimResponse:
    body = resource.model_dump(scim_ctx=ctx, response_parameters=params)
    resp = ScimResponse(body, status_code=status)
    if resource.meta is not None:
        if resource.meta.version:
            resp.headers["ETag"] = resource.meta.version
        if status == 201 and resource.meta.location:
            resp.headers["Location"] = resource.meta.location
    return resp


def _page(
    model: type[Any],
    total: int,
    query: service.Query,
    resources: list[Any],
    params: ResponseParameters[Any] | None,
) -> ScimResponse:
    page = ListResponse[model](  # type: ignore[valid-type]
        total_results=total,
        start_index=query.start_index,
        items_per_page=len(resources),
        resources=resources,
    )
    return ScimResponse(
        page.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=params)
    )


def _resource_id(prefix: str, value: str, what: str) -> Any:
    from services.kit import ids

    decoded = ids.decode(prefix, value)
    if decoded is None:
        raise NotFoundException(detail=f"no such {what}")
    return decoded


# ---- discovery ----------------------------------------------------------------------------


@scim_router.get("/ServiceProviderConfig", name="scim_service_provider_config")
async def service_provider_config(principal: ScimCaller) -> Response:
    config = s.service_provider_config()
    return ScimResponse(config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _listing(items: list[Any]) -> ScimResponse:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": [i.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for i in items],
    }
    return ScimResponse(body)


@scim_router.get("/ResourceTypes", name="scim_resource_types")
async def resource_types(principal: ScimCaller) -> Response:
    return _listing(list(s.RESOURCE_TYPES.values()))


@scim_router.get("/ResourceTypes/{type_id}", name="scim_resource_type")
async def resource_type(type_id: str, principal: ScimCaller) -> Response:
    found = s.RESOURCE_TYPES.get(type_id)
    if found is None:
        raise NotFoundException(detail=f"no resource type {type_id!r}")
    return ScimResponse(found.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


@scim_router.get("/Schemas", name="scim_schemas")
async def schemas(principal: ScimCaller) -> Response:
    return _listing(list(s.SCHEMAS.values()))


@scim_router.get("/Schemas/{schema_id}", name="scim_schema")
async def schema(schema_id: str, principal: ScimCaller) -> Response:
    found = s.SCHEMAS.get(schema_id)
    if found is None:
        raise NotFoundException(detail=f"no schema {schema_id!r}")
    return ScimResponse(found.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


# ---- users --------------------------------------------------------------------------------


def _user(state: service.UserState, principal: Any) -> s.User:
    return service.user_resource(state, principal.agency_slug or "")


@scim_router.get("/Users", name="scim_users_list")
async def list_users(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    query, params = _query(dict(request.query_params))
    total, states = await service.list_users(session, query)
    return _page(s.User, total, query, [_user(x, principal) for x in states], params)


@scim_router.post("/Users/.search", name="scim_users_search")
async def search_users(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    query, params = _query(await _json_body(request))
    total, states = await service.list_users(session, query)
    return _page(s.User, total, query, [_user(x, principal) for x in states], params)


def _default_active(body: dict[str, Any], value: bool) -> dict[str, Any]:
    """`active` is required by the schema (a person always has a status), but a directory
    that leaves it out gets the obvious default instead of an error."""
    if not any(k.lower() == "active" for k in body):
        body["active"] = value
    return body


@scim_router.post("/Users", name="scim_users_create")
async def create_user(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    resource = s.User.model_validate(
        _default_active(await _json_body(request), True),
        scim_ctx=Context.RESOURCE_CREATION_REQUEST,
        scim_policy=s.POLICY,
    )
    state = await service.create_user(session, principal, resource)
    params = _response_parameters(dict(request.query_params))
    return _single(_user(state, principal), Context.RESOURCE_CREATION_RESPONSE, params, 201)


@scim_router.get("/Users/{user_id}", name="scim_users_get")
async def get_user(
    user_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    state = await service.get_user(session, _resource_id("usr", user_id, "user"))
    params = _response_parameters(dict(request.query_params))
    return _single(_user(state, principal), Context.RESOURCE_QUERY_RESPONSE, params)


@scim_router.put("/Users/{user_id}", name="scim_users_replace")
async def replace_user(
    user_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    uid = _resource_id("usr", user_id, "user")
    body = await _json_body(request)
    current = _user(await service.get_user(session, uid), principal)
    resource = s.User.model_validate(
        _default_active(body, bool(current.active)),
        scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST,
        scim_policy=s.POLICY,
    )
    service.check_version(current, request.headers.get("if-match"))
    state = await service.replace_user(session, principal, uid, resource)
    params = _response_parameters(dict(request.query_params))
    return _single(_user(state, principal), Context.RESOURCE_REPLACEMENT_RESPONSE, params)


@scim_router.patch("/Users/{user_id}", name="scim_users_patch")
async def patch_user(
    user_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    uid = _resource_id("usr", user_id, "user")
    patch = PatchOp[s.User].model_validate(
        await _json_body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=s.POLICY
    )
    state = await service.patch_user(
        session, principal, uid, patch, request.headers.get("if-match")
    )
    params = _response_parameters(dict(request.query_params))
    return _single(_user(state, principal), Context.RESOURCE_PATCH_RESPONSE, params)


@scim_router.delete("/Users/{user_id}", name="scim_users_delete")
async def delete_user(
    user_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    uid = _resource_id("usr", user_id, "user")
    current = _user(await service.get_user(session, uid), principal)
    service.check_version(current, request.headers.get("if-match"))
    await service.delete_user(session, principal, uid)
    return Response(status_code=204)


# ---- groups -------------------------------------------------------------------------------


def _group(state: service.GroupState, principal: Any) -> s.Group:
    return service.group_resource(state, principal.agency_slug or "")


@scim_router.get("/Groups", name="scim_groups_list")
async def list_groups(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    query, params = _query(dict(request.query_params))
    total, states = await service.list_groups(session, query)
    return _page(s.Group, total, query, [_group(x, principal) for x in states], params)


@scim_router.post("/Groups/.search", name="scim_groups_search")
async def search_groups(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    query, params = _query(await _json_body(request))
    total, states = await service.list_groups(session, query)
    return _page(s.Group, total, query, [_group(x, principal) for x in states], params)


@scim_router.post("/Groups", name="scim_groups_create")
async def create_group(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    resource = s.Group.model_validate(
        await _json_body(request), scim_ctx=Context.RESOURCE_CREATION_REQUEST, scim_policy=s.POLICY
    )
    state = await service.create_group(session, principal, resource)
    params = _response_parameters(dict(request.query_params))
    return _single(_group(state, principal), Context.RESOURCE_CREATION_RESPONSE, params, 201)


@scim_router.get("/Groups/{group_id}", name="scim_groups_get")
async def get_group(
    group_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    state = await service.get_group(session, _resource_id("grp", group_id, "group"))
    params = _response_parameters(dict(request.query_params))
    return _single(_group(state, principal), Context.RESOURCE_QUERY_RESPONSE, params)


@scim_router.put("/Groups/{group_id}", name="scim_groups_replace")
async def replace_group(
    group_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    gid = _resource_id("grp", group_id, "group")
    resource = s.Group.model_validate(
        await _json_body(request),
        scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST,
        scim_policy=s.POLICY,
    )
    current = _group(await service.get_group(session, gid), principal)
    service.check_version(current, request.headers.get("if-match"))
    state = await service.replace_group(session, principal, gid, resource)
    params = _response_parameters(dict(request.query_params))
    return _single(_group(state, principal), Context.RESOURCE_REPLACEMENT_RESPONSE, params)


@scim_router.patch("/Groups/{group_id}", name="scim_groups_patch")
async def patch_group(
    group_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    gid = _resource_id("grp", group_id, "group")
    patch = PatchOp[s.Group].model_validate(
        await _json_body(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=s.POLICY
    )
    state = await service.patch_group(
        session, principal, gid, patch, request.headers.get("if-match")
    )
    params = _response_parameters(dict(request.query_params))
    return _single(_group(state, principal), Context.RESOURCE_PATCH_RESPONSE, params)


@scim_router.delete("/Groups/{group_id}", name="scim_groups_delete")
async def delete_group(
    group_id: str, request: Request, principal: ScimCaller, session: DBSession
) -> Response:
    gid = _resource_id("grp", group_id, "group")
    current = _group(await service.get_group(session, gid), principal)
    service.check_version(current, request.headers.get("if-match"))
    await service.delete_group(session, principal, gid)
    return Response(status_code=204)


# ---- the rest -----------------------------------------------------------------------------


@scim_router.post("/.search", name="scim_search_all")
async def search_all(request: Request, principal: ScimCaller, session: DBSession) -> Response:
    """Search Users and Groups at once: Users first, then Groups."""
    query, params = _query(await _json_body(request))
    total, states = await service.search_all(session, query)
    resources = [
        (_user(x, principal) if isinstance(x, service.UserState) else _group(x, principal))
        for x in states
    ]
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": query.start_index,
        "itemsPerPage": len(resources),
        "Resources": [
            r.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=params)
            for r in resources
        ],
    }
    return ScimResponse(body)


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@scim_router.api_route("/{rest:path}", methods=_METHODS, name="scim_not_found")
async def not_found(rest: str, request: Request) -> Response:
    """Nothing lives here; a known address asked with the wrong method is a 405."""
    path = request.url.path
    for route in scim_router.routes:
        if not isinstance(route, APIRoute) or route.path.endswith("/{rest:path}"):
            continue
        if route.path_regex.match(path) and request.method not in (route.methods or ()):
            return scim_error(405, f"{request.method} is not allowed here")
    return scim_error(404, f"no such endpoint: /{rest}")


router = APIRouter()
router.include_router(tokens_router)
router.include_router(scim_router)
