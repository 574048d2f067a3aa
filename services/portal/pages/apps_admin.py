"""The console for the agency's registered apps (relying parties) and the solutions it sells:
register an app, edit it, issue a new secret, delete it, and choose the clients a solution
is enabled for. The same rules as `/api/v1/oauth-clients` (the same input schemas and
service); a secret is shown once, on the page that follows its creation, and never again.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.kit import ids
from services.kit.errors import SwitchboardError
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.oauth2 import service as oauth2
from services.oauth2.models import ClientType, OAuthClient
from services.oauth2.schemas import (
    DEFAULT_SCOPES,
    USER_SCOPES,
    OAuthClientCreate,
    OAuthClientUpdate,
    describe_scope,
)
from services.oauth2.server import issuer_for
from services.portal import forms, security
from services.portal import service as portal
from services.portal.auth import CsrfChecked, PortalAgency, require
from services.portal.rendering import page
from services.portal.routing import FormRejected, PortalRoute
from tenants.principal import Principal
from tenants.roles import Permission

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)

AppsManage = Annotated[Principal, Depends(require(Permission.OAUTH_CLIENTS_MANAGE))]
SolutionsEnable = Annotated[Principal, Depends(require(Permission.CLIENTS_SOLUTIONS))]

TEXT_FIELDS = ("name", "description", "initiate_login_uri", "backchannel_logout_uri")
LIST_FIELDS = ("redirect_uris", "post_logout_redirect_uris")
FLAGS = ("first_party", "solution", "backchannel_logout_session_required")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _values_of(row: OAuthClient) -> dict[str, Any]:
    return {
        "name": row.name,
        "description": row.description or "",
        "initiate_login_uri": row.initiate_login_uri or "",
        "backchannel_logout_uri": row.backchannel_logout_uri or "",
        "backchannel_logout_session_required": row.backchannel_logout_session_required,
        "redirect_uris": "\n".join(row.redirect_uris),
        "post_logout_redirect_uris": "\n".join(row.post_logout_redirect_uris),
        "first_party": row.first_party,
        "solution": row.solution,
        "type": ClientType(row.client_type).value,
        "scopes": list(row.allowed_scopes),
    }


async def _form_values(request: Request) -> dict[str, Any]:
    form = await request.form()
    values: dict[str, Any] = {k: forms._text(form, k) for k in (*TEXT_FIELDS, *LIST_FIELDS)}
    for flag in FLAGS:
        values[flag] = form.get(flag) == "on"
    values["type"] = forms._text(form, "type") or ClientType.CONFIDENTIAL.value
    values["scopes"] = [s for s in form.getlist("scopes") if isinstance(s, str)]
    return values


def _input(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "description": values["description"] or None,
        "initiate_login_uri": values["initiate_login_uri"] or None,
        "backchannel_logout_uri": values["backchannel_logout_uri"] or None,
        "backchannel_logout_session_required": values["backchannel_logout_session_required"],
        "redirect_uris": _lines(values["redirect_uris"]),
        "post_logout_redirect_uris": _lines(values["post_logout_redirect_uris"]),
        "first_party": values["first_party"],
        "solution": values["solution"],
        "allowed_scopes": values["scopes"] or list(DEFAULT_SCOPES),
    }


def _scope_choices() -> list[tuple[str, str]]:
    return [(s, describe_scope(s)) for s in sorted(USER_SCOPES)]


def _form_page(
    request: Request,
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    app: dict[str, Any] | None = None,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> Response:
    return page(
        request,
        "apps/form.html" if app is None else "apps/detail.html",
        {
            "nav": "apps_admin",
            "values": values,
            "errors": errors,
            "app": app,
            "scope_choices": _scope_choices(),
            "secret": None,
            **(extra or {}),
        },
        status=status,
    )


def _rejected(request: Request, exc: SwitchboardError | forms.FormErrors, **kw: Any) -> Response:
    if isinstance(exc, forms.FormErrors):
        errors = exc.errors
    else:
        field = str(exc.extra.get("field") or "name")
        errors = {field: exc.detail}
    return _form_page(request, kw.pop("values"), errors, status=422, **kw)


async def _app_context(session: AsyncSession, agency_slug: str, row: OAuthClient) -> dict[str, Any]:
    clients = await portal.solution_clients(session, row.id)
    return {
        "id": ids.encode("oac", row.id),
        "name": row.name,
        "type": ClientType(row.client_type).value,
        "secret_hint": row.secret_hint,
        "issuer": issuer_for(agency_slug),
        "solution": row.solution,
        "clients": [{"id": c.id, "name": c.name, "enabled": c.enabled} for c in clients],
    }


async def _load(session: AsyncSession, app_id: str) -> OAuthClient:
    return await oauth2.get_client(session, path_id("oac", app_id, "app"))


# ---- list and register ---------------------------------------------------------------------------


@router.get("/settings/apps", name="portal_apps_admin")
async def apps_list(request: Request, principal: AppsManage, session: DBSession) -> Response:
    rows = await oauth2.list_clients(session)
    counts = await portal.solution_client_counts(session)
    apps = [
        {
            "id": ids.encode("oac", r.id),
            "name": r.name,
            "type": ClientType(r.client_type).value,
            "solution": r.solution,
            "first_party": r.first_party,
            "clients": counts.get(r.id, 0),
            "launchable": bool(r.initiate_login_uri),
        }
        for r in rows
    ]
    return page(request, "apps/list.html", {"nav": "apps_admin", "apps": apps})


@router.get("/settings/apps/new", name="portal_apps_new")
async def apps_new(request: Request, principal: AppsManage) -> Response:
    values = {
        **{k: "" for k in (*TEXT_FIELDS, *LIST_FIELDS)},
        "first_party": True,
        "solution": True,
        "type": ClientType.CONFIDENTIAL.value,
        "scopes": list(DEFAULT_SCOPES),
    }
    return _form_page(request, values, {})


@router.post("/settings/apps", name="portal_apps_create", dependencies=[CsrfChecked])
async def apps_create(
    request: Request, agency: PortalAgency, principal: AppsManage, session: DBSession
) -> Response:
    values = await _form_values(request)
    try:
        body = forms.validate(OAuthClientCreate, {**_input(values), "type": values["type"]})
        row, secret = await oauth2.create_client(session, principal, body)
    except (forms.FormErrors, SwitchboardError) as exc:
        raise FormRejected(_rejected(request, exc, values=values)) from None
    app = await _app_context(session, agency.slug, row)
    return _form_page(request, _values_of(row), {}, app=app, extra={"secret": secret})


# ---- one app -------------------------------------------------------------------------------------


@router.get("/settings/apps/{app_id}", name="portal_apps_detail")
async def apps_detail(
    app_id: str, request: Request, agency: PortalAgency, principal: AppsManage, session: DBSession
) -> Response:
    row = await _load(session, app_id)
    app = await _app_context(session, agency.slug, row)
    return _form_page(request, _values_of(row), {}, app=app)


@router.post("/settings/apps/{app_id}", name="portal_apps_update", dependencies=[CsrfChecked])
async def apps_update(
    app_id: str, request: Request, agency: PortalAgency, principal: AppsManage, session: DBSession
) -> Response:
    row = await _load(session, app_id)
    values = await _form_values(request)
    values["type"] = ClientType(row.client_type).value  # fixed at registration
    try:
        body = forms.validate(OAuthClientUpdate, _input(values))
        row = await oauth2.update_client(session, row.id, body)
    except (forms.FormErrors, SwitchboardError) as exc:
        app = await _app_context(session, agency.slug, row)
        raise FormRejected(_rejected(request, exc, values=values, app=app)) from None
    return security.see_other(f"/a/{agency.slug}/settings/apps/{app_id}", agency.slug, "app_saved")


@router.post(
    "/settings/apps/{app_id}/clients", name="portal_apps_clients", dependencies=[CsrfChecked]
)
async def apps_clients(
    app_id: str,
    request: Request,
    agency: PortalAgency,
    principal: AppsManage,
    can_enable: SolutionsEnable,
    session: DBSession,
) -> Response:
    """Enable the solution for exactly the ticked clients (and disable it for the others)."""
    row = await _load(session, app_id)
    form = await request.form()
    wanted = {
        cid
        for raw in form.getlist("client_ids")
        if isinstance(raw, str) and (cid := ids.decode("cli", raw)) is not None
    }
    enabled = await portal.solution_client_ids(session, row.id)
    try:
        for cid in sorted(wanted - enabled):
            await oauth2.enable_solution(session, principal, cid, row.id)
        for cid in sorted(enabled - wanted):
            await oauth2.disable_solution(session, cid, row.id)
    except SwitchboardError as exc:
        app = await _app_context(session, agency.slug, row)
        raise FormRejected(
            _form_page(request, _values_of(row), {"clients": exc.detail}, app=app, status=422)
        ) from None
    url = f"/a/{agency.slug}/settings/apps/{app_id}"
    return security.see_other(url, agency.slug, "app_clients_saved")


@router.post(
    "/settings/apps/{app_id}/secret", name="portal_apps_secret", dependencies=[CsrfChecked]
)
async def apps_secret(
    app_id: str, request: Request, agency: PortalAgency, principal: AppsManage, session: DBSession
) -> Response:
    row = await _load(session, app_id)
    try:
        row, secret = await oauth2.rotate_client_secret(session, row.id)
    except SwitchboardError as exc:
        app = await _app_context(session, agency.slug, row)
        raise FormRejected(
            _form_page(request, _values_of(row), {"secret": exc.detail}, app=app, status=422)
        ) from None
    app = await _app_context(session, agency.slug, row)
    return _form_page(request, _values_of(row), {}, app=app, extra={"secret": secret})


@router.post(
    "/settings/apps/{app_id}/delete", name="portal_apps_delete", dependencies=[CsrfChecked]
)
async def apps_delete(
    app_id: str, agency: PortalAgency, principal: AppsManage, session: DBSession
) -> Response:
    row = await _load(session, app_id)
    await oauth2.delete_client(session, row.id)
    return security.see_other(f"/a/{agency.slug}/settings/apps", agency.slug, "app_deleted")
