"""The client records: the list (search, stage filter, sort, pages), creating one, its page
(history, lifecycle), editing it, moving it through the lifecycle."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.clients import service as clients_service
from services.kit import ids
from services.kit.errors import InvalidCursor, InvalidTransition, ValidationFailed
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.portal import forms, security
from services.portal import service as portal
from services.portal.auth import (
    ClientsCreate,
    ClientsLifecycle,
    ClientsRead,
    ClientsUpdate,
    CsrfChecked,
    PortalAgency,
)
from services.portal.forms import QueryText
from services.portal.rendering import page
from services.portal.routing import FormRejected, PortalRoute
from tenants.models import LifecycleStage
from tenants.principal import Principal
from tenants.roles import Permission

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


def _client_id(public_id: str) -> Any:
    return path_id("cli", public_id, "client")


@router.get("/clients", name="portal_clients")
async def clients_list(
    request: Request,
    agency: PortalAgency,
    principal: ClientsRead,
    session: DBSession,
    q: QueryText = "",
    stage: QueryText = "",
    sort: QueryText = "name",
    cursor: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    try:
        stage_filter = LifecycleStage(stage) if stage else None
    except ValueError:
        stage_filter = None
    sort_key = sort if sort in portal.SORTS else "name"
    try:
        listing = await portal.client_list(
            session,
            q=q.strip() or None,
            stage=stage_filter,
            sort=portal.SORTS[sort_key],
            cursor=cursor or None,
        )
    except InvalidCursor:  # a tampered or stale cursor: start from the first page
        listing = await portal.client_list(
            session,
            q=q.strip() or None,
            stage=stage_filter,
            sort=portal.SORTS[sort_key],
            cursor=None,
        )
        cursor = ""
    context = {
        "nav": "clients",
        "listing": listing,
        "q": q.strip(),
        "stage": stage_filter.value if stage_filter else "",
        "sort": sort_key,
        "cursor": cursor,
    }
    partial = request.headers.get("hx-request") and request.headers.get("hx-target") == "results"
    response = page(request, "clients/_results.html" if partial else "clients/list.html", context)
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


def _client_form(
    request: Request,
    *,
    principal: Principal,
    values: dict[str, Any],
    errors: dict[str, str],
    staff: list[portal.Person],
    client: portal.ClientDetail | None = None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "clients/form.html",
        {
            "nav": "clients",
            "values": values,
            "errors": errors,
            "staff_choices": staff,
            "days": forms.DAYS,
            "detail": client,
            "can_assign": principal.can(Permission.CLIENTS_ASSIGN),
        },
        status=status,
    )


@router.get("/clients/new", name="portal_client_new")
async def client_new(request: Request, principal: ClientsCreate, session: DBSession) -> Response:
    values = forms.blank_client_values()
    return _client_form(
        request,
        principal=principal,
        values=values,
        errors={},
        staff=await portal.staff_choices(session, principal),
    )


@router.post("/clients", name="portal_client_create", dependencies=[CsrfChecked])
async def client_create(
    request: Request, agency: PortalAgency, principal: ClientsCreate, session: DBSession
) -> Response:
    values = forms.client_values(await request.form())
    can_assign = principal.can(Permission.CLIENTS_ASSIGN)
    try:
        view = await clients_service.create(
            session, principal, forms.to_client_create(values, can_assign=can_assign)
        )
    except forms.FormErrors as exc:
        errors = exc.errors
    except ValidationFailed as exc:
        errors = forms.error_of(exc)
    else:
        return security.see_other(
            f"/a/{agency.slug}/clients/{ids.encode('cli', view.client.id)}",
            agency.slug,
            "client_created",
        )
    staff = await portal.staff_choices(session, principal)
    raise FormRejected(
        _client_form(
            request, principal=principal, values=values, errors=errors, staff=staff, status=422
        )
    )


@router.get("/clients/{client_id}", name="portal_client")
async def client_detail(
    request: Request, client_id: str, principal: ClientsRead, session: DBSession
) -> Response:
    detail = await portal.client_detail(session, principal, _client_id(client_id))
    return page(request, "clients/detail.html", {"nav": "clients", "detail": detail, "error": None})


@router.get("/clients/{client_id}/edit", name="portal_client_edit")
async def client_edit(
    request: Request, client_id: str, principal: ClientsUpdate, session: DBSession
) -> Response:
    detail = await portal.client_detail(session, principal, _client_id(client_id))
    values = forms.client_values_of(detail.client, [p.id for p in detail.staff])
    return _client_form(
        request,
        principal=principal,
        values=values,
        errors={},
        client=detail,
        staff=await portal.staff_choices(session, principal),
    )


@router.post("/clients/{client_id}/edit", name="portal_client_update", dependencies=[CsrfChecked])
async def client_update(
    request: Request,
    agency: PortalAgency,
    client_id: str,
    principal: ClientsUpdate,
    session: DBSession,
) -> Response:
    cid = _client_id(client_id)
    detail = await portal.client_detail(session, principal, cid)  # 404 before anything else
    values = forms.client_values(await request.form())
    can_assign = principal.can(Permission.CLIENTS_ASSIGN)
    try:
        await clients_service.update(
            session, principal, cid, forms.to_client_update(values, can_assign=can_assign)
        )
    except forms.FormErrors as exc:
        errors = exc.errors
    except ValidationFailed as exc:
        errors = forms.error_of(exc)
    else:
        return security.see_other(
            f"/a/{agency.slug}/clients/{detail.id}", agency.slug, "client_updated"
        )
    staff = await portal.staff_choices(session, principal)
    raise FormRejected(
        _client_form(
            request,
            principal=principal,
            values=values,
            errors=errors,
            client=detail,
            staff=staff,
            status=422,
        )
    )


@router.post(
    "/clients/{client_id}/lifecycle", name="portal_client_lifecycle", dependencies=[CsrfChecked]
)
async def client_lifecycle(
    request: Request,
    agency: PortalAgency,
    client_id: str,
    principal: ClientsLifecycle,
    session: DBSession,
) -> Response:
    cid = _client_id(client_id)
    form = await request.form()
    reason = forms._text(form, "reason")[:500] or None
    try:
        stage = LifecycleStage(forms._text(form, "stage"))
    except ValueError:
        stage = None
    error = None
    if stage is None:
        await clients_service.get(session, cid)  # an unknown client stays a 404
        error, status = "Choose one of the stages offered.", 422
    else:
        try:
            await clients_service.change_lifecycle(session, cid, stage, reason)
        except InvalidTransition as exc:
            error, status = forms.error_of(exc)["stage"], 409
    if error is None:
        return security.see_other(
            f"/a/{agency.slug}/clients/{client_id}", agency.slug, "lifecycle_changed"
        )
    detail = await portal.client_detail(session, principal, cid)
    raise FormRejected(
        page(
            request,
            "clients/detail.html",
            {"nav": "clients", "detail": detail, "error": error},
            status=status,
        )
    )
