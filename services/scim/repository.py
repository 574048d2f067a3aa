"""All SCIM queries, each inside the session's tenant scope, and the attribute tables that
turn SCIM filters into SQL (see `services.scim.filters`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, String, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.scim.filters import Attr, AttributeMap, MultiAttr, Source
from services.scim.models import (
    GroupKind,
    ScimGroup,
    ScimGroupMember,
    ScimToken,
    ScimUserEmail,
    ScimUserProfile,
)
from services.scim.schemas import GROUP_SCHEMA, USER_SCHEMA
from tenants.models import Client, Membership, User, UserStatus
from tenants.roles import Role

# ---- tokens --------------------------------------------------------------------------------


async def token_by_hash(session: AsyncSession, token_hash: str) -> ScimToken | None:
    stmt = select(ScimToken).where(ScimToken.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def token(session: AsyncSession, token_id: uuid.UUID) -> ScimToken | None:
    stmt = select(ScimToken).where(ScimToken.id == token_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def tokens(session: AsyncSession) -> Sequence[ScimToken]:
    stmt = select(ScimToken).order_by(ScimToken.created_at.desc(), ScimToken.id)
    return (await session.execute(stmt)).scalars().all()


# ---- group names -----------------------------------------------------------------------------

ROLE_GROUP_NAMES: dict[Role, str] = {
    Role.AGENCY_OWNER: "Agency owners",
    Role.AGENCY_ADMIN: "Agency admins",
    Role.AGENCY_STAFF: "Agency staff",
}
TEAM_SUFFIXES: dict[Role, str] = {
    Role.CLIENT_OWNER: " — owners",
    Role.CLIENT_MEMBER: " — members",
}


def team_group_name(client_name: str, role: Role) -> str:
    return f"Client: {client_name}{TEAM_SUFFIXES[role]}"


def _display_name() -> ColumnElement[str]:
    """A group's displayName in SQL: built-in groups are named after their role or client."""
    role_name = case(
        *[(ScimGroup.role == role, name) for role, name in ROLE_GROUP_NAMES.items()],
        else_="",
    )
    suffix = case(
        *[(ScimGroup.role == role, s) for role, s in TEAM_SUFFIXES.items()],
        else_="",
    )
    team_name = literal("Client: ", String) + func.coalesce(Client.display_name, "") + suffix
    return case(
        (ScimGroup.kind == GroupKind.ROLE, role_name),
        (ScimGroup.kind == GroupKind.TEAM, team_name),
        else_=ScimGroup.display_name,
    )


GROUP_DISPLAY_NAME = _display_name()


def _same_scope(m_client: Any, g_client: Any) -> ColumnElement[bool]:
    return or_(and_(m_client.is_(None), g_client.is_(None)), m_client == g_client)


# ---- attribute tables for filters and sorting -------------------------------------------------


def _user_attributes() -> AttributeMap:
    def emails_exist(cond: ColumnElement[bool]) -> ColumnElement[bool]:
        return (
            select(ScimUserEmail.id)
            .where(
                ScimUserEmail.agency_id == User.agency_id,
                ScimUserEmail.user_id == User.id,
                cond,
            )
            .exists()
        )

    def role_groups_exist(cond: ColumnElement[bool]) -> ColumnElement[bool]:
        return (
            select(ScimGroup.id)
            .join(
                Membership,
                and_(
                    Membership.agency_id == ScimGroup.agency_id,
                    Membership.role == ScimGroup.role,
                    _same_scope(Membership.client_id, ScimGroup.client_id),
                ),
            )
            .where(
                ScimGroup.kind != GroupKind.DIRECTORY,
                Membership.agency_id == User.agency_id,
                Membership.user_id == User.id,
                cond,
            )
            .exists()
        )

    def directory_groups_exist(cond: ColumnElement[bool]) -> ColumnElement[bool]:
        return (
            select(ScimGroupMember.id)
            .where(
                ScimGroupMember.agency_id == User.agency_id,
                ScimGroupMember.user_id == User.id,
                cond,
            )
            .exists()
        )

    created = Attr(User.created_at, "datetime")
    modified = Attr(User.updated_at, "datetime")
    return AttributeMap(
        schema=USER_SCHEMA,
        scalars={
            "id": Attr(User.id, "id", case_exact=True, id_prefix="usr"),
            "username": Attr(User.email),
            "externalid": Attr(ScimUserProfile.external_id, case_exact=True),
            "name.formatted": Attr(User.name, empty_is_null=True),
            "name.givenname": Attr(ScimUserProfile.given_name),
            "name.familyname": Attr(ScimUserProfile.family_name),
            "active": Attr(User.status == UserStatus.ACTIVE, "boolean"),
            "meta.created": created,
            "meta.lastmodified": modified,
            "meta.resourcetype": Attr(None, "constant", constant="User"),
        },
        multis={
            "emails": MultiAttr(
                sources=(
                    Source(
                        emails_exist,
                        {
                            "value": Attr(ScimUserEmail.value),
                            "type": Attr(ScimUserEmail.type),
                            # not given reads as false
                            "primary": Attr(
                                func.coalesce(ScimUserEmail.is_primary, False), "boolean"
                            ),
                        },
                    ),
                )
            ),
            "groups": MultiAttr(
                sources=(
                    Source(
                        role_groups_exist,
                        {
                            "value": Attr(ScimGroup.id, "id", case_exact=True, id_prefix="grp"),
                        },
                    ),
                    Source(
                        directory_groups_exist,
                        {
                            "value": Attr(
                                ScimGroupMember.group_id, "id", case_exact=True, id_prefix="grp"
                            ),
                        },
                    ),
                )
            ),
        },
    )


def _group_attributes() -> AttributeMap:
    member_type = Attr(None, "constant", constant="User")

    def role_members_exist(cond: ColumnElement[bool]) -> ColumnElement[bool]:
        inner = (
            select(Membership.id)
            .where(
                Membership.agency_id == ScimGroup.agency_id,
                Membership.role == ScimGroup.role,
                _same_scope(Membership.client_id, ScimGroup.client_id),
                cond,
            )
            .exists()
        )
        return and_(ScimGroup.kind != GroupKind.DIRECTORY, inner)

    def directory_members_exist(cond: ColumnElement[bool]) -> ColumnElement[bool]:
        inner = (
            select(ScimGroupMember.id)
            .where(
                ScimGroupMember.agency_id == ScimGroup.agency_id,
                ScimGroupMember.group_id == ScimGroup.id,
                cond,
            )
            .exists()
        )
        return and_(ScimGroup.kind == GroupKind.DIRECTORY, inner)

    return AttributeMap(
        schema=GROUP_SCHEMA,
        scalars={
            "id": Attr(ScimGroup.id, "id", case_exact=True, id_prefix="grp"),
            "displayname": Attr(GROUP_DISPLAY_NAME),
            "externalid": Attr(ScimGroup.external_id, case_exact=True),
            "meta.created": Attr(ScimGroup.created_at, "datetime"),
            "meta.lastmodified": Attr(ScimGroup.updated_at, "datetime"),
            "meta.resourcetype": Attr(None, "constant", constant="Group"),
        },
        multis={
            "members": MultiAttr(
                sources=(
                    Source(
                        role_members_exist,
                        {
                            "value": Attr(
                                Membership.user_id, "id", case_exact=True, id_prefix="usr"
                            ),
                            "type": member_type,
                        },
                    ),
                    Source(
                        directory_members_exist,
                        {
                            "value": Attr(
                                ScimGroupMember.user_id, "id", case_exact=True, id_prefix="usr"
                            ),
                            "type": member_type,
                        },
                    ),
                )
            )
        },
    )


USER_ATTRIBUTES = _user_attributes()
GROUP_ATTRIBUTES = _group_attributes()


# ---- users -----------------------------------------------------------------------------------


def _ordered(key: Any, descending: bool) -> Any:
    """RFC 7644 §3.4.2.3: unassigned values sort last ascending and first descending, on
    every database (SQLite and PostgreSQL disagree by default)."""
    return key.desc().nulls_first() if descending else key.asc().nulls_last()


def _users() -> Any:
    """Users as the directory sees them: not the ones it deleted."""
    return (
        select(User, ScimUserProfile)
        .outerjoin(
            ScimUserProfile,
            and_(ScimUserProfile.agency_id == User.agency_id, ScimUserProfile.id == User.id),
        )
        .where(ScimUserProfile.deleted_at.is_(None))
    )


async def user_row(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[User, ScimUserProfile | None] | None:
    row = (await session.execute(_users().where(User.id == user_id))).first()
    return (row[0], row[1]) if row is not None else None


async def _page(
    session: AsyncSession,
    base: Select[Any],
    *,
    where: ColumnElement[bool] | None,
    order_by: Any,
    default_order: Any,
    id_column: Any,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[tuple[Any, Any]]]:
    """Total and one page of (row, extra) pairs: filtered, ordered (id breaks ties), paged."""
    if where is not None:
        base = base.where(where)
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    if limit <= 0:
        return total, []
    key = _ordered(order_by if order_by is not None else default_order, descending)
    stmt = base.order_by(key, id_column).offset(offset).limit(limit)
    rows = (await session.execute(stmt)).all()
    return total, [(r[0], r[1]) for r in rows]


async def users_page(
    session: AsyncSession,
    *,
    where: ColumnElement[bool] | None,
    order_by: Any,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[tuple[User, ScimUserProfile | None]]]:
    return await _page(
        session,
        _users(),
        where=where,
        order_by=order_by,
        default_order=User.created_at,
        id_column=User.id,
        descending=descending,
        offset=offset,
        limit=limit,
    )


async def profile(session: AsyncSession, user_id: uuid.UUID) -> ScimUserProfile | None:
    stmt = select(ScimUserProfile).where(ScimUserProfile.id == user_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def emails_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[ScimUserEmail]]:
    out: dict[uuid.UUID, list[ScimUserEmail]] = {u: [] for u in user_ids}
    if not user_ids:
        return out
    stmt = (
        select(ScimUserEmail)
        .where(ScimUserEmail.user_id.in_(user_ids))
        .order_by(ScimUserEmail.user_id, ScimUserEmail.position)
    )
    for e in (await session.execute(stmt)).scalars():
        out[e.user_id].append(e)
    return out


async def email_rows(session: AsyncSession, user_id: uuid.UUID) -> Sequence[ScimUserEmail]:
    stmt = select(ScimUserEmail).where(ScimUserEmail.user_id == user_id)
    return (await session.execute(stmt)).scalars().all()


async def groups_of(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, str]]]:
    """(group id, display name) of the groups each user is in."""
    out: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {u: [] for u in user_ids}
    if not user_ids:
        return out
    via_roles = (
        select(Membership.user_id, ScimGroup.id, GROUP_DISPLAY_NAME)
        .join(
            ScimGroup,
            and_(
                ScimGroup.agency_id == Membership.agency_id,
                ScimGroup.role == Membership.role,
                ScimGroup.kind != GroupKind.DIRECTORY,
                _same_scope(Membership.client_id, ScimGroup.client_id),
            ),
        )
        .outerjoin(
            Client, and_(Client.agency_id == ScimGroup.agency_id, Client.id == ScimGroup.client_id)
        )
        .where(Membership.user_id.in_(user_ids))
    )
    direct = (
        select(ScimGroupMember.user_id, ScimGroup.id, ScimGroup.display_name)
        .join(
            ScimGroup,
            and_(
                ScimGroup.agency_id == ScimGroupMember.agency_id,
                ScimGroup.id == ScimGroupMember.group_id,
            ),
        )
        .where(ScimGroupMember.user_id.in_(user_ids))
    )
    for stmt in (via_roles, direct):
        for user_id, group_id, name in (await session.execute(stmt)).all():
            out[user_id].append((group_id, name))
    for groups in out.values():
        groups.sort(key=lambda g: (g[1].lower(), str(g[0])))
    return out


# ---- groups ----------------------------------------------------------------------------------


def _groups() -> Any:
    return select(ScimGroup, GROUP_DISPLAY_NAME.label("display")).outerjoin(
        Client, and_(Client.agency_id == ScimGroup.agency_id, Client.id == ScimGroup.client_id)
    )


async def group_row(session: AsyncSession, group_id: uuid.UUID) -> tuple[ScimGroup, str] | None:
    row = (await session.execute(_groups().where(ScimGroup.id == group_id))).first()
    return (row[0], row[1]) if row is not None else None


async def groups_page(
    session: AsyncSession,
    *,
    where: ColumnElement[bool] | None,
    order_by: Any,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[tuple[ScimGroup, str]]]:
    return await _page(
        session,
        _groups(),
        where=where,
        order_by=order_by,
        default_order=ScimGroup.created_at,
        id_column=ScimGroup.id,
        descending=descending,
        offset=offset,
        limit=limit,
    )


async def group_named(
    session: AsyncSession, name: str, *, other_than: uuid.UUID | None = None
) -> uuid.UUID | None:
    """The id of the group with this displayName (case-insensitive), if any."""
    stmt = _groups().where(func.lower(GROUP_DISPLAY_NAME) == name.lower())
    if other_than is not None:
        stmt = stmt.where(ScimGroup.id != other_than)
    row = (await session.execute(stmt.limit(1))).first()
    return row[0].id if row is not None else None


async def members_of(
    session: AsyncSession, groups: Sequence[ScimGroup]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The member user ids of each group, in a stable order."""
    out: dict[uuid.UUID, list[uuid.UUID]] = {g.id: [] for g in groups}
    directory = [g.id for g in groups if GroupKind(g.kind) is GroupKind.DIRECTORY]
    if directory:
        stmt = (
            select(ScimGroupMember.group_id, ScimGroupMember.user_id)
            .where(ScimGroupMember.group_id.in_(directory))
            .order_by(ScimGroupMember.created_at, ScimGroupMember.id)
        )
        for group_id, user_id in (await session.execute(stmt)).all():
            out[group_id].append(user_id)
    built_in = [g for g in groups if GroupKind(g.kind) is not GroupKind.DIRECTORY]
    if built_in:
        roles = {Role(g.role) for g in built_in if g.role}
        clients = {g.client_id for g in built_in}
        named = [c for c in clients if c is not None]
        scope = []
        if None in clients:
            scope.append(Membership.client_id.is_(None))
        if named:
            scope.append(Membership.client_id.in_(named))
        stmt = (
            select(Membership.role, Membership.client_id, Membership.user_id)
            .where(Membership.role.in_(roles), or_(*scope))
            .order_by(Membership.created_at, Membership.id)
        )
        by_target: dict[tuple[Role, uuid.UUID | None], list[uuid.UUID]] = {}
        for role, client_id, user_id in (await session.execute(stmt)).all():
            if client_id in clients:
                by_target.setdefault((Role(role), client_id), []).append(user_id)
        for g in built_in:
            out[g.id] = by_target.get((Role(g.role), g.client_id), []) if g.role else []
    return out


async def directory_memberships_of(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[ScimGroupMember]:
    stmt = select(ScimGroupMember).where(ScimGroupMember.user_id == user_id)
    return (await session.execute(stmt)).scalars().all()


async def directory_members(
    session: AsyncSession, group_id: uuid.UUID
) -> Sequence[ScimGroupMember]:
    stmt = select(ScimGroupMember).where(ScimGroupMember.group_id == group_id)
    return (await session.execute(stmt)).scalars().all()


async def existing_user_ids(session: AsyncSession, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `user_ids` that name users the directory can see."""
    if not user_ids:
        return set()
    stmt = _users().with_only_columns(User.id).where(User.id.in_(user_ids))
    return set((await session.execute(stmt)).scalars().all())


async def role_group_keys(session: AsyncSession) -> set[str]:
    stmt = select(ScimGroup.key).where(ScimGroup.kind == GroupKind.ROLE)
    return set((await session.execute(stmt)).scalars().all())


async def clients_without_teams(session: AsyncSession) -> list[uuid.UUID]:
    """Clients whose team groups do not exist yet (new since the last SCIM request)."""
    has_team = (
        select(ScimGroup.id)
        .where(
            ScimGroup.agency_id == Client.agency_id,
            ScimGroup.client_id == Client.id,
            ScimGroup.kind == GroupKind.TEAM,
        )
        .exists()
    )
    return list((await session.execute(select(Client.id).where(~has_team))).scalars().all())
