"""Purging what the provider no longer needs: authorization codes and tokens past their
expiry (plus a grace period, so that a late replay is still recognised and logged as such).

Runs for every agency at once under the audited bypass (`unscoped`): the rows are expired
credentials, never data a tenant reads. Scheduled by beat (`services/schedule.py`), and run
in-process by the web process on the embedded default.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlmodel import col

from services.kit.db import unit_of_work
from services.kit.types import utcnow
from services.oauth2.models import AuthorizationCode, OAuthToken
from tenants.scoping import unscoped

# A used or expired code is kept a day, so that a replay is still recognised (and revokes
# what the code issued); tokens a week past expiry, for reuse detection and investigations.
CODE_GRACE = timedelta(days=1)
TOKEN_GRACE = timedelta(days=7)


async def purge_expired() -> dict[str, int]:
    now = utcnow()
    async with (
        unit_of_work() as session,
        unscoped(session, "retention: purge expired OIDC codes and tokens"),
    ):
        codes = await session.execute(
            delete(AuthorizationCode).where(col(AuthorizationCode.expires_at) < now - CODE_GRACE)
        )
        tokens = await session.execute(
            delete(OAuthToken).where(col(OAuthToken.expires_at) < now - TOKEN_GRACE)
        )
    return {
        "authorization_codes": cast(CursorResult[Any], codes).rowcount or 0,
        "tokens": cast(CursorResult[Any], tokens).rowcount or 0,
    }
