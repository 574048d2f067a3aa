"""Agency use cases: onboarding a new agency (operator), branding (agency admins)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.agencies import repository as repo
from services.agencies.schemas import AgencyCreate, AgencyUpdate, Branding
from services.identity import service as identity
from services.identity.keycache import invalidate_on_commit
from services.kit.errors import Conflict, NotFound
from services.kit.types import utcnow
from tenants.context import TenantContext
from tenants.models import Agency, Membership, User
from tenants.principal import Principal
from tenants.roles import Role
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
    await invalidate_on_commit(session)  # the name is in ID tokens (cached issuer agencies)
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
    await invalidate_on_commit(session)  # a suspended agency's keys stop working at once
    return agency


async def by_public_slug(session: AsyncSession, slug: str) -> Agency | None:
    """The agency a public portal address names (`/a/{slug}/...`), looked up before anyone
    is signed in; the caller then puts the session in that tenant."""
    async with unscoped(session, "portal: resolve agency by slug"):
        return await repo.by_slug(session, slug)
