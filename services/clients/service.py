"""Use cases of the client record: create, read, list, update, lifecycle, delete."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.clients import repository as repo
from services.clients.lifecycle import LIFECYCLE_TRANSITIONS
from services.clients.schemas import ClientCreate, ClientSort, ClientUpdate, normalize_phone
from services.kit import ids
from services.kit.errors import Forbidden, InvalidTransition, NotFound, ValidationFailed
from services.kit.schemas import decode_keyset, paginate, parse_aware_datetime, text_key
from services.kit.types import utcnow
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Client, LifecycleStage
from tenants.principal import Principal
from tenants.reads import Row
from tenants.roles import Permission, Role


@dataclass
class ClientView:
    client: Client
    staff: list[uuid.UUID]


async def _staff_ids(session: AsyncSession, raw: list[str]) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    for i, public in enumerate(raw):
        value = ids.decode("usr", public)
        if value is None:
            raise ValidationFailed(f"assigned_staff[{i}] is not a user id", field="assigned_staff")
        if value not in out:
            out.append(value)
    valid = await repo.agency_team_ids(session, out)
    missing = [ids.encode("usr", u) for u in out if u not in valid]
    if missing:
        raise ValidationFailed(
            f"not agency team members: {', '.join(missing)}", field="assigned_staff"
        )
    return out


def _phone(data: ClientCreate | ClientUpdate) -> str | None:
    try:
        return data.normalized_phone()
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="phone") from exc


async def create(session: AsyncSession, principal: Principal, data: ClientCreate) -> ClientView:
    assert principal.agency_id is not None
    if principal.is_client_scoped and principal.role is not Role.AGENCY_STAFF:
        raise Forbidden("client users cannot create clients")
    staff: list[uuid.UUID] = []
    if data.assigned_staff is not None:
        if not principal.can(Permission.CLIENTS_ASSIGN):
            raise Forbidden("assigning staff needs the clients:assign permission")
        staff = await _staff_ids(session, data.assigned_staff)
    if principal.role is Role.AGENCY_STAFF and principal.user_id and principal.user_id not in staff:
        staff.append(principal.user_id)  # staff see what they create
    client = Client(
        agency_id=principal.agency_id,
        legal_name=data.legal_name,
        display_name=data.display_name or data.legal_name,
        email=str(data.email) if data.email else None,
        phone=_phone(data),
        website=str(data.website) if data.website else None,
        street=data.street,
        city=data.city,
        region=data.region,
        postal_code=data.postal_code,
        country=data.country,
        timezone=data.timezone,
        categories=data.categories or [],
        hours=data.hours or {},
        notes=data.notes,
        lifecycle_stage=data.lifecycle_stage,
    )
    session.add(client)
    await session.flush()
    if staff:
        await repo.replace_staff(session, principal.agency_id, client.id, staff)
        await session.flush()
    return ClientView(client, staff)


async def get(session: AsyncSession, client_id: uuid.UUID) -> ClientView:
    found = await repo.get_with_staff(session, client_id)
    if found is None:
        raise NotFound("no such client")
    return ClientView(*found)


async def read(ctx: TenantContext, client_id: uuid.UUID) -> tuple[Row, list[uuid.UUID]]:
    """A client and its assigned staff for read-only callers (GET /clients/{id}), on the lean
    read path (tenants.reads) rather than the ORM session."""
    if not ctx.allows_client(client_id):
        raise NotFound("no such client")
    found = await repo.read_with_staff(ctx, client_id)
    if found is None:
        raise NotFound("no such client")
    return found


async def page(
    session: AsyncSession,
    *,
    q: str | None,
    stage: LifecycleStage | None,
    sort: ClientSort,
    cursor: str | None,
    limit: int,
) -> tuple[list[ClientView], str | None]:
    by_name = sort is ClientSort.NAME
    after = decode_keyset(cursor, text_key if by_name else parse_aware_datetime)
    found = await repo.page(session, q=q, stage=stage, sort=sort, after=after, limit=limit + 1)
    rows, next_cursor = paginate(
        found, limit, (lambda c: c.display_name) if by_name else (lambda c: c.created_at)
    )
    staff = await repo.staff_of(session, [c.id for c in rows])
    return [ClientView(c, staff.get(c.id, [])) for c in rows], next_cursor


async def update(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID, data: ClientUpdate
) -> ClientView:
    view = await get(session, client_id)
    client = view.client
    fields = data.model_dump(exclude_unset=True)
    if "assigned_staff" in fields:
        if not principal.can(Permission.CLIENTS_ASSIGN):
            raise Forbidden("assigning staff needs the clients:assign permission")
        staff = await _staff_ids(session, data.assigned_staff or [])
        await repo.replace_staff(session, client.agency_id, client.id, staff)
        view.staff = staff
        fields.pop("assigned_staff")
    if "phone" in fields or "country" in fields:
        phone = fields.get("phone", client.phone)
        country = fields.get("country", client.country)
        try:
            fields["phone"] = normalize_phone(phone, country) if phone else None
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="phone") from exc
    for key in ("email", "website"):
        if fields.get(key) is not None:
            fields[key] = str(getattr(data, key))
    for key in ("categories", "hours"):
        if key in fields and fields[key] is None:
            fields[key] = [] if key == "categories" else {}
    for key, value in fields.items():
        setattr(client, key, value)
    if fields:
        client.updated_at = utcnow()
    await session.flush()
    return view


async def change_lifecycle(
    session: AsyncSession, client_id: uuid.UUID, stage: LifecycleStage, reason: str | None
) -> ClientView:
    view = await get(session, client_id)
    client = view.client
    current = LifecycleStage(client.lifecycle_stage)
    if stage == current:
        return view
    if stage not in LIFECYCLE_TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in LIFECYCLE_TRANSITIONS[current]))
        raise InvalidTransition(
            f"a client cannot move from {current.value} to {stage.value}; allowed: {allowed}",
            field="stage",
        )
    client.lifecycle_stage = stage
    client.lifecycle_changed_at = client.updated_at = utcnow()
    audit.record(
        session,
        "client.lifecycle_changed",
        agency_id=client.agency_id,
        target_type="client",
        target_id=client.id,
        client_id=client.id,
        data={"from": current.value, "to": stage.value, "reason": reason},
    )
    await session.flush()
    return view


async def delete(session: AsyncSession, client_id: uuid.UUID) -> None:
    client = await repo.get(session, client_id)
    if client is None:
        raise NotFound("no such client")
    await session.delete(client)
    await session.flush()
