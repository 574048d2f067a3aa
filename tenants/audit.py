"""The append-only audit trail.

Every flush is inspected: each created, changed or deleted row of an audited table becomes an
AuditEvent in the same transaction (so an audit entry exists exactly when the write does).
Services add domain events (sign-in, key revoked, lifecycle moved) with `record()`.
Columns a model lists in `__audit_exclude__` (hashes, secrets) are never written.
While agency staff impersonate a client's person, the actor is the staff member (label
"staff (as person)") and every event's data carries `impersonating` (whose view, which
impersonation).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.kit.models import TenantModel
from services.kit.types import jsonable
from tenants.context import TenantContext
from tenants.models import Agency, AuditEvent
from tenants.principal import Principal

_SKIP_COLUMNS = frozenset({"agency_id", "id", "created_at", "updated_at"})

# Principal.extra keys of an impersonation principal (set by identity.impersonation): the
# staff member who really acts, and the view they act in (public ids).
IMPERSONATOR_ID = "impersonator_id"
IMPERSONATOR_LABEL = "impersonator_label"
IMPERSONATING = "impersonating"
IMPERSONATION_ID = "impersonation_id"


def _actor(session: Session) -> dict[str, Any]:
    principal: Principal | None = session.info.get("principal")
    request: dict[str, Any] = session.info.get("request") or {}
    ctx: TenantContext | None = session.info.get("tenant")
    base: dict[str, Any] = {
        "request_id": request.get("request_id"),
        "ip": request.get("ip"),
        "unscoped_reason": ctx.unscoped_reason if ctx else None,
    }
    if principal is None:
        return {**base, "actor_type": "system", "actor_id": None, "actor_label": "system"}
    impersonator = principal.extra.get(IMPERSONATOR_ID)
    if impersonator:
        # Agency staff viewing the portal as one of a client's people: the real person acts.
        label = f"{principal.extra.get(IMPERSONATOR_LABEL, '')} (as {principal.label})"
        return {
            **base,
            "actor_type": "user",
            "actor_id": uuid.UUID(impersonator),
            "actor_label": label[:320],
        }
    return {
        **base,
        "actor_type": principal.kind,
        "actor_id": principal.actor_id,
        "actor_label": principal.label[:320],
    }


def _impersonating(session: Session) -> dict[str, str] | None:
    """While impersonating, every event also names whose view the write was made in."""
    principal: Principal | None = session.info.get("principal")
    if principal is None or not principal.extra.get(IMPERSONATOR_ID):
        return None
    return {
        "user_id": principal.extra.get(IMPERSONATING, ""),
        "impersonation_id": principal.extra.get(IMPERSONATION_ID, ""),
    }


def _name(obj: object) -> str:
    """The singular of the table's name: `client.created`, `external_identity.created`."""
    table = str(getattr(type(obj), "__tablename__", type(obj).__name__.lower()))
    if table.endswith("ies"):
        return table[:-3] + "y"
    return table.removesuffix("s")


def _columns(obj: object) -> list[str]:
    return [a.key for a in inspect(type(obj)).column_attrs]


def _snapshot(obj: Any, exclude: frozenset[str]) -> dict[str, Any]:
    return {
        k: jsonable(getattr(obj, k))
        for k in _columns(obj)
        if k not in _SKIP_COLUMNS and k not in exclude
    }


def _changes(obj: Any, exclude: frozenset[str]) -> dict[str, Any]:
    state = inspect(obj)
    ignore: frozenset[str] = getattr(type(obj), "__audit_ignore__", frozenset())
    out: dict[str, Any] = {}
    for key in _columns(obj):
        if key in _SKIP_COLUMNS or key in ignore:
            continue
        hist = state.attrs[key].history
        if not hist.has_changes():
            continue
        if key in exclude:
            out[key] = "changed"
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if old != new:
            out[key] = {"from": jsonable(old), "to": jsonable(new)}
    return out


def record_flush(session: Session) -> None:
    actor: dict[str, Any] | None = None
    impersonating: dict[str, str] | None = None
    events: list[AuditEvent] = []
    for verb, objs in (
        ("created", session.new),
        ("updated", session.dirty),
        ("deleted", session.deleted),
    ):
        for obj in list(objs):
            if isinstance(obj, AuditEvent):
                continue
            if isinstance(obj, TenantModel):
                if not type(obj).__audited__:
                    continue
                agency_id = obj.agency_id
                col = type(obj).__client_column__
                client_id = getattr(obj, col) if col else None
                exclude = type(obj).__audit_exclude__
            elif isinstance(obj, Agency):
                agency_id, client_id, exclude = obj.id, None, frozenset()
            else:
                continue
            if verb == "updated":
                data = _changes(obj, exclude)
                if not data:
                    continue
            else:
                data = _snapshot(obj, exclude)
            if actor is None:
                actor = _actor(session)
                impersonating = _impersonating(session)
            if impersonating:
                data = {**data, "impersonating": impersonating}
            events.append(
                AuditEvent(
                    agency_id=agency_id,
                    action=f"{_name(obj)}.{verb}",
                    target_type=_name(obj),
                    target_id=obj.id,
                    client_id=client_id,
                    data=data,
                    **actor,
                )
            )
    session.add_all(events)


def record(
    session: AsyncSession,
    action: str,
    *,
    agency_id: uuid.UUID,
    target_type: str,
    target_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append a domain event (e.g. `auth.login`, `client.lifecycle_changed`)."""
    payload = {k: jsonable(v) for k, v in (data or {}).items()}
    impersonating = _impersonating(session.sync_session)
    if impersonating:
        payload["impersonating"] = impersonating
    event = AuditEvent(
        agency_id=agency_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        client_id=client_id,
        data=payload,
        **_actor(session.sync_session),
    )
    session.add(event)
    return event
