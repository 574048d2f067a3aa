"""Seed data for `switchboard demo`: one agency, its team, a handful of clients."""

from __future__ import annotations

from typing import Any

import tenants  # noqa: F401
from services.agencies import repository as agencies
from services.agencies import service as agency_service
from services.agencies.schemas import AgencyCreate
from services.clients import service as clients_service
from services.clients.schemas import ClientCreate, ClientSort
from services.identity import repository as identity_repo
from services.identity import service as identity
from services.kit import ids
from services.kit.db import unit_of_work
from tenants.models import Membership
from tenants.principal import Principal
from tenants.roles import ROLE_PERMISSIONS, Role
from tenants.scoping import scope_to, unscoped

SLUG = "northwind"
PASSWORD = "demo-password-2026"  # noqa: S105  (printed by the demo on purpose)
OWNER = "owner@northwind.example"
STAFF = "sam@northwind.example"
CLIENT_OWNER = "maria@bellavista.example"
SOLUTION_NAME = "Bella Bookings"
SOLUTION_DESCRIPTION = "Table reservations and guest list (the sample solution app)"

CLIENTS: list[dict[str, Any]] = [
    {
        "legal_name": "Bella Vista Bistro SARL",
        "display_name": "Bella Vista Bistro",
        "email": "hello@bellavista.example",
        "phone": "+33 1 42 68 53 00",
        "website": "bellavista.example",
        "street": "12 Rue de Lyon",
        "city": "Paris",
        "postal_code": "75012",
        "country": "FR",
        "timezone": "Europe/Paris",
        "categories": ["restaurant", "italian"],
        "lifecycle_stage": "active",
        "hours": {"tue": ["12:00-14:30", "19:00-23:00"], "sat": ["12:00-23:00"]},
    },
    {
        "legal_name": "Harbor Lane Florist LLC",
        "display_name": "Harbor Lane Florist",
        "email": "orders@harborlane.example",
        "phone": "+1 207 555 0134",
        "city": "Portland",
        "region": "ME",
        "country": "US",
        "timezone": "America/New_York",
        "categories": ["florist", "ecommerce"],
        "lifecycle_stage": "active",
    },
    {
        "legal_name": "Summit Physio Ltd",
        "display_name": "Summit Physiotherapy",
        "email": "frontdesk@summitphysio.example",
        "phone": "+44 20 7946 0321",
        "city": "London",
        "country": "GB",
        "timezone": "Europe/London",
        "categories": ["health", "clinic"],
        "lifecycle_stage": "onboarding",
    },
    {
        "legal_name": "Copper Kettle Coffee Co.",
        "display_name": "Copper Kettle Coffee",
        "city": "Austin",
        "region": "TX",
        "country": "US",
        "timezone": "America/Chicago",
        "categories": ["cafe"],
        "lifecycle_stage": "prospect",
    },
    {
        "legal_name": "Nordlys Yoga AS",
        "display_name": "Nordlys Yoga",
        "city": "Oslo",
        "country": "NO",
        "timezone": "Europe/Oslo",
        "categories": ["fitness"],
        "lifecycle_stage": "paused",
    },
    {
        "legal_name": "Greenfield Hardware Inc.",
        "display_name": "Greenfield Hardware",
        "city": "Denver",
        "region": "CO",
        "country": "US",
        "timezone": "America/Denver",
        "categories": ["retail"],
        "lifecycle_stage": "churned",
    },
]


async def seed(sample_app_url: str | None = None) -> dict[str, Any]:
    """Create the demo agency once; on later runs, reuse it. Always issues a fresh API key.
    With `sample_app_url`, also registers the sample solution app served there (`switchboard
    sample-app`) and enables it for the demo client; a fresh client secret is returned."""
    async with unit_of_work() as session:
        session.info["principal"] = Principal.operator()
        async with unscoped(session, "demo: look for the demo agency"):
            agency = await agencies.by_slug(session, SLUG)
        if agency is None:
            made = await agency_service.onboard(
                session,
                AgencyCreate(
                    slug=SLUG,
                    name="Northwind Digital",
                    admin_email=OWNER,
                    admin_name="Olivia Owner",
                    admin_password=PASSWORD,
                ),
            )
            agency = made.agency
            agency.support_email = "support@northwind.example"
            owner = Principal(
                kind="user",
                agency_id=agency.id,
                agency_slug=agency.slug,
                role=Role.AGENCY_OWNER,
                permissions=ROLE_PERMISSIONS[Role.AGENCY_OWNER],
                user_id=made.owner.id,
                label=OWNER,
            )
            await scope_to(session, owner)
            staff = await identity.create_user(
                session, agency.id, email=STAFF, name="Sam Staff", password=PASSWORD
            )
            staff.email_verified = True  # the demo's people are set up by the operator
            session.add(Membership(agency_id=agency.id, user_id=staff.id, role=Role.AGENCY_STAFF))
            await session.flush()
            views = []
            for i, data in enumerate(CLIENTS):
                body = ClientCreate(**data)
                if i < 3:
                    body.assigned_staff = [ids.encode("usr", staff.id)]
                views.append(await clients_service.create(session, owner, body))
            client_user = await identity.create_user(
                session, agency.id, email=CLIENT_OWNER, name="Maria Rossi", password=PASSWORD
            )
            client_user.email_verified = True
            session.add(
                Membership(
                    agency_id=agency.id,
                    user_id=client_user.id,
                    role=Role.CLIENT_OWNER,
                    client_id=views[0].client.id,
                )
            )
            await session.flush()
        principal = Principal.acting_in(agency.id, agency.slug, "demo seed")
        await scope_to(session, principal)
        _, raw = await identity.create_api_key(session, principal, name="Demo key")
        owner_user = await identity_repo.user_by_email(session, OWNER)
        solution: dict[str, Any] | None = None
        if sample_app_url:
            solution = await _sample_solution(session, principal, sample_app_url)
    return {
        "solution": solution,
        "slug": SLUG,
        "api_key": raw,
        "owner_email": owner_user.email if owner_user else OWNER,
        "staff_email": STAFF,
        "client_email": CLIENT_OWNER,
        "client_name": CLIENTS[0]["display_name"],
        "password": PASSWORD,
    }


async def _sample_solution(session: Any, principal: Principal, url: str) -> dict[str, Any]:
    """The sample solution as a relying party of the demo agency, enabled for the first demo
    client. Its secret is rotated on every run (only its hash is stored)."""
    from services.oauth2 import service as oauth2
    from services.oauth2.schemas import OAuthClientCreate, OAuthClientUpdate
    from services.oauth2.server import issuer_for

    url = url.rstrip("/")
    shape = {
        "redirect_uris": [f"{url}/callback"],
        "post_logout_redirect_uris": [f"{url}/"],
        "initiate_login_uri": f"{url}/login",
        "backchannel_logout_uri": f"{url}/backchannel-logout",
        "backchannel_logout_session_required": True,
        "description": SOLUTION_DESCRIPTION,
    }
    existing = [r for r in await oauth2.list_clients(session) if r.name == SOLUTION_NAME]
    if existing:
        row = await oauth2.update_client(
            session, existing[0].id, OAuthClientUpdate(solution=True, **shape)
        )
        row, secret = await oauth2.rotate_client_secret(session, row.id)
    else:
        row, made_secret = await oauth2.create_client(
            session,
            principal,
            OAuthClientCreate(name=SOLUTION_NAME, first_party=True, solution=True, **shape),
        )
        assert made_secret is not None
        secret = made_secret
    from services.clients import repository as clients_repo

    found = await clients_repo.page(
        session,
        q=CLIENTS[0]["display_name"],
        stage=None,
        sort=ClientSort.NAME,
        after=None,
        limit=5,
    )
    bella = next(c for c in found if c.display_name == CLIENTS[0]["display_name"])
    await oauth2.enable_solution(session, principal, bella.id, row.id)
    assert principal.agency_slug is not None
    return {
        "name": SOLUTION_NAME,
        "client_id": ids.encode("oac", row.id),
        "client_secret": secret,
        "issuer": issuer_for(principal.agency_slug),
        "url": url,
    }
