"""SCIM use cases: tokens, the directory's view of users and groups, and the rules that keep
provisioning safe. No HTTP here.

Every write to a person or a role goes through the one rule of `services.identity.access`,
with the directory acting at an admin's rank (a token is issued by an agency owner or admin).
So two things stay out of its reach: the agency owners (every write to an owner, PUT, PATCH,
DELETE or a change of their built-in groups, is a 403, and the "Agency owners" group is
read-only) and the built-in groups themselves (they follow the agency's roles and clients).
Directory groups are the directory's own records and grant nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from scim2_models import (
    ForbiddenException,
    GroupMembership,
    InvalidFilterException,
    InvalidValueException,
    Meta,
    MutabilityException,
    NotFoundException,
    PatchOp,
    PreconditionFailedException,
    UniquenessException,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import access
from services.identity import service as identity
from services.identity import users as identity_users
from services.kit import ids
from services.kit.crypto import agency_of_token, hash_password, mint_agency_token, sha256_hex
from services.kit.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.kit.types import utcnow
from services.scim import repository as repo
from services.scim import schemas as s
from services.scim.filters import resolve_sort, to_condition, to_conditions
from services.scim.models import (
    GroupKind,
    ScimGroup,
    ScimGroupMember,
    ScimToken,
    ScimUserEmail,
    ScimUserProfile,
)
from services.settings import get_settings
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, AgencyStatus, Membership, User, UserStatus
from tenants.principal import Principal
from tenants.roles import AGENCY_ROLES, CLIENT_ROLES, Role
from tenants.scoping import scope_to, set_tenant

TOKEN_PREFIX = "sbs"  # noqa: S105  (a label, not a secret)
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_EMAILS = 20
GROUP_ID_NAMESPACE = uuid.UUID("6f1d3c1e-5b8a-4a57-9d59-2a0b9b7f3c10")

# ---- tokens --------------------------------------------------------------------------------


async def create_token(
    session: AsyncSession, principal: Principal, *, name: str
) -> tuple[ScimToken, str]:
    assert principal.agency_id is not None
    # `sbs_<agency>_<secret>`: the agency part lets the lookup happen inside that agency only,
    # as for API keys (the same routine).
    raw, prefix, token_hash = mint_agency_token(TOKEN_PREFIX, principal.agency_id)
    token = ScimToken(
        agency_id=principal.agency_id,
        name=name,
        token_hash=token_hash,
        prefix=prefix,
        created_by=principal.actor_id,
    )
    session.add(token)
    await session.flush()
    return token, raw


async def revoke_token(session: AsyncSession, token_id: uuid.UUID) -> ScimToken:
    token = await repo.token(session, token_id)
    if token is None:
        raise NotFound("no such SCIM token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
    return token


async def list_tokens(session: AsyncSession) -> list[ScimToken]:
    return list(await repo.tokens(session))


def base_url(agency_slug: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}/a/{agency_slug}/scim/v2"


async def resolve_token(session: AsyncSession, agency: Agency, raw: str) -> Principal:
    """The principal of a SCIM bearer token presented at `agency`'s SCIM endpoint, with the
    session scoped to that agency. A token naming another agency is simply wrong (401)."""
    if agency_of_token(TOKEN_PREFIX, raw) != agency.id or agency.status != AgencyStatus.ACTIVE:
        raise Unauthorized("the SCIM token is not valid here")
    await set_tenant(session, TenantContext.for_agency(agency.id))
    token = await repo.token_by_hash(session, sha256_hex(raw))
    if token is None or token.revoked_at is not None:
        raise Unauthorized("the SCIM token is unknown or revoked")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
    principal = Principal(
        kind="system",
        agency_id=agency.id,
        agency_slug=agency.slug,
        role=None,
        permissions=frozenset(),
        api_key_id=token.id,  # the actor of every audit entry the directory causes
        label=f"SCIM token {token.name}"[:320],
        extra={"credential": access.DIRECTORY_CREDENTIAL},
    )
    await scope_to(session, principal)
    return principal


# ---- representation --------------------------------------------------------------------------


def etag(payload: dict[str, Any]) -> str:
    """A weak ETag over the resource's representation (everything but meta.version)."""
    body = {k: v for k, v in payload.items() if k != "meta"}
    meta = {k: v for k, v in (payload.get("meta") or {}).items() if k != "version"}
    raw = json.dumps([body, meta], sort_keys=True, separators=(",", ":"), default=str)
    return f'W/"{hashlib.sha256(raw.encode()).hexdigest()[:20]}"'


def _with_version(resource: Any) -> Any:
    payload = resource.model_dump(scim_ctx=None, mode="json", by_alias=True, exclude_none=True)
    assert resource.meta is not None
    resource.meta.version = etag(payload)
    return resource


@dataclass
class UserState:
    user: User
    profile: ScimUserProfile | None
    emails: list[ScimUserEmail]
    groups: list[tuple[uuid.UUID, str]]


def user_resource(state: UserState, slug: str) -> s.User:
    user, profile = state.user, state.profile
    given = profile.given_name if profile else None
    family = profile.family_name if profile else None
    name = None
    if user.name or given or family:
        name = s.Name(formatted=user.name or None, given_name=given, family_name=family)
    public_id = ids.encode("usr", user.id)
    base = base_url(slug)
    resource = s.User(
        id=public_id,
        external_id=profile.external_id if profile else None,
        user_name=user.email,
        name=name,
        emails=[s.Email(value=e.value, type=e.type, primary=e.is_primary) for e in state.emails]
        or None,
        active=UserStatus(user.status) is UserStatus.ACTIVE,
        groups=[
            GroupMembership(
                value=ids.encode("grp", gid),
                ref=f"{base}/Groups/{ids.encode('grp', gid)}",
                display=display,
                type="direct",
            )
            for gid, display in state.groups
        ]
        or None,
        meta=Meta(
            resource_type="User",
            created=user.created_at,
            last_modified=user.updated_at,
            location=f"{base}/Users/{public_id}",
        ),
    )
    return _with_version(resource)


@dataclass
class GroupState:
    group: ScimGroup
    display_name: str
    members: list[uuid.UUID]


def group_resource(state: GroupState, slug: str) -> s.Group:
    g = state.group
    public_id = ids.encode("grp", g.id)
    base = base_url(slug)
    resource = s.Group(
        id=public_id,
        external_id=g.external_id,
        display_name=state.display_name,
        members=[
            s.GroupMember(
                value=ids.encode("usr", uid),
                ref=f"{base}/Users/{ids.encode('usr', uid)}",
                type="User",
            )
            for uid in state.members
        ]
        or None,
        meta=Meta(
            resource_type="Group",
            created=g.created_at,
            last_modified=g.updated_at,
            location=f"{base}/Groups/{public_id}",
        ),
    )
    return _with_version(resource)


def check_version(current: Any, if_match: str | None) -> None:
    """`If-Match`: the request applies only to the version the client last saw (RFC 7644
    §3.14); `*` matches any. Weak and strong forms of one tag are the same version."""
    if not if_match:
        return
    wanted = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    version = (current.meta.version or "").removeprefix("W/")
    if "*" not in wanted and version not in wanted:
        raise PreconditionFailedException(detail="the resource changed since that version")


# ---- users -----------------------------------------------------------------------------------


async def user_states(
    session: AsyncSession, rows: Sequence[tuple[User, ScimUserProfile | None]]
) -> list[UserState]:
    user_ids = [u.id for u, _ in rows]
    emails = await repo.emails_of(session, user_ids)
    groups = await repo.groups_of(session, user_ids)
    return [UserState(u, p, emails[u.id], groups[u.id]) for u, p in rows]


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> UserState:
    row = await repo.user_row(session, user_id)
    if row is None:
        raise NotFoundException(detail="no such user")
    await ensure_groups(session)
    return (await user_states(session, [row]))[0]


@dataclass
class UserFields:
    """What a User resource asks for, checked and normalized."""

    user_name: str
    formatted: str
    given_name: str | None
    family_name: str | None
    emails: list[tuple[str, str | None, bool | None]]
    active: bool
    external_id: str | None
    password: str | None


def _text(value: str | None, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > max_length:
        raise InvalidValueException(detail=f"{field} is longer than {max_length} characters")
    return value or None


def user_fields(resource: s.User) -> UserFields:
    user_name = _text(resource.user_name, "userName", 320)
    if not user_name:
        raise InvalidValueException(detail="userName is required")
    if any(c.isspace() for c in user_name):
        raise InvalidValueException(detail="userName cannot contain spaces")
    name = resource.name or s.Name()
    given = _text(name.given_name, "name.givenName", 200)
    family = _text(name.family_name, "name.familyName", 200)
    formatted = _text(name.formatted, "name.formatted", 200)
    if formatted is None:
        formatted = " ".join(p for p in (given, family) if p)[:200]
    emails: list[tuple[str, str | None, bool | None]] = []
    for e in resource.emails or []:
        value = _text(e.value, "emails.value", 320)
        if not value:
            raise InvalidValueException(detail="every emails entry needs a value")
        emails.append((value, _text(e.type, "emails.type", 40), e.primary))
    if len(emails) > MAX_EMAILS:
        raise InvalidValueException(detail=f"at most {MAX_EMAILS} emails")
    if sum(1 for e in emails if e[2] is True) > 1:
        raise InvalidValueException(detail="only one of emails may be primary")
    if resource.password is not None:
        try:
            identity.check_password_strength(resource.password)
        except ValidationFailed as exc:
            raise InvalidValueException(detail=exc.detail) from exc
    return UserFields(
        user_name=identity.normalize_email(user_name),
        formatted=formatted,
        given_name=given,
        family_name=family,
        emails=emails,
        active=resource.active is not False,
        external_id=_text(resource.external_id, "externalId", 255),
        password=resource.password,
    )


async def create_user(session: AsyncSession, principal: Principal, resource: s.User) -> UserState:
    assert principal.agency_id is not None
    fields = user_fields(resource)
    existing = await identity_users.by_email(session, fields.user_name)
    prior = await repo.profile(session, existing.id) if existing is not None else None
    if existing is not None and (prior is None or prior.deleted_at is None):
        raise UniquenessException(detail=f"a user with userName {fields.user_name} exists")
    if existing is not None and prior is not None:
        # The directory deleted this person earlier and provisions them again.
        await access.check_may_act_on(principal, existing.id)
        user, profile = existing, prior
        profile.deleted_at = None
        user.password_hash = None
        user.email_verified = False
    else:
        try:
            async with session.begin_nested():
                user = await identity.create_user(
                    session, principal.agency_id, email=fields.user_name, name=fields.formatted
                )
        except (IntegrityError, Conflict) as exc:
            raise UniquenessException(
                detail=f"a user with userName {fields.user_name} exists"
            ) from exc
        profile = ScimUserProfile(agency_id=principal.agency_id, id=user.id)
        session.add(profile)
    await _apply_user(session, principal, user, profile, fields)
    audit.record(
        session,
        "scim.user.provisioned",
        agency_id=principal.agency_id,
        target_type="user",
        target_id=user.id,
        data={"userName": user.email, "externalId": fields.external_id},
    )
    await session.flush()
    return await get_user(session, user.id)


async def replace_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, resource: s.User
) -> UserState:
    row = await repo.user_row(session, user_id)
    if row is None:
        raise NotFoundException(detail="no such user")
    user, profile = row
    await access.check_may_act_on(principal, user.id)
    fields = user_fields(resource)
    if fields.user_name != user.email:
        other = await identity_users.by_email(session, fields.user_name)
        if other is not None and other.id != user.id:
            raise UniquenessException(detail=f"a user with userName {fields.user_name} exists")
    try:
        # One savepoint: a userName taken concurrently fails here, whichever flush sees it.
        async with session.begin_nested():
            if profile is None:
                assert principal.agency_id is not None
                profile = ScimUserProfile(agency_id=principal.agency_id, id=user.id)
                session.add(profile)
            await _apply_user(session, principal, user, profile, fields)
            await session.flush()
    except IntegrityError as exc:
        raise UniquenessException(detail=f"a user with userName {fields.user_name} exists") from exc
    return await get_user(session, user.id)


async def _apply_user(
    session: AsyncSession,
    principal: Principal,
    user: User,
    profile: ScimUserProfile,
    fields: UserFields,
) -> None:
    changed = False
    for obj, attr, value in (
        (user, "email", fields.user_name),
        (user, "name", fields.formatted),
        (profile, "external_id", fields.external_id),
        (profile, "given_name", fields.given_name),
        (profile, "family_name", fields.family_name),
    ):
        if getattr(obj, attr) != value:
            setattr(obj, attr, value)
            changed = True
    if fields.password is not None:
        user.password_hash = hash_password(fields.password)
        changed = True
    current = [(e.value, e.type, e.is_primary) for e in await repo.email_rows(session, user.id)]
    if current != fields.emails:
        for row in await repo.email_rows(session, user.id):
            await session.delete(row)
        for position, (value, kind, primary) in enumerate(fields.emails):
            session.add(
                ScimUserEmail(
                    agency_id=user.agency_id,
                    user_id=user.id,
                    position=position,
                    value=value,
                    type=kind,
                    is_primary=primary,
                )
            )
        changed = True
    active = UserStatus(user.status) is UserStatus.ACTIVE
    if fields.active != active:
        if not fields.active:
            await _deactivate(session, principal, user, "scim.user.deactivated")
        else:
            user.status = UserStatus.ACTIVE
            audit.record(
                session,
                "scim.user.reactivated",
                agency_id=user.agency_id,
                target_type="user",
                target_id=user.id,
            )
        changed = True
    if changed:
        user.updated_at = utcnow()


async def _deactivate(session: AsyncSession, principal: Principal, user: User, action: str) -> None:
    user.status = UserStatus.DISABLED
    revoked = await identity.revoke_user_sessions(session, user.id)
    audit.record(
        session,
        action,
        agency_id=user.agency_id,
        target_type="user",
        target_id=user.id,
        data={"sessions_revoked": revoked},
    )


async def delete_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
    """The directory deletes a person: they are disabled, signed out everywhere and lose
    every role and group; the user row stays (history keeps its author) but no longer
    exists for the directory (404), and a later POST with the same userName starts afresh."""
    row = await repo.user_row(session, user_id)
    if row is None:
        raise NotFoundException(detail="no such user")
    user, profile = row
    await access.check_may_act_on(principal, user.id)
    if UserStatus(user.status) is UserStatus.ACTIVE:
        await _deactivate(session, principal, user, "scim.user.deactivated")
    for m in await identity_users.memberships_of(session, user.id):
        await session.delete(m)
    for gm in await repo.directory_memberships_of(session, user.id):
        await session.delete(gm)
    for e in await repo.email_rows(session, user.id):
        await session.delete(e)
    if profile is None:
        assert principal.agency_id is not None
        profile = ScimUserProfile(agency_id=principal.agency_id, id=user.id)
        session.add(profile)
    profile.deleted_at = utcnow()
    user.updated_at = utcnow()
    audit.record(
        session,
        "scim.user.deleted",
        agency_id=user.agency_id,
        target_type="user",
        target_id=user.id,
    )
    await session.flush()


# ---- groups ----------------------------------------------------------------------------------


def _group_id(agency_id: uuid.UUID, key: str) -> uuid.UUID:
    """Built-in groups have ids derived from what they stand for: stable and race-free."""
    return uuid.uuid5(GROUP_ID_NAMESPACE, f"{agency_id}:{key}")


async def ensure_groups(session: AsyncSession) -> None:
    """Create the built-in groups that do not exist yet: one per agency role, and a
    "owners" and a "members" group per client (new clients since the last request)."""
    ctx = session.info.get("tenant")
    assert ctx is not None and ctx.agency_id is not None
    agency_id: uuid.UUID = ctx.agency_id
    wanted: list[ScimGroup] = []
    have = await repo.role_group_keys(session)
    for role in (Role.AGENCY_OWNER, Role.AGENCY_ADMIN, Role.AGENCY_STAFF):
        key = f"role:{role.value}"
        if key not in have:
            wanted.append(
                ScimGroup(
                    agency_id=agency_id,
                    id=_group_id(agency_id, key),
                    key=key,
                    kind=GroupKind.ROLE,
                    role=role,
                )
            )
    for client_id in await repo.clients_without_teams(session):
        for role in (Role.CLIENT_OWNER, Role.CLIENT_MEMBER):
            key = f"team:{client_id}:{role.value}"
            wanted.append(
                ScimGroup(
                    agency_id=agency_id,
                    id=_group_id(agency_id, key),
                    key=key,
                    kind=GroupKind.TEAM,
                    role=role,
                    client_id=client_id,
                )
            )
    if not wanted:
        return
    try:
        async with session.begin_nested():
            session.add_all(wanted)
            await session.flush()
    except IntegrityError:
        # A concurrent request made some of them first: add the others one by one.
        for group in wanted:
            try:
                async with session.begin_nested():
                    session.add(_copy_group(group))
                    await session.flush()
            except IntegrityError:
                pass


def _copy_group(g: ScimGroup) -> ScimGroup:
    return ScimGroup(
        agency_id=g.agency_id, id=g.id, key=g.key, kind=g.kind, role=g.role, client_id=g.client_id
    )


async def group_states(
    session: AsyncSession, rows: Sequence[tuple[ScimGroup, str]]
) -> list[GroupState]:
    members = await repo.members_of(session, [g for g, _ in rows])
    return [GroupState(g, name, members[g.id]) for g, name in rows]


async def get_group(session: AsyncSession, group_id: uuid.UUID) -> GroupState:
    await ensure_groups(session)
    row = await repo.group_row(session, group_id)
    if row is None:
        raise NotFoundException(detail="no such group")
    return (await group_states(session, [row]))[0]


async def _member_ids(session: AsyncSession, resource: s.Group) -> list[uuid.UUID]:
    out: list[uuid.UUID] = []
    for m in resource.members or []:
        if m.type is not None and m.type != "User":
            raise InvalidValueException(detail="groups contain users only")
        uid = ids.decode("usr", m.value or "")
        if uid is None:
            raise InvalidValueException(detail=f"no user with id {m.value!r}")
        if uid not in out:
            out.append(uid)
    known = await repo.existing_user_ids(session, out)
    missing = [u for u in out if u not in known]
    if missing:
        raise InvalidValueException(detail=f"no user with id {ids.encode('usr', missing[0])}")
    return out


def _display_name(resource: s.Group) -> str:
    name = _text(resource.display_name, "displayName", 255)
    if not name:
        raise InvalidValueException(detail="displayName is required")
    return name


async def create_group(
    session: AsyncSession, principal: Principal, resource: s.Group
) -> GroupState:
    """Directory groups: kept with their members so the directory stays in sync; they grant
    nothing in Switchboard. The built-in groups cannot be created (their names are taken)."""
    assert principal.agency_id is not None
    await ensure_groups(session)
    name = _display_name(resource)
    if await repo.group_named(session, name) is not None:
        raise UniquenessException(detail=f"a group named {name!r} exists")
    members = await _member_ids(session, resource)
    group_id = uuid.uuid4()
    group = ScimGroup(
        agency_id=principal.agency_id,
        id=group_id,
        key=f"dir:{group_id}",
        kind=GroupKind.DIRECTORY,
        display_name=name,
        external_id=_text(resource.external_id, "externalId", 255),
    )
    session.add(group)
    await session.flush()
    for uid in members:
        session.add(ScimGroupMember(agency_id=principal.agency_id, group_id=group.id, user_id=uid))
    await session.flush()
    return await get_group(session, group.id)


async def replace_group(
    session: AsyncSession, principal: Principal, group_id: uuid.UUID, resource: s.Group
) -> GroupState:
    current = await get_group(session, group_id)
    group = current.group
    name = _display_name(resource)
    changed = False
    if name != current.display_name:
        if GroupKind(group.kind) is not GroupKind.DIRECTORY:
            raise MutabilityException(
                attribute="displayName",
                detail="a built-in group is named after its role or client; it cannot be renamed",
            )
        if await repo.group_named(session, name, other_than=group.id) is not None:
            raise UniquenessException(detail=f"a group named {name!r} exists")
        group.display_name = name
        changed = True
    external_id = _text(resource.external_id, "externalId", 255)
    if external_id != group.external_id:
        group.external_id = external_id
        changed = True
    wanted = await _member_ids(session, resource)
    if set(wanted) != set(current.members):
        await _sync_members(session, principal, group, current.members, wanted)
        changed = True
    if changed:
        group.updated_at = utcnow()
        await session.flush()
    return await get_group(session, group.id)


async def _sync_members(
    session: AsyncSession,
    principal: Principal,
    group: ScimGroup,
    before: list[uuid.UUID],
    after: list[uuid.UUID],
) -> None:
    added = [u for u in after if u not in before]
    removed = [u for u in before if u not in after]
    if GroupKind(group.kind) is GroupKind.DIRECTORY:
        for uid in added:
            session.add(ScimGroupMember(agency_id=group.agency_id, group_id=group.id, user_id=uid))
        if removed:
            for gm in await repo.directory_members(session, group.id):
                if gm.user_id in removed:
                    await session.delete(gm)
        await session.flush()
        return
    assert group.role is not None
    role = Role(group.role)
    if role is Role.AGENCY_OWNER:
        raise ForbiddenException(
            detail="the Agency owners group is managed in Switchboard, not by the directory"
        )
    access.check_grant(principal, role)
    for uid in [*added, *removed]:  # a built-in group's members are roles: changes of people
        await access.check_may_act_on(principal, uid)
    for uid in added:
        await grant(session, uid, role, group.client_id)
    for uid in removed:
        await withdraw(session, uid, role, group.client_id)
    await session.flush()


async def grant(
    session: AsyncSession, user_id: uuid.UUID, role: Role, client_id: uuid.UUID | None
) -> Membership:
    """Give a user `role` (at agency scope, or on one client) because the directory says so.

    A person has one role per scope, so joining "Agency admins" moves a staff member out of
    "Agency staff". The caller has checked the person and the role (`access`): an owner's
    role is never changed here."""
    assert (role in AGENCY_ROLES) == (client_id is None) and role in AGENCY_ROLES | CLIENT_ROLES
    existing = await identity_users.membership_for(session, user_id, client_id)
    if existing is not None:
        if Role(existing.role) is not role:
            existing.role = role
        return existing
    ctx = session.info["tenant"]
    m = Membership(agency_id=ctx.agency_id, user_id=user_id, role=role, client_id=client_id)
    session.add(m)
    return m


async def withdraw(
    session: AsyncSession, user_id: uuid.UUID, role: Role, client_id: uuid.UUID | None
) -> None:
    existing = await identity_users.membership_for(session, user_id, client_id)
    if existing is not None and Role(existing.role) is role:
        await session.delete(existing)


async def delete_group(session: AsyncSession, principal: Principal, group_id: uuid.UUID) -> None:
    state = await get_group(session, group_id)
    if GroupKind(state.group.kind) is not GroupKind.DIRECTORY:
        raise ForbiddenException(
            detail="built-in groups follow the agency's roles and clients; they cannot be deleted"
        )
    await session.delete(state.group)
    await session.flush()


# ---- lists and patches ---------------------------------------------------------------------


@dataclass
class Query:
    """A list request: filter, sort and 1-based page window (already bounded)."""

    filter: str | None
    sort_by: str | None
    descending: bool
    start_index: int
    count: int


def _page_args(query: Query, attributes: Any) -> dict[str, Any]:
    """A SCIM list query as repository arguments: filter and sort resolved to SQL."""
    return {
        "where": to_condition(query.filter, attributes) if query.filter else None,
        "order_by": resolve_sort(query.sort_by, attributes) if query.sort_by else None,
        "descending": query.descending,
        "offset": query.start_index - 1,
        "limit": query.count,
    }


async def list_users(session: AsyncSession, query: Query) -> tuple[int, list[UserState]]:
    await ensure_groups(session)
    total, rows = await repo.users_page(session, **_page_args(query, repo.USER_ATTRIBUTES))
    return total, await user_states(session, rows)


async def list_groups(session: AsyncSession, query: Query) -> tuple[int, list[GroupState]]:
    await ensure_groups(session)
    total, rows = await repo.groups_page(session, **_page_args(query, repo.GROUP_ATTRIBUTES))
    return total, await group_states(session, rows)


async def search_all(
    session: AsyncSession, query: Query
) -> tuple[int, list[UserState | GroupState]]:
    """`POST /.search`: Users, then Groups, in one page window (RFC 7644 §3.4.3)."""
    await ensure_groups(session)
    maps = [repo.USER_ATTRIBUTES, repo.GROUP_ATTRIBUTES]
    wheres: list[Any] = to_conditions(query.filter, maps) if query.filter else [None, None]
    orders: list[Any] = [None, None]
    if query.sort_by:
        errors = []
        for i, attributes in enumerate(maps):
            try:
                orders[i] = resolve_sort(query.sort_by, attributes)
            except InvalidFilterException as exc:
                errors.append(exc)
        if len(errors) == len(maps):
            raise errors[0]
    offset, count = query.start_index - 1, query.count
    user_total, user_rows = await repo.users_page(
        session,
        where=wheres[0],
        order_by=orders[0],
        descending=query.descending,
        offset=offset,
        limit=count,
    )
    out: list[UserState | GroupState] = list(await user_states(session, user_rows))
    group_total, group_rows = await repo.groups_page(
        session,
        where=wheres[1],
        order_by=orders[1],
        descending=query.descending,
        offset=max(offset - user_total, 0),
        limit=count - len(out),
    )
    out.extend(await group_states(session, group_rows))
    return user_total + group_total, out


async def patch_user(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    patch: PatchOp[s.User],
    if_match: str | None,
) -> UserState:
    current = user_resource(await get_user(session, user_id), principal.agency_slug or "")
    await access.check_may_act_on(principal, user_id)  # even a PATCH that changes nothing
    check_version(current, if_match)
    patched = current.model_copy(deep=True)
    if not patch.patch(patched, s.POLICY):
        return await get_user(session, user_id)
    return await replace_user(session, principal, user_id, patched)


async def patch_group(
    session: AsyncSession,
    principal: Principal,
    group_id: uuid.UUID,
    patch: PatchOp[s.Group],
    if_match: str | None,
) -> GroupState:
    current = group_resource(await get_group(session, group_id), principal.agency_slug or "")
    check_version(current, if_match)
    patched = current.model_copy(deep=True)
    if not patch.patch(patched, s.POLICY):
        return await get_group(session, group_id)
    return await replace_group(session, principal, group_id, patched)
