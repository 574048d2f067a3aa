"""HTTP for the audit log: /api/v1/audit-events (read-only; the log is append-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.audit import service
from services.identity.auth import require
from services.kit import ids
from services.kit.schemas import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Output,
    Text,
    decode_keyset,
    paginate,
)
from services.kit.web import DBSession
from tenants.models import AuditEvent
from tenants.principal import Principal
from tenants.roles import Permission

router = APIRouter(tags=["audit"])
AuditRead = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]

_PREFIX = {
    "client": "cli",
    "user": "usr",
    "membership": "mem",
    "api_key": "key",
    "invitation": "inv",
    "agency": "agy",
    "impersonation": "imp",
}


class AuditEventOut(Output):
    id: str
    occurred_at: datetime
    actor_type: str
    actor_label: str
    action: str
    target_type: str
    target_id: str | None
    client_id: str | None
    data: dict[str, Any]
    request_id: str | None
    ip: str | None

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventOut:
        prefix = _PREFIX.get(e.target_type)
        target = (
            ids.encode(prefix, e.target_id)
            if prefix and e.target_id
            else (str(e.target_id) if e.target_id else None)
        )
        return cls(
            id=ids.encode("aud", e.id),
            occurred_at=e.occurred_at,
            actor_type=e.actor_type,
            actor_label=e.actor_label,
            action=e.action,
            target_type=e.target_type,
            target_id=target,
            client_id=ids.encode("cli", e.client_id) if e.client_id else None,
            data=e.data,
            request_id=e.request_id,
            ip=e.ip,
        )


class AuditPage(Output):
    items: list[AuditEventOut]
    next_cursor: str | None


@router.get("/audit-events", response_model=AuditPage, name="audit_events_list")
async def list_audit_events(
    principal: AuditRead,
    session: DBSession,
    action: Annotated[Text | None, Query(max_length=80)] = None,
    target_id: Annotated[Text | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> AuditPage:
    rows, nxt = paginate(
        await service.events(
            session,
            action=action,
            target_id=target_id,
            after=decode_keyset(cursor),
            limit=limit + 1,
        ),
        limit,
        lambda e: e.occurred_at,
    )
    return AuditPage(items=[AuditEventOut.of(e) for e in rows], next_cursor=nxt)
