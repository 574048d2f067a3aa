"""HTTP for agencies: /api/v1/agencies (platform operator) and /api/v1/agency (your own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.agencies import service
from services.agencies.auth import AgencyManage, AgencyRead, Operator
from services.agencies.schemas import (
    AgencyCreate,
    AgencyCreated,
    AgencyOut,
    AgencyPage,
    AgencyUpdate,
    Branding,
)
from services.identity.auth import AnyPrincipal
from services.kit import ids
from services.kit.schemas import DEFAULT_LIMIT, MAX_LIMIT, decode_keyset, paginate, path_id
from services.kit.web import DBSession

router = APIRouter(tags=["agencies"])


@router.post("/agencies", status_code=201, response_model=AgencyCreated, name="agencies_create")
async def create_agency(
    body: AgencyCreate, principal: Operator, session: DBSession
) -> AgencyCreated:
    made = await service.onboard(session, body)
    return AgencyCreated(
        agency=AgencyOut.of(made.agency),
        owner_user_id=ids.encode("usr", made.owner.id),
        api_key=made.api_key,
    )


@router.get("/agencies", response_model=AgencyPage, name="agencies_list")
async def list_agencies(
    principal: Operator,
    session: DBSession,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> AgencyPage:
    rows = await service.operator_page(session, after=decode_keyset(cursor), limit=limit + 1)
    page, nxt = paginate(rows, limit, lambda a: a.created_at)
    return AgencyPage(items=[AgencyOut.of(a) for a in page], next_cursor=nxt)


@router.get("/agencies/{agency_id}", response_model=AgencyOut, name="agencies_get")
async def get_agency(agency_id: str, principal: AnyPrincipal, session: DBSession) -> AgencyOut:
    aid = path_id("agy", agency_id, "agency")
    return AgencyOut.of(await service.get(session, principal, aid))


@router.patch("/agencies/{agency_id}", response_model=AgencyOut, name="agencies_update")
async def update_agency(
    agency_id: str, body: AgencyUpdate, principal: Operator, session: DBSession
) -> AgencyOut:
    return AgencyOut.of(
        await service.operator_update(session, path_id("agy", agency_id, "agency"), body)
    )


@router.get("/agency", response_model=AgencyOut, name="agency_get_own")
async def get_own_agency(principal: AgencyRead, session: DBSession) -> AgencyOut:
    return AgencyOut.of(await service.get(session, principal, principal.agency_id))


@router.patch("/agency", response_model=AgencyOut, name="agency_update_branding")
async def update_own_agency(
    body: Branding, principal: AgencyManage, session: DBSession
) -> AgencyOut:
    return AgencyOut.of(await service.update_branding(session, principal.agency_id, body))
