"""OpenID Connect Back-Channel Logout 1.0, the provider's side.

When portal sessions end (`identity.service.end_sessions`, the one place they end: sign-out,
"sign out everywhere", a password reset, a person disabled through the API or SCIM),
`sessions_ended` runs in the same transaction:

* the tokens issued in those sessions are revoked, except grants made with `offline_access`
  (§2.7: those are meant to outlive the session);
* for every relying party with a `backchannel_logout_uri` that the session signed in to (an
  authorization code was issued to it in that session, `SessionClient`), one job
  `oauth2.backchannel_logout.deliver` is queued; it is published after the commit.

The job (`services/oauth2/tasks.py` → `deliver`) mints the Logout Token at send time (so no
token sits in the outbox and none is stale when a retry goes out), signs it with the agency's
ID-token key for that client, and POSTs `logout_token=…` as a form to the URI through the
one outbound rule (`services/kit/outbound.py`: no private addresses in production, no
redirects). 200 and 204 are success; a 5xx or a network failure is retried with backoff
(a new token each time); any other answer is final. The outcome is audited on the client
(`oauth2.backchannel_logout.delivered` / `.failed`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import structlog
from authlib.oauth2.rfc6749 import scope_to_list
from joserfc import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import service as identity
from services.identity.models import UserSession
from services.kit import ids, jobs, outbound
from services.kit.crypto import new_token
from services.kit.types import utcnow
from services.oauth2 import repository as repo
from services.oauth2.models import OAuthClient
from services.oauth2.server import (
    CLIENT_PREFIX,
    USER_PREFIX,
    ProviderContext,
    issuer_for,
    session_sid,
)
from services.settings import get_settings
from tenants import audit
from tenants.models import Agency

log = structlog.get_logger("switchboard.oauth2.backchannel")

TASK = "oauth2.backchannel_logout.deliver"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYP = "logout+jwt"  # noqa: S105  (a media type)
OFFLINE_SCOPE = "offline_access"
ATTEMPTS = 3
BACKOFF_SECONDS = 0.5  # then 1 s: a relying party that is down for longer misses the logout
TIMEOUT_SECONDS = 5.0


async def sessions_ended(session: AsyncSession, rows: Sequence[UserSession]) -> int:
    """Portal sessions have just ended: revoke what they issued, queue the logout tokens.
    Returns how many logouts were queued."""
    if not rows:
        return 0
    session_ids = [row.id for row in rows]
    agency_of = {row.id: row.agency_id for row in rows}
    now = utcnow()

    def work(s: Any) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
        doomed = [
            t.id
            for t in repo.live_session_tokens(s, session_ids)
            if OFFLINE_SCOPE not in (scope_to_list(t.scope) or [])
        ]
        repo.revoke_tokens(s, doomed, now)
        return [
            (sc.client_id, sc.session_id, sc.user_id)
            for sc, _ in repo.logout_targets(s, session_ids)
        ]

    targets = await session.run_sync(work)
    for client_id, session_id, user_id in targets:
        jobs.enqueue(
            session,
            TASK,
            agency_of[session_id],
            client_id=str(client_id),
            session_id=str(session_id),
            user_id=str(user_id),
        )
    return len(targets)


# ---- the logout token -------------------------------------------------------------------------


def logout_token(
    ctx: ProviderContext, client: OAuthClient, user_id: uuid.UUID, session_id: uuid.UUID
) -> str:
    """§2.4: a JWT signed like the client's ID tokens, `typ` logout+jwt, with iss, aud, iat,
    exp, jti, sub, sid and the back-channel logout event; never a nonce."""
    alg = client.id_token_signed_response_alg or "RS256"
    key = ctx.signing_key(alg)
    now = int(time.time())
    claims = {
        "iss": ctx.issuer,
        "aud": ids.encode(CLIENT_PREFIX, client.id),
        "iat": now,
        "exp": now + get_settings().oauth2_logout_token_ttl_seconds,
        "jti": new_token(16),
        "sub": ids.encode(USER_PREFIX, user_id),
        "sid": session_sid(ctx.agency_id, session_id),
        "events": {LOGOUT_EVENT: {}},
    }
    header = {"alg": alg, "kid": str(key.kid), "typ": LOGOUT_TOKEN_TYP}
    return jwt.encode(header, claims, key, algorithms=[alg])


# ---- delivery ---------------------------------------------------------------------------------


@dataclass
class Delivery:
    delivered: bool
    attempts: int
    status: int | None = None
    error: str | None = None


async def _send(uri: str, mint: Any) -> Delivery:
    error: str | None = None
    status: int | None = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            resp = await outbound.post_form(
                uri, {"logout_token": mint()}, timeout_seconds=TIMEOUT_SECONDS
            )
        except outbound.Refused as exc:
            return Delivery(False, attempt, error=str(exc))
        except httpx.HTTPError as exc:
            status, error = None, f"network: {type(exc).__name__}"
        else:
            status = resp.status_code
            if status in (200, 204):
                return Delivery(True, attempt, status)
            if status < 500:  # the app refused this token: sending it again changes nothing
                return Delivery(False, attempt, status, f"refused with HTTP {status}")
            error = f"HTTP {status}"
        if attempt < ATTEMPTS:
            await anyio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
    return Delivery(False, ATTEMPTS, status, error)


async def deliver(
    session: AsyncSession,
    agency: Agency,
    client_id: uuid.UUID,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
) -> Delivery | None:
    """Send one logout token and audit the outcome (None: the app is gone or no longer
    asks for logouts)."""
    client = await session.run_sync(repo.client, client_id)
    if client is None or not client.backchannel_logout_uri:
        log.info("oauth2.backchannel_logout.skipped", client_id=str(client_id))
        return None
    ctx = ProviderContext(
        session=session.sync_session,
        agency_id=agency.id,
        agency_slug=agency.slug,
        agency_name=agency.name,
        issuer=issuer_for(agency.slug),
    )
    # The key is loaded (decrypted) once, on the session's own thread, before the sends.
    await session.run_sync(lambda _s: ctx.signing_key(client.id_token_signed_response_alg))
    result = await _send(
        client.backchannel_logout_uri, lambda: logout_token(ctx, client, user_id, session_id)
    )
    data: dict[str, Any] = {
        "user_id": ids.encode(USER_PREFIX, user_id),
        "sid": session_sid(agency.id, session_id),
        "uri": client.backchannel_logout_uri,
        "attempts": result.attempts,
        "status": result.status,
    }
    if result.delivered:
        action = "oauth2.backchannel_logout.delivered"
    else:
        action = "oauth2.backchannel_logout.failed"
        data["error"] = result.error
        log.warning(
            "oauth2.backchannel_logout.failed",
            client_id=ids.encode(CLIENT_PREFIX, client.id),
            attempts=result.attempts,
            status=result.status,
            error=result.error,
        )
    audit.record(
        session,
        action,
        agency_id=agency.id,
        target_type="oauth_client",
        target_id=client.id,
        data=data,
    )
    return result


# Identity ends sessions without importing the provider; the provider subscribes. This
# module is loaded wherever sessions can end: by the app and by every worker (through
# services.oauth2.tasks, listed in services/tasks.py).
identity.on_sessions_ended(sessions_ended)
