"""The purge of expired credentials: only what is past its expiry and grace period goes, in
every agency; fresh credentials stay."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta


async def _rows(agency, user_id, client_row_id, age: timedelta):
    from services.identity.models import AuthThrottle, PasswordReset, UserSession
    from services.kit.crypto import sha256_hex
    from services.kit.types import utcnow
    from services.oauth2.models import AuthorizationCode, OAuthToken, TokenKind

    now = utcnow()
    then = now - age
    a = agency.id
    return [
        AuthorizationCode(
            agency_id=a,
            code_hash=sha256_hex(secrets.token_hex()),
            client_id=client_row_id,
            user_id=user_id,
            redirect_uri="https://rp.example/cb",
            scope="openid",
            auth_time=then,
            expires_at=then,
        ),
        OAuthToken(
            agency_id=a,
            kind=TokenKind.REFRESH,
            token_hash=sha256_hex(secrets.token_hex()),
            family_id=uuid.uuid4(),
            client_id=client_row_id,
            user_id=user_id,
            expires_at=then,
        ),
        UserSession(
            agency_id=a,
            user_id=user_id,
            token_hash=sha256_hex(secrets.token_hex()),
            expires_at=then,
        ),
        PasswordReset(
            agency_id=a,
            user_id=user_id,
            token_hash=sha256_hex(secrets.token_hex()),
            expires_at=then,
        ),
        AuthThrottle(agency_id=a, key=f"k:{secrets.token_hex(4)}", window_started_at=then),
    ]


async def test_purge_removes_only_expired_credentials_of_every_agency(client, make_agency):
    from sqlalchemy import func, select

    from services.identity.models import AuthThrottle, PasswordReset, UserSession
    from services.kit import ids
    from services.kit.db import unit_of_work
    from services.oauth2.models import AuthorizationCode, OAuthToken
    from services.retention import purge_all
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    tables = (AuthorizationCode, OAuthToken, UserSession, PasswordReset, AuthThrottle)
    agencies = [await make_agency(), await make_agency()]
    for agency in agencies:
        made = await client.post(
            "/api/v1/oauth-clients",
            headers=agency.headers,
            json={"name": "rp", "redirect_uris": ["https://rp.example/cb"]},
        )
        rp = ids.decode("oac", made.json()["id"])
        owner = ids.decode("usr", agency.owner_user_id)
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id))
            session.add_all(await _rows(agency, owner, rp, timedelta(days=30)))  # old
            session.add_all(await _rows(agency, owner, rp, timedelta(minutes=-30)))  # fresh

    counts = await purge_all()
    assert counts["authorization_codes"] >= 2 and counts["tokens"] >= 2
    assert counts["user_sessions"] >= 2 and counts["password_resets"] >= 2
    assert counts["auth_throttles"] >= 2
    for agency in agencies:
        async with unit_of_work() as session:
            await set_tenant(session, TenantContext.for_agency(agency.id))
            for model in tables:
                left = (await session.execute(select(func.count()).select_from(model))).scalar()
                assert left >= 1, model.__name__  # the fresh rows stay


def test_the_purge_is_scheduled():
    import services.retention  # noqa: F401
    from services.schedule import BEAT_SCHEDULE
    from services.worker import celery_app

    assert BEAT_SCHEDULE["maintenance.purge_expired"]["task"] == "maintenance.purge_expired"
    assert "maintenance.purge_expired" in celery_app.tasks
