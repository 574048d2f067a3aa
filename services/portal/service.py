"""What the portal's pages show, assembled from the domain services and repositories.

No HTTP here: endpoints call these; these call services and repositories. Everything runs in
the tenant (and client) scope the portal's principal dependency put on the session.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.clients import service as clients_service
from services.clients.lifecycle import LIFECYCLE_TRANSITIONS
from services.clients.schemas import ClientSort
from services.identity import access
from services.identity import invitations as identity_invitations
from services.identity import users as identity_users
from services.identity.models import Invitation
from services.kit import ids, mail
from services.kit.types import utcnow
from services.oauth2 import service as oauth2_service
from services.portal import impersonation as imp_views
from services.portal import repository as repo
from services.portal.labels import ROLE_LABELS, STAGE_LABELS
from tenants.models import AuditEvent, Client, LifecycleStage, User
from tenants.principal import Principal
from tenants.roles import AGENCY_ROLES, CLIENT_ROLES, Permission, Role

PAGE_SIZE = 25
HISTORY_SIZE = 15
CHOICES_LIMIT = 500


@dataclass
class Person:
    id: str
    name: str
    email: str


def _person(user: User) -> Person:
    return Person(ids.encode("usr", user.id), user.name or user.email, user.email)


# ---- who is signed in -------------------------------------------------------------------------


@dataclass
class Viewer:
    name: str
    email: str
    # Set while agency staff view the portal as this person (the banner on every page).
    impersonation: imp_views.Banner | None = None


async def viewer(session: AsyncSession, principal: Principal) -> Viewer:
    users = await repo.users_by_id(session, [principal.user_id] if principal.user_id else [])
    user = users.get(principal.user_id) if principal.user_id else None
    if user is None:  # staff do not see agency-level user rows through client scope
        return Viewer(principal.label, principal.label)
    return Viewer(user.name or user.email, user.email)


async def user_of(session: AsyncSession, principal: Principal) -> User | None:
    """The signed-in person's own user row (None for a principal that is no person)."""
    if principal.user_id is None:
        return None
    return await identity_users.find(session, principal.user_id)


async def me(session: AsyncSession, principal: Principal) -> User:
    """The signed-in person's own user row, on pages only a person reaches."""
    user = await user_of(session, principal)
    assert user is not None
    return user


def landing(principal: Principal, base: str) -> str:
    """Where a signed-in person starts: a client's people on their solutions (the portal's
    home for them); someone who serves one client and cannot create others on its record;
    the client list for everyone else."""
    if principal.role is not None and principal.role in CLIENT_ROLES:
        return f"{base}/apps"
    return clients_home(principal, base)


def clients_home(principal: Principal, base: str) -> str:
    """The "Clients" entry of the navigation: the one client's record for someone who serves
    one client and cannot create others ("Our business"), else the client list."""
    clients = principal.client_ids
    if clients is not None and len(clients) == 1 and not principal.can(Permission.CLIENTS_CREATE):
        return f"{base}/clients/{ids.encode('cli', next(iter(clients)))}"
    return f"{base}/clients"


# ---- clients list ------------------------------------------------------------------------------

# The list's `sort` choices, by the name the page's links use.
SORTS = {"name": ClientSort.NAME, "newest": ClientSort.NEWEST, "oldest": ClientSort.OLDEST}


@dataclass
class ClientRow:
    id: str
    name: str
    legal_name: str
    email: str | None
    phone: str | None
    place: str
    stage: LifecycleStage
    staff: list[Person]
    updated_at: datetime


@dataclass
class ClientList:
    rows: list[ClientRow]
    next_cursor: str | None
    counts: dict[LifecycleStage, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _place(c: Client) -> str:
    return ", ".join(p for p in (c.city, c.region, c.country) if p)


async def client_list(
    session: AsyncSession,
    *,
    q: str | None,
    stage: LifecycleStage | None,
    sort: ClientSort,
    cursor: str | None,
) -> ClientList:
    views, next_cursor = await clients_service.page(
        session, q=q, stage=stage, sort=sort, cursor=cursor, limit=PAGE_SIZE
    )
    people = await repo.users_by_id(session, [u for v in views for u in v.staff])
    rows = [
        ClientRow(
            id=ids.encode("cli", v.client.id),
            name=v.client.display_name,
            legal_name=v.client.legal_name,
            email=v.client.email,
            phone=v.client.phone,
            place=_place(v.client),
            stage=LifecycleStage(v.client.lifecycle_stage),
            staff=[_person(people[u]) for u in v.staff if u in people],
            updated_at=v.client.updated_at,
        )
        for v in views
    ]
    return ClientList(rows, next_cursor, await repo.stage_counts(session))


# ---- one client --------------------------------------------------------------------------------


@dataclass
class HistoryItem:
    at: datetime
    actor: str
    summary: str
    details: list[str] = field(default_factory=list)
    kind: str = "update"


_FIELD_LABELS = {
    "legal_name": "legal name",
    "display_name": "display name",
    "email": "e-mail",
    "phone": "phone",
    "website": "website",
    "street": "street",
    "city": "city",
    "region": "region",
    "postal_code": "postal code",
    "country": "country",
    "timezone": "time zone",
    "categories": "categories",
    "hours": "opening hours",
    "notes": "notes",
    "lifecycle_stage": "lifecycle stage",
}


def _stage(value: Any) -> str:
    try:
        return STAGE_LABELS[LifecycleStage(value)]
    except ValueError:
        return str(value)


def _role(value: Any) -> str:
    try:
        return ROLE_LABELS[Role(value)]
    except ValueError:
        return str(value)


def describe(event: AuditEvent) -> HistoryItem:
    data = event.data or {}
    actor = event.actor_label or event.actor_type
    if event.actor_type == "system" and actor == "system":
        actor = "Switchboard"
    item = HistoryItem(at=event.occurred_at, actor=actor, summary=event.action)
    match event.action:
        case "client.created":
            item.summary, item.kind = "Client record created", "create"
        case "client.updated":
            changed = [k for k in data if k not in ("lifecycle_changed_at", "impersonating")]
            if set(changed) <= {"lifecycle_stage"}:
                return HistoryItem(event.occurred_at, actor, "", kind="skip")
            names = [
                _FIELD_LABELS.get(k, k.replace("_", " ")) for k in changed if k != "lifecycle_stage"
            ]
            item.summary = "Updated " + ", ".join(names) if names else "Record updated"
        case "client.lifecycle_changed":
            item.kind = "stage"
            item.summary = f"Moved from {_stage(data.get('from'))} to {_stage(data.get('to'))}"
            if data.get("reason"):
                item.details.append(str(data["reason"]))
        case "client_assignment.created":
            item.summary, item.kind = "Staff member assigned", "team"
        case "client_assignment.deleted":
            item.summary, item.kind = "Staff member unassigned", "team"
        case "membership.created":
            item.summary, item.kind = f"Portal access granted ({_role(data.get('role'))})", "team"
        case "membership.deleted":
            item.summary, item.kind = "Portal access removed", "team"
        case "invitation.created":
            item.kind = "team"
            item.summary = f"Invitation sent to {data.get('email', 'someone')}"
        case "invitation.updated":
            item.kind = "team"
            item.summary = "Invitation revoked" if "revoked_at" in data else "Invitation accepted"
        case "client.deleted":
            item.summary = "Client record deleted"
        case "impersonation.started":
            item.kind = "access"
            item.summary = (
                f"Viewed the portal as {data.get('user_name', 'a client user')} "
                f"(up to {data.get('minutes', '?')} minutes)"
            )
            if data.get("reason"):
                item.details.append(str(data["reason"]))
        case "impersonation.ended":
            item.kind = "access"
            item.summary = {
                "ended": "Stopped viewing the portal as a client user",
                "expired": "Viewing as a client user ended (time limit)",
                "signed_out": "Viewing as a client user ended (signed out)",
            }.get(str(data.get("how")), "Viewing as a client user ended")
        case _:
            item.summary = event.action.replace("_", " ").replace(".", ": ", 1).capitalize()
    return item


@dataclass
class ClientDetail:
    id: str
    client: Client
    stage: LifecycleStage
    staff: list[Person]
    hidden_staff: int
    transitions: list[LifecycleStage]
    history: list[HistoryItem] | None
    # "View as a client user" (who may start one) and "Access by your agency" (who may read
    # the audit trail): see services/portal/impersonation.py.
    view_as: imp_views.ViewAs | None = None
    agency_access: list[imp_views.Access] | None = None


async def client_detail(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID
) -> ClientDetail:
    view = await clients_service.get(session, client_id)  # NotFound outside the caller's scope
    people = await repo.users_by_id(session, view.staff)
    stage = LifecycleStage(view.client.lifecycle_stage)
    history = None
    if principal.can(Permission.AUDIT_READ):
        events = await repo.client_history(session, client_id, HISTORY_SIZE)
        history = [h for h in (describe(e) for e in events) if h.kind != "skip"]
    order = list(LifecycleStage)
    return ClientDetail(
        id=ids.encode("cli", view.client.id),
        client=view.client,
        stage=stage,
        staff=[_person(people[u]) for u in view.staff if u in people],
        hidden_staff=len([u for u in view.staff if u not in people]),
        transitions=sorted(LIFECYCLE_TRANSITIONS[stage], key=order.index),
        history=history,
        view_as=await imp_views.view_as(session, principal, client_id),
        agency_access=await imp_views.agency_access(session, principal, client_id),
    )


async def staff_choices(session: AsyncSession, principal: Principal) -> list[Person]:
    if not principal.can(Permission.CLIENTS_ASSIGN):
        return []
    return [_person(u) for u in await repo.agency_team(session)]


# ---- team ------------------------------------------------------------------------------------


@dataclass
class Access:
    role: Role
    label: str
    client: str | None


@dataclass
class Member:
    person: Person
    active: bool
    last_login_at: datetime | None
    access: list[Access]
    is_you: bool


@dataclass
class PendingInvitation:
    id: str
    email: str
    name: str
    role_label: str
    client: str | None
    created_at: datetime
    expires_at: datetime


@dataclass
class Team:
    members: list[Member]
    invitations: list[PendingInvitation]


def _pending(inv: Invitation, now: datetime) -> bool:
    return inv.accepted_at is None and inv.revoked_at is None and inv.expires_at > now


async def team(session: AsyncSession, principal: Principal) -> Team:
    people = await identity_users.users_page(session, after=None, limit=CHOICES_LIMIT)
    memberships = await identity_users.memberships_of_people(session, people)
    invitations: list[Invitation] = []
    if principal.can(Permission.USERS_INVITE):
        now = utcnow()
        invitations = [
            i for i in await identity_invitations.list_invitations(session) if _pending(i, now)
        ]
    names = await repo.client_names(
        session,
        [m.client_id for m in memberships if m.client_id]
        + [i.client_id for i in invitations if i.client_id],
    )
    by_user: dict[uuid.UUID, list[Access]] = {}
    for m in memberships:
        role = Role(m.role)
        by_user.setdefault(m.user_id, []).append(
            Access(role, ROLE_LABELS[role], names.get(m.client_id) if m.client_id else None)
        )
    members = [
        Member(
            person=_person(u),
            active=str(u.status) == "active",
            last_login_at=u.last_login_at,
            access=sorted(by_user.get(u.id, []), key=lambda a: -a.role.rank),
            is_you=u.id == principal.user_id,
        )
        for u in people
    ]
    members.sort(key=lambda m: (-(m.access[0].role.rank if m.access else 0), m.person.name.lower()))
    return Team(
        members,
        [
            PendingInvitation(
                id=ids.encode("inv", i.id),
                email=i.email,
                name=i.name,
                role_label=ROLE_LABELS[Role(i.role)],
                client=names.get(i.client_id) if i.client_id else None,
                created_at=i.created_at,
                expires_at=i.expires_at,
            )
            for i in invitations
        ],
    )


def grantable_roles(principal: Principal) -> list[Role]:
    """The roles this person may invite someone into, highest first: the one rule of who may
    grant what (`services.identity.access`). The identity service re-checks every
    invitation."""
    if not principal.can(Permission.USERS_INVITE):
        return []
    return access.grantable_roles(principal)


async def client_choices(session: AsyncSession) -> list[tuple[str, str]]:
    return [
        (ids.encode("cli", cid), name)
        for cid, name in await repo.client_choices(session, CHOICES_LIMIT)
    ]


# ---- the apps console: which clients a solution is enabled for ------------------------------


@dataclass
class SolutionClient:
    id: str
    name: str
    enabled: bool


async def solution_client_ids(session: AsyncSession, app_id: uuid.UUID) -> set[uuid.UUID]:
    """The clients this app (a solution) is enabled for."""
    return await oauth2_service.clients_with_solution(session, app_id)


async def solution_client_counts(session: AsyncSession) -> dict[uuid.UUID, int]:
    """For each app, the number of clients it is enabled for."""
    return await oauth2_service.solution_client_counts(session)


async def solution_clients(session: AsyncSession, app_id: uuid.UUID) -> list[SolutionClient]:
    """The clients (the first 500 by name), each with whether this app is enabled for it."""
    enabled = await solution_client_ids(session, app_id)
    return [
        SolutionClient(ids.encode("cli", cid), name, cid in enabled)
        for cid, name in await repo.client_choices(session, CHOICES_LIMIT)
    ]


# ---- invitations --------------------------------------------------------------------------------


@dataclass
class InvitationView:
    email: str
    name: str
    role_label: str
    client: str | None
    has_account: bool
    agency_role: bool


async def invitation_view(session: AsyncSession, inv: Invitation) -> InvitationView:
    user = await identity_users.by_email(session, inv.email)
    role = Role(inv.role)
    client = None
    if inv.client_id:
        client = (await repo.client_names(session, [inv.client_id])).get(inv.client_id)
    return InvitationView(
        email=inv.email,
        name=inv.name,
        role_label=ROLE_LABELS[role],
        client=client,
        has_account=user is not None and user.password_hash is not None,
        agency_role=role in AGENCY_ROLES,
    )


# ---- e-mail outbox ----------------------------------------------------------------------------

# Single-use links in a message are secrets of its recipient: an admin reading the outbox must
# not be able to take over the account an invitation or a password reset was meant for.
_LINK_TOKEN = re.compile(r"(/(?:invite|reset)/)[A-Za-z0-9]+")


@dataclass
class OutboxItem:
    id: str
    to: str
    subject: str
    status: str
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    body: str


async def outbox(session: AsyncSession, limit: int = 100) -> list[OutboxItem]:
    return [
        OutboxItem(
            id=ids.encode("msg", m.id),
            to=m.to_address,
            subject=m.subject,
            status=m.status,
            error=m.error,
            created_at=m.created_at,
            sent_at=m.sent_at,
            body=_LINK_TOKEN.sub(r"\1[link hidden]", m.body_text),
        )
        for m in await mail.recent(session, limit)
    ]
