"""A fresh benchmark database: create, migrate, bulk-load a synthetic tenant population.

The load uses binary COPY over one asyncpg connection as the connecting (super)user. Every
tenant table has FORCE ROW LEVEL SECURITY, and PostgreSQL refuses `COPY FROM` for a role that
row-level security applies to ("COPY FROM not supported with row-level security"), so the
restricted roles cannot bulk-load; a superuser bypasses RLS. `SET LOCAL row_security = off`
makes that explicit: with a role RLS would apply to, the load fails loudly instead of
silently writing nothing.

API keys are made with the application's own `make_api_key()` (format `sbk_<agency>_<secret>`,
SHA-256 of the whole key stored), so the HTTP benchmark authenticates exactly like production.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from tests.bench.config import BenchConfig

SEED = 20261123

_FIRST = (
    "Alba",
    "Bruno",
    "Chloé",
    "Dario",
    "Emma",
    "Farid",
    "Greta",
    "Hugo",
    "Inès",
    "Jonas",
    "Karim",
    "Léa",
    "Marta",
    "Nils",
    "Olga",
    "Paul",
    "Quentin",
    "Rosa",
    "Sami",
    "Tess",
)
_LAST = (
    "Martin",
    "Bernard",
    "Dubois",
    "Moreau",
    "Laurent",
    "Simon",
    "Michel",
    "Lefèvre",
    "Garcia",
    "Roux",
    "Fournier",
    "Girard",
    "Bonnet",
    "Dupont",
    "Lambert",
    "Fontaine",
)
_TRADES = (
    "Bakery",
    "Plumbing",
    "Dental Care",
    "Garage",
    "Florist",
    "Bistro",
    "Hair Studio",
    "Pharmacy",
    "Yoga",
    "Bookshop",
    "Optician",
    "Locksmith",
    "Pet Grooming",
    "Cafe",
    "Hardware",
    "Tailor",
    "Physio",
    "Veterinary",
    "Roofing",
    "Wine Bar",
)
_CITIES = (
    "Paris",
    "Lyon",
    "Lille",
    "Nantes",
    "Bordeaux",
    "Toulouse",
    "Nice",
    "Rennes",
    "Strasbourg",
    "Grenoble",
    "Dijon",
    "Angers",
    "Brest",
    "Metz",
    "Tours",
    "Caen",
)
_STAGES = ("prospect", "onboarding", "active", "active", "active", "paused", "churned")
_ACTIONS = (
    "client.created",
    "client.updated",
    "client.lifecycle_changed",
    "user.created",
    "auth.login",
    "api_key.created",
    "membership.created",
)
_HOURS = json.dumps(
    {"mon": ["09:00-12:00", "14:00-18:00"], "tue": ["09:00-18:00"], "sat": ["10:00-13:00"]}
)


@dataclass
class AgencyData:
    id: uuid.UUID
    slug: str
    api_key: str
    key_hash: str
    client_ids: list[uuid.UUID] = field(default_factory=list)
    user_ids: list[uuid.UUID] = field(default_factory=list)
    user_emails: list[str] = field(default_factory=list)


@dataclass
class Dataset:
    agencies: list[AgencyData]
    large: AgencyData
    rows: dict[str, int]
    generate_seconds: float
    load_seconds: float
    vacuum_seconds: float


# ---- database lifecycle ----------------------------------------------------------------------


async def recreate_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(target_url: str) -> None:
    """Point the application at the bench database and run the real Alembic chain."""
    os.environ["SWITCHBOARD_DATABASE_URL"] = target_url
    from services.settings import reset_settings_cache

    reset_settings_cache()
    from infra.migrate import upgrade

    upgrade()
    from services.kit.db import get_sync_engine

    get_sync_engine().dispose()


# ---- generation ----------------------------------------------------------------------------


class _Rows:
    """Row tuples per table, in the column order of `COLUMNS`."""

    def __init__(self) -> None:
        self.by_table: dict[str, list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.by_table[table].append(row)


COLUMNS: dict[str, tuple[str, ...]] = {
    "agencies": (
        "created_at",
        "updated_at",
        "id",
        "slug",
        "name",
        "status",
        "brand_logo_url",
        "brand_primary_color",
        "brand_accent_color",
        "support_email",
    ),
    "clients": (
        "created_at",
        "updated_at",
        "agency_id",
        "id",
        "legal_name",
        "display_name",
        "email",
        "phone",
        "website",
        "street",
        "city",
        "region",
        "postal_code",
        "country",
        "timezone",
        "categories",
        "hours",
        "notes",
        "lifecycle_stage",
        "lifecycle_changed_at",
    ),
    "users": (
        "created_at",
        "updated_at",
        "agency_id",
        "id",
        "email",
        "name",
        "password_hash",
        "status",
        "email_verified",
        "last_login_at",
    ),
    "memberships": ("agency_id", "id", "user_id", "role", "client_id", "created_at"),
    "client_assignments": ("agency_id", "id", "client_id", "user_id", "created_at"),
    "api_keys": (
        "agency_id",
        "id",
        "name",
        "key_hash",
        "prefix",
        "role",
        "client_id",
        "created_by",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ),
    "audit_events": (
        "agency_id",
        "id",
        "occurred_at",
        "actor_type",
        "actor_id",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "client_id",
        "data",
        "request_id",
        "ip",
        "unscoped_reason",
    ),
}


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def generate(cfg: BenchConfig) -> tuple[list[AgencyData], AgencyData, _Rows]:
    """The regular agencies, plus one large agency (`cfg.large_agency_clients` clients) that
    shows how the list queries scale with the size of a tenant."""
    from services.kit.crypto import hash_password

    gen = _Generator(random.Random(SEED), datetime.now(UTC), hash_password("benchmark-password"))
    agencies = [
        gen.agency(cfg, f"bench-{a:05d}", cfg.clients_per_agency) for a in range(cfg.agencies)
    ]
    large = gen.agency(cfg, "bench-large", cfg.large_agency_clients)
    return agencies, large, gen.rows


class _Generator:
    def __init__(self, rng: random.Random, now: datetime, password_hash: str) -> None:
        self.rng, self.now, self.password_hash = rng, now, password_hash
        self.rows = _Rows()

    def agency(self, cfg: BenchConfig, slug: str, n_clients: int) -> AgencyData:
        from services.identity.service import make_api_key

        rng, now, rows = self.rng, self.now, self.rows
        agency_id = _uuid(rng)
        created = now - timedelta(days=900, seconds=rng.randrange(86_400 * 100))
        raw_key, prefix, key_hash = make_api_key(agency_id)
        ag = AgencyData(agency_id, slug, raw_key, key_hash)
        rows.add(
            "agencies",
            (
                created,
                created,
                agency_id,
                slug,
                f"Agency {slug}",
                "active",
                None,
                "#2563eb",
                "#0f172a",
                f"support@{slug}.example",
            ),
        )
        for c in range(n_clients):
            cid = _uuid(rng)
            ag.client_ids.append(cid)
            at = now - timedelta(seconds=rng.randrange(86_400 * 730))
            trade, city = rng.choice(_TRADES), rng.choice(_CITIES)
            name = f"{rng.choice(_LAST)} {trade} {c}"
            rows.add(
                "clients",
                (
                    at,
                    at,
                    agency_id,
                    cid,
                    f"{name} SARL",
                    name,
                    f"contact{c}@{slug}-client.example",
                    f"+3314{rng.randrange(10**7):07d}",
                    f"https://c{c}.{slug}.example",
                    f"{rng.randrange(1, 200)} rue de la Paix",
                    city,
                    "Île-de-France",
                    f"{rng.randrange(10000, 99999)}",
                    "FR",
                    "Europe/Paris",
                    json.dumps([trade.lower()]),
                    _HOURS,
                    None,
                    rng.choice(_STAGES),
                    at,
                ),
            )
        staff: list[uuid.UUID] = []
        for u in range(cfg.users_per_agency):
            uid = _uuid(rng)
            email = f"user{u}@{slug}.example"
            ag.user_ids.append(uid)
            ag.user_emails.append(email)
            rows.add(
                "users",
                (
                    created,
                    created,
                    agency_id,
                    uid,
                    email,
                    f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                    self.password_hash,
                    "active",
                    True,
                    None,
                ),
            )
            if u == 0:
                role, client_id = "agency_owner", None
            elif u <= cfg.staff_per_agency:
                role, client_id = "agency_staff", None
                staff.append(uid)
            else:
                role, client_id = "client_owner", rng.choice(ag.client_ids)
            rows.add("memberships", (agency_id, _uuid(rng), uid, role, client_id, created))
        if staff:
            for cid in ag.client_ids:
                if rng.random() < cfg.assigned_share:
                    rows.add(
                        "client_assignments",
                        (agency_id, _uuid(rng), cid, rng.choice(staff), created),
                    )
        owner = ag.user_ids[0]
        rows.add(
            "api_keys",
            (
                agency_id,
                _uuid(rng),
                "Benchmark key",
                key_hash,
                prefix,
                "agency_admin",
                None,
                owner,
                created,
                None,
                None,
                None,
            ),
        )
        _, old_prefix, old_hash = make_api_key(agency_id)
        rows.add(
            "api_keys",
            (
                agency_id,
                _uuid(rng),
                "Old key",
                old_hash,
                old_prefix,
                "agency_admin",
                None,
                owner,
                created,
                created,
                None,
                created,
            ),
        )
        for _ in range(cfg.audit_events_per_agency):
            at = now - timedelta(seconds=rng.randrange(86_400 * 365))
            cid = rng.choice(ag.client_ids)
            rows.add(
                "audit_events",
                (
                    agency_id,
                    _uuid(rng),
                    at,
                    "user",
                    owner,
                    f"user0@{slug}.example",
                    rng.choice(_ACTIONS),
                    "client",
                    cid,
                    cid,
                    '{"field": {"from": "a", "to": "b"}}',
                    uuid.UUID(int=rng.getrandbits(128)).hex,
                    "203.0.113.7",
                    None,
                ),
            )
        return ag


# ---- load ----------------------------------------------------------------------------------


async def load(target_url: str, rows: _Rows) -> dict[str, int]:
    conn = await asyncpg.connect(target_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL row_security = off")
            for table, columns in COLUMNS.items():  # parents before children
                records: Sequence[tuple[Any, ...]] = rows.by_table[table]
                await conn.copy_records_to_table(table, records=records, columns=columns)
        counts = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in COLUMNS}
    finally:
        await conn.close()
    return counts


async def vacuum_analyze(target_url: str) -> None:
    conn = await asyncpg.connect(target_url)
    try:
        for table in COLUMNS:
            await conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        await conn.close()


def build(cfg: BenchConfig) -> Dataset:
    """Recreate, migrate and fill the bench database. Leaves SWITCHBOARD_DATABASE_URL set."""
    asyncio.run(recreate_database(cfg.admin_url, cfg.db_name))
    migrate(cfg.target_url)
    t0 = time.perf_counter()
    agencies, large, rows = generate(cfg)
    t1 = time.perf_counter()
    counts = asyncio.run(load(cfg.target_url, rows))
    t2 = time.perf_counter()
    asyncio.run(vacuum_analyze(cfg.target_url))
    t3 = time.perf_counter()
    return Dataset(agencies, large, counts, t1 - t0, t2 - t1, t3 - t2)
