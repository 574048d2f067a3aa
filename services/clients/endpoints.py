"""HTTP for the client record: /api/v1/clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.clients import service
from services.clients.auth import (
    ClientsCreate,
    ClientsDelete,
    ClientsLifecycle,
    ClientsRead,
    ClientsUpdate,
)
from services.clients.schemas import (
    ClientCreate,
    ClientOut,
    ClientPage,
    ClientSort,
    ClientUpdate,
    LifecycleChange,
)
from services.kit.schemas import DEFAULT_LIMIT, MAX_LIMIT, Text, path_id
from services.kit.web import DBSession, json_response
from tenants.models import LifecycleStage

router = APIRouter(prefix="/clients", tags=["clients"])


def _out(view: service.ClientView) -> ClientOut:
    return ClientOut.of(view.client, view.staff)


@router.post("", status_code=201, response_model=ClientOut, name="clients_create")
async def create_client(
    body: ClientCreate,
    principal: ClientsCreate,
    session: DBSession,
) -> ClientOut:
    return _out(await service.create(session, principal, body))


@router.get("", response_model=ClientPage, name="clients_list")
async def list_clients(
    principal: ClientsRead,
    session: DBSession,
    q: Annotated[
        Text | None, Query(max_length=200, description="search names, e-mail, phone, city")
    ] = None,
    lifecycle_stage: LifecycleStage | None = None,
    sort: ClientSort = ClientSort.NEWEST,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ClientPage:
    views, next_cursor = await service.page(
        session, q=q, stage=lifecycle_stage, sort=sort, cursor=cursor, limit=limit
    )
    return ClientPage(items=[_out(v) for v in views], next_cursor=next_cursor)


@router.get("/{client_id}", response_model=ClientOut, name="clients_get")
async def get_client(client_id: str, principal: ClientsRead) -> Response:
    row, staff = await service.read(principal.tenant(), path_id("cli", client_id, "client"))
    return json_response(ClientOut.of_row(row, staff))


@router.patch("/{client_id}", response_model=ClientOut, name="clients_update")
async def update_client(
    client_id: str,
    body: ClientUpdate,
    principal: ClientsUpdate,
    session: DBSession,
) -> ClientOut:
    cid = path_id("cli", client_id, "client")
    return _out(await service.update(session, principal, cid, body))


@router.post("/{client_id}/lifecycle", response_model=ClientOut, name="clients_change_lifecycle")
async def change_lifecycle(
    client_id: str,
    body: LifecycleChange,
    principal: ClientsLifecycle,
    session: DBSession,
) -> ClientOut:
    cid = path_id("cli", client_id, "client")
    return _out(await service.change_lifecycle(session, cid, body.stage, body.reason))


@router.delete("/{client_id}", status_code=204, name="clients_delete")
async def delete_client(client_id: str, principal: ClientsDelete, session: DBSession) -> Response:
    await service.delete(session, path_id("cli", client_id, "client"))
    return Response(status_code=204)
