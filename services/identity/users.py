"""People and their roles: a person's principal, creating people, passwords' strength,
memberships (add, change, remove; an agency keeps an owner) and changing a person. Who may
change whom is `access`'s one rule."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.identity import access
from services.identity import repository as repo
from services.identity.sessions import revoke_user_sessions
from services.kit.crypto import hash_password
from services.kit.errors import Conflict, NotFound, ValidationFailed
from services.kit.types import utcnow
from tenants.models import Agency, Client, Membership, User, UserStatus
from tenants.principal import Principal
from tenants.roles import AGENCY_ROLES, Role, permissions_for

MIN_PASSWORD_LENGTH = 10


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def principal_for_user(
    session: AsyncSession, user: User, agency: Agency, *, session_id: uuid.UUID | None = None
) -> Principal:
    memberships = await repo.memberships_of(session, user.id)
    roles = {Role(m.role) for m in memberships}
    agency_roles = roles & AGENCY_ROLES
    client_ids: frozenset[uuid.UUID] | None
    if agency_roles:
        role = max(agency_roles, key=lambda r: r.rank)
        roles = agency_roles
        if role is Role.AGENCY_STAFF:
            client_ids = frozenset(await repo.assigned_client_ids(session, user.id))
        else:
            client_ids = None
    else:
        client_ids = frozenset(m.client_id for m in memberships if m.client_id)
        role = max(roles, key=lambda r: r.rank) if roles else Role.CLIENT_MEMBER
        if not roles:
            roles = set()
    return Principal(
        kind="user",
        agency_id=agency.id,
        agency_slug=agency.slug,
        role=role,
        permissions=permissions_for(roles),
        client_ids=client_ids,
        user_id=user.id,
        label=user.email,
        session_id=session_id,
    )


async def create_user(
    session: AsyncSession,
    agency_id: uuid.UUID,
    *,
    email: str,
    name: str = "",
    password: str | None = None,
) -> User:
    email = normalize_email(email)
    if await repo.user_by_email(session, email) is not None:
        raise Conflict(f"a user with e-mail {email} already exists in this agency", field="email")
    if password is not None:
        check_password_strength(password)
    user = User(
        agency_id=agency_id,
        email=email,
        name=name,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a user with e-mail {email} already exists", field="email") from exc
    return user


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > 1024:
        raise ValidationFailed("the password is too long", field="password")


async def require_client(session: AsyncSession, client_id: uuid.UUID) -> None:
    """The client exists in the caller's scope (404 otherwise)."""
    stmt = select(col(Client.id)).where(col(Client.id) == client_id)
    found = (await session.execute(stmt)).first()
    if found is None:
        raise NotFound("no such client")


async def check_role_target(
    session: AsyncSession, principal: Principal, role: Role, client_id: uuid.UUID | None
) -> None:
    """A role fits its scope (agency roles: no client; client roles: a visible client) and
    the caller may grant it."""
    if (role in AGENCY_ROLES) != (client_id is None):
        raise ValidationFailed(
            "agency roles take no client_id; client roles need one", field="client_id"
        )
    if client_id is not None:
        await require_client(session, client_id)
    access.check_grant(principal, role)


async def add_membership(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID,
    role: Role,
    client_id: uuid.UUID | None,
) -> Membership:
    assert principal.agency_id is not None
    if await repo.user(session, user_id) is None:
        raise NotFound("no such user")
    await access.check_may_act_on(principal, user_id)
    await check_role_target(session, principal, role, client_id)
    existing = await repo.membership_for(session, user_id, client_id)
    if existing is not None:
        raise Conflict("the user already has a role there; change it instead")
    m = Membership(agency_id=principal.agency_id, user_id=user_id, role=role, client_id=client_id)
    session.add(m)
    await session.flush()
    return m


async def change_membership(
    session: AsyncSession, principal: Principal, membership_id: uuid.UUID, role: Role
) -> Membership:
    m = await repo.membership(session, membership_id)
    if m is None:
        raise NotFound("no such membership")
    if (role in AGENCY_ROLES) != (m.client_id is None):
        raise ValidationFailed("the role does not fit the membership's scope", field="role")
    await access.check_may_act_on(principal, m.user_id)
    access.check_grant(principal, Role(m.role))
    access.check_grant(principal, role)
    if Role(m.role) is Role.AGENCY_OWNER and role is not Role.AGENCY_OWNER:
        await _keep_an_owner(session, m)
    m.role = role
    await session.flush()
    return m


async def remove_membership(
    session: AsyncSession, principal: Principal, membership_id: uuid.UUID
) -> None:
    m = await repo.membership(session, membership_id)
    if m is None:
        raise NotFound("no such membership")
    await access.check_may_act_on(principal, m.user_id)
    access.check_grant(principal, Role(m.role))
    if Role(m.role) is Role.AGENCY_OWNER:
        await _keep_an_owner(session, m)
    await session.delete(m)
    await session.flush()


async def _keep_an_owner(session: AsyncSession, leaving: Membership) -> None:
    stmt = (
        select(func.count())
        .select_from(Membership)
        .where(col(Membership.role) == Role.AGENCY_OWNER, col(Membership.id) != leaving.id)
    )
    if (await session.execute(stmt)).scalar_one() == 0:
        raise Conflict("an agency must keep at least one owner")


async def update_user(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    *,
    name: str | None = None,
    status: UserStatus | None = None,
) -> User:
    """Change a person's name or status (disabling signs them out everywhere). Any field is
    a change of the person: who may make it is `access`'s one rule."""
    user = await repo.user(session, user_id)
    if user is None:
        raise NotFound("no such user")
    if name is None and status is None:
        return user
    await access.check_may_act_on(principal, user.id)
    changed = False
    if status is not None and status != user.status:
        if user.id == principal.user_id and status is UserStatus.DISABLED:
            raise Conflict("you cannot disable yourself")
        user.status = status
        if status is UserStatus.DISABLED:
            await revoke_user_sessions(session, user.id)
        changed = True
    if name is not None and name != user.name:
        user.name = name
        changed = True
    if changed:
        user.updated_at = utcnow()
        await session.flush()
    return user


# ---- reads (the API's) ------------------------------------------------------------------


async def users_page(
    session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[User]:
    """People of the session's scope, oldest first, after a keyset position."""
    return list(await repo.users(session, after=after, limit=limit))


async def memberships_of_people(session: AsyncSession, people: list[User]) -> list[Membership]:
    return list(await repo.memberships_for_users(session, [u.id for u in people]))


async def memberships_by_user(
    session: AsyncSession, people: list[User]
) -> dict[uuid.UUID, list[Membership]]:
    found: dict[uuid.UUID, list[Membership]] = {}
    for m in await memberships_of_people(session, people):
        found.setdefault(m.user_id, []).append(m)
    return found


async def memberships_of(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    return list(await repo.memberships_of(session, user_id))


async def user_with_memberships(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[User, list[Membership]]:
    """One person of the session's scope and their memberships; another's is a 404."""
    user = await repo.user(session, user_id)
    if user is None:
        raise NotFound("no such user")
    return user, await memberships_of(session, user.id)


async def find(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """A person of the session's scope, or None (for callers that decide what absent means)."""
    return await repo.user(session, user_id)


async def by_email(session: AsyncSession, email: str) -> User | None:
    """The person with this e-mail address in the session's agency (normalized), or None."""
    return await repo.user_by_email(session, email)


async def membership_for(
    session: AsyncSession, user_id: uuid.UUID, client_id: uuid.UUID | None
) -> Membership | None:
    """The person's membership on a client (None: their agency-wide one), if any."""
    return await repo.membership_for(session, user_id, client_id)


async def agency_of_session(session: AsyncSession, agency_id: uuid.UUID) -> Agency | None:
    """The agency row as the session's tenant sees it (its own), or None."""
    return await repo.agency(session, agency_id)
