"""Agency use cases: onboarding a new agency (operator), branding (agency admins), and the
one resolution of the agency a public address names (`active_agency`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.agencies import repository as repo
from services.agencies.schemas import SLUG_RE, AgencyCreate, AgencyUpdate, Branding
from services.identity import service as identity
from services.identity.keycache import invalidate_on_commit, principal_cache
from services.kit.cache import FollowerCache, columns_of, row_from
from services.kit.errors import Conflict, Forbidden, NotFound
from services.kit.types import utcnow
from tenants.context import TenantContext
from tenants.models import Agency, AgencyStatus, Membership, User
from tenants.principal import Principal
from tenants.roles import Permission, Role
from tenants.scoping import set_tenant, unscoped


@dataclass
class OnboardedAgency:
    agency: Agency
    owner: User
    api_key: str


async def onboard(session: AsyncSession, data: AgencyCreate) -> OnboardedAgency:
    """Create an agency, its owner and an admin API key (platform operator work)."""
    agency = Agency(slug=data.slug, name=data.name)
    async with unscoped(session, "operator: create an agency"):
        if await repo.by_slug(session, data.slug) is not None:
            raise Conflict(f"the slug {data.slug!r} is taken", field="slug")
        session.add(agency)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"the slug {data.slug!r} is taken", field="slug") from exc
    # The new agency is its own tenant from here on: every row below is written inside it.
    await set_tenant(session, TenantContext.for_agency(agency.id), Principal.operator())
    owner = await identity.create_user(
        session,
        agency.id,
        email=str(data.admin_email),
        name=data.admin_name,
        password=data.admin_password,
    )
    session.add(Membership(agency_id=agency.id, user_id=owner.id, role=Role.AGENCY_OWNER))
    await session.flush()
    system = Principal.acting_in(agency.id, agency.slug, "agency onboarding")
    _, raw = await identity.create_api_key(session, system, name="Admin key (onboarding)")
    return OnboardedAgency(agency, owner, raw)


def _apply(agency: Agency, data: Branding) -> None:
    fields: dict[str, Any] = data.model_dump(exclude_unset=True)
    for key in ("brand_logo_url", "support_email", "mail_from_address"):
        if fields.get(key) is not None:
            fields[key] = str(getattr(data, key))
    for key, value in fields.items():
        setattr(agency, key, value)
    if fields:
        agency.updated_at = utcnow()


async def update_branding(session: AsyncSession, agency_id: uuid.UUID, data: Branding) -> Agency:
    agency = await repo.by_id(session, agency_id)
    if agency is None:
        raise NotFound("no such agency")
    _apply(agency, data)
    await session.flush()
    await invalidate_on_commit(session)  # cached agencies (`active_agency`): name, branding
    return agency


async def operator_update(
    session: AsyncSession, agency_id: uuid.UUID, data: AgencyUpdate
) -> Agency:
    async with unscoped(session, "operator: update an agency"):
        agency = await repo.by_id(session, agency_id)
        if agency is None:
            raise NotFound("no such agency")
        _apply(agency, data)
        await session.flush()
    # A suspended agency's keys stop working at once, and its addresses stop resolving
    # (`active_agency`) in every process.
    await invalidate_on_commit(session)
    return agency


# Active agencies by slug, as column values (a fresh `Agency` per request): every portal
# page, issuer request and SCIM call names its agency. They follow the API-key cache: every
# change of an agency (`update_branding`, `operator_update`) invalidates them on commit, in
# every process (services/kit/cache.py). Unknown and suspended slugs are never cached.
_active_by_slug: FollowerCache[str, dict[str, Any]] = FollowerCache(principal_cache)


async def active_agency(session: AsyncSession, slug: str) -> Agency | None:
    """The active agency a public address names (`/a/{slug}/...`: portal pages, its OpenID
    issuer, its SCIM service, the issuer of an access token), or None when the slug is
    malformed, unknown or names a suspended agency. Looked up before anyone is known (an
    explicit, logged bypass of the tenant filter); the caller then enters that tenant.

    What it returns may be a cached copy in no session: read it, never change it (changes go
    through `update_branding` / `operator_update`, which load the row themselves)."""
    fields = _active_by_slug.get(slug)
    if fields is not None:
        return row_from(Agency, fields)
    if not SLUG_RE.match(slug):
        return None
    generation = _active_by_slug.generation()
    async with unscoped(session, "resolve the agency a public address names"):
        found = await repo.by_slug(session, slug)
    if found is None or found.status != AgencyStatus.ACTIVE:
        return None
    _active_by_slug.put(slug, columns_of(found), generation)
    return found


# ---- reads (the API's) ------------------------------------------------------------------


async def operator_page(
    session: AsyncSession, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Agency]:
    """Every agency, for the platform operator (an explicit, logged bypass)."""
    async with unscoped(session, "operator: list agencies"):
        return list(await repo.page(session, after=after, limit=limit))


async def get(session: AsyncSession, principal: Principal, agency_id: uuid.UUID) -> Agency:
    """One agency: any of them for the operator; otherwise the caller's own (another's id is
    a 404, as if it did not exist), with the agency:read permission."""
    if principal.is_operator:
        async with unscoped(session, "operator: read an agency"):
            agency = await repo.by_id(session, agency_id)
    elif principal.can(Permission.AGENCY_READ):
        agency = await repo.by_id(session, agency_id)  # scoped: only your own is visible
    else:
        raise Forbidden("this needs the agency:read permission")
    if agency is None:
        raise NotFound("no such agency")
    return agency
