"""API keys: `sbk_<agency>_<secret>`, resolved to a Principal (cached per process, see
`keycache`), created with a role the caller may grant, and revoked."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import access
from services.identity import repository as repo
from services.identity.keycache import invalidate_on_commit, last_used, principal_cache
from services.identity.models import ApiKey
from services.identity.sessions import LAST_USED_RESOLUTION
from services.identity.users import require_client
from services.kit.crypto import (
    MintedToken,
    agency_of_token,
    constant_time_equal,
    mint_agency_token,
    sha256_hex,
)
from services.kit.errors import NotFound, Unauthorized, ValidationFailed
from services.kit.types import utcnow
from services.settings import get_settings
from tenants.context import TenantContext
from tenants.models import AgencyStatus
from tenants.principal import Principal
from tenants.reads import tenant_reads
from tenants.roles import AGENCY_ROLES, CLIENT_ROLES, Role, permissions_for

API_KEY_PREFIX = "sbk"


def make_api_key(agency_id: uuid.UUID) -> MintedToken:
    """A new key: `sbk_<agency>_<secret>`. Returns (key, display prefix, sha256)."""
    return mint_agency_token(API_KEY_PREFIX, agency_id)


def agency_of_api_key(raw: str) -> uuid.UUID | None:
    """The agency a key names (the lookup then happens inside that tenant only)."""
    return agency_of_token(API_KEY_PREFIX, raw)


_operator_key_hash: tuple[str, str] | None = None


def _is_operator_key(key_hash: str) -> bool:
    global _operator_key_hash
    configured = get_settings().operator_api_key
    if not configured:
        return False
    if _operator_key_hash is None or _operator_key_hash[0] != configured:
        _operator_key_hash = (configured, sha256_hex(configured))
    return constant_time_equal(key_hash, _operator_key_hash[1])


async def resolve_api_key(raw: str) -> Principal:
    """Turn an `Authorization: Bearer` value into a Principal: from the per-process cache
    (see keycache), or with one read-only transaction in the key's agency (lean read path)."""
    key_hash = sha256_hex(raw)
    if _is_operator_key(key_hash):
        return Principal.operator()
    agency_id = agency_of_api_key(raw)
    if agency_id is None:
        raise Unauthorized("the bearer token is not a Switchboard API key")
    cached = principal_cache.get(key_hash)
    if cached is not None and cached.agency_id == agency_id:
        return cached
    generation = principal_cache.generation
    async with tenant_reads(TenantContext.for_agency(agency_id)) as reads:
        key = await reads.one_or_none(repo.API_KEY_BY_HASH, key_hash=key_hash)
    now = utcnow()
    if key is None:
        raise Unauthorized("the API key is unknown, revoked or expired")
    if key["revoked_at"] is not None or (key["expires_at"] and key["expires_at"] <= now):
        raise Unauthorized("the API key is unknown, revoked or expired")
    if key["agency_status"] != AgencyStatus.ACTIVE:
        raise Unauthorized("the agency of this API key is not active")
    if key["last_used_at"] is None or now - key["last_used_at"] > LAST_USED_RESOLUTION:
        await last_used.record(agency_id, key["id"], now)
    role = Role(key["role"])
    principal = Principal(
        kind="api_key",
        agency_id=agency_id,
        agency_slug=key["agency_slug"],
        role=role,
        permissions=permissions_for({role}),
        client_ids=frozenset({key["client_id"]}) if key["client_id"] else None,
        api_key_id=key["id"],
        label=f"API key {key['name']}",
    )
    principal_cache.put(key_hash, principal, key["expires_at"], generation)
    return principal


async def create_api_key(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    role: Role | None = None,
    client_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    assert principal.agency_id is not None
    if client_id is not None:
        await require_client(session, client_id)
        role = role or Role.CLIENT_OWNER
        if role not in CLIENT_ROLES:
            raise ValidationFailed("a client-scoped key takes a client role", field="role")
    else:
        role = role or Role.AGENCY_ADMIN
        if role not in AGENCY_ROLES:
            raise ValidationFailed("an agency-wide key takes an agency role", field="role")
    access.check_grant(principal, role)
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    raw, prefix, key_hash = make_api_key(principal.agency_id)
    key = ApiKey(
        agency_id=principal.agency_id,
        name=name,
        key_hash=key_hash,
        prefix=prefix,
        role=role,
        client_id=client_id,
        created_by=principal.actor_id,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return key, raw


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    key = await repo.api_key(session, key_id)
    if key is None:
        raise NotFound("no such API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    await invalidate_on_commit(session, key.key_hash)
    return key


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    return list(await repo.api_keys(session))


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    found = await repo.api_key(session, key_id)
    if found is None:
        raise NotFound("no such API key")
    return found
