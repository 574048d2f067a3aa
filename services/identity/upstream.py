"""Upstream sign-in: "Continue with Google / Microsoft" on an agency's portal.

An agency brings its own OAuth client (client id + secret, and for Microsoft the directory:
`common`, `organizations` or a directory id). The secret is sealed at rest (AES-256-GCM,
bound to the agency and the provider) and never leaves the server again.

The flow (protocol in `upstream_oidc`):

1. `begin` makes a random `state`, `nonce` and PKCE verifier and seals them, with the
   destination and the issue time, into a *state* the browser keeps for ten minutes. The seal
   authenticates the agency, the provider and the SHA-256 of the browser's CSRF cookie, so
   the state opens only in the browser that started, for that agency and provider.
2. `complete` (the callback) refuses: a state that does not open or whose `state` differs
   from the one returned; an error answer from the provider; a code the token endpoint
   refuses; an ID token that fails any check. Then it finds the person:
   * an external identity already linked (agency, provider, subject) → its person;
   * else a person of *this* agency with the same e-mail, when the provider vouches for the
     address (Google: `email_verified`; Microsoft: `xms_edov`) → linked now
     (`auth.upstream_linked`);
   * else refused: accounts are never created from an upstream sign-in.
3. The session opens exactly like after a password: half-open (`mfa_pending`) when the
   person has a second factor, so the upstream account counts as the first factor only.

Refusals are returned as `UpstreamRefused` carrying the message for the person; the caller
returns (not raises) so that the audit event (`auth.upstream_failed`) and the throttle
counters commit. Failures count against the address (`ip:<address>`) like password failures.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import mfa
from services.identity import repository as repo
from services.identity import upstream_oidc as oidc
from services.identity.models import ExternalIdentity, UpstreamProvider
from services.identity.sessions import open_session
from services.identity.throttle import count_failure, refuse_if_throttled
from services.kit.crypto import (
    constant_time_equal,
    new_token,
    open_compact,
    seal,
    seal_compact,
    sha256_hex,
    unseal,
)
from services.kit.errors import NotFound, ValidationFailed
from services.kit.types import utcnow
from services.settings import get_settings
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, User, UserStatus
from tenants.scoping import set_tenant

log = structlog.get_logger("switchboard.upstream")

PROVIDERS = oidc.PROVIDERS
LABELS = oidc.LABELS
STATE_TTL = timedelta(minutes=10)
_SECRET_PURPOSE = "identity/upstream-client-secret"  # noqa: S105  (a key-derivation label)
_STATE_PURPOSE = "identity/upstream-state"


# ---- configuration (per agency) --------------------------------------------------------------


def redirect_uri(slug: str, provider: str) -> str:
    """The address to register at Google / Microsoft (exactly)."""
    base = get_settings().base_url.rstrip("/")
    return f"{base}/a/{slug}/login/upstream/{provider}/callback"


def _secret_context(agency_id: uuid.UUID, provider: str) -> str:
    return f"{agency_id}|{provider}"


def _known(provider: str) -> str:
    if provider not in PROVIDERS:
        raise NotFound("no such sign-in provider")
    return provider


async def config(session: AsyncSession, provider: str) -> UpstreamProvider | None:
    _known(provider)
    stmt = select(UpstreamProvider).where(UpstreamProvider.provider == provider)
    return (await session.execute(stmt)).scalar_one_or_none()


async def configs(session: AsyncSession) -> dict[str, UpstreamProvider]:
    rows = (await session.execute(select(UpstreamProvider))).scalars().all()
    return {row.provider: row for row in rows}


def _clean_tenant(provider: str, tenant: str | None) -> str | None:
    if provider != oidc.MICROSOFT:
        if tenant:
            raise ValidationFailed("only Microsoft sign-in takes a tenant", field="tenant")
        return None
    value = (tenant or "common").strip().lower()
    if not oidc.valid_tenant(value):
        raise ValidationFailed(
            "the tenant is `common`, `organizations` or a directory (tenant) id such as "
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            field="tenant",
        )
    return value


async def save_config(
    session: AsyncSession,
    agency_id: uuid.UUID,
    provider: str,
    *,
    client_id: str,
    client_secret: str | None,
    tenant: str | None,
    enabled: bool,
) -> UpstreamProvider:
    """Create or change an agency's provider. A new one needs the secret; an existing one
    keeps its secret unless a new one is given."""
    row = await config(session, provider)
    client_id = client_id.strip()
    if not client_id or len(client_id) > 200 or any(c.isspace() for c in client_id):
        raise ValidationFailed("enter the client id the provider gave you", field="client_id")
    secret = (client_secret or "").strip()
    if row is None and not secret:
        raise ValidationFailed("enter the client secret", field="client_secret")
    if len(secret) > 500:
        raise ValidationFailed("the client secret is too long", field="client_secret")
    cleaned_tenant = _clean_tenant(provider, tenant)
    sealed = (
        seal(secret.encode(), purpose=_SECRET_PURPOSE, context=_secret_context(agency_id, provider))
        if secret
        else None
    )
    now = utcnow()
    if row is None:
        assert sealed is not None
        row = UpstreamProvider(
            agency_id=agency_id,
            provider=provider,
            client_id=client_id,
            client_secret_sealed=sealed,
            tenant=cleaned_tenant,
            enabled=enabled,
        )
        session.add(row)
    else:
        row.client_id, row.tenant, row.enabled, row.updated_at = (
            client_id,
            cleaned_tenant,
            enabled,
            now,
        )
        if sealed is not None:
            row.client_secret_sealed = sealed
    await session.flush()
    return row


async def delete_config(session: AsyncSession, provider: str) -> None:
    """Remove the provider. Linked identities stay: configuring it again restores them."""
    row = await config(session, provider)
    if row is None:
        raise NotFound("this sign-in provider is not set up")
    await session.delete(row)
    await session.flush()


async def enabled_providers(session: AsyncSession, agency: Agency) -> list[str]:
    """The buttons of the sign-in page, in a fixed order."""
    await set_tenant(session, TenantContext.for_agency(agency.id))
    rows = await configs(session)
    return [p for p in PROVIDERS if p in rows and rows[p].enabled]


def _provider(agency: Agency, row: UpstreamProvider) -> oidc.Provider:
    try:
        secret = unseal(
            row.client_secret_sealed,
            purpose=_SECRET_PURPOSE,
            context=_secret_context(agency.id, row.provider),
        ).decode()
    except Exception:  # SWITCHBOARD_SECRET_KEY changed since it was saved: enter it again
        log.error("upstream.secret_unreadable", provider=row.provider)
        raise NotFound("this sign-in provider needs its client secret entered again") from None
    return oidc.Provider(
        name=row.provider,
        client_id=row.client_id,
        client_secret=secret,
        redirect_uri=redirect_uri(agency.slug, row.provider),
        tenant=row.tenant,
    )


async def _enabled(session: AsyncSession, agency: Agency, provider: str) -> UpstreamProvider:
    await set_tenant(session, TenantContext.for_agency(agency.id))
    row = await config(session, provider)
    if row is None or not row.enabled:
        raise NotFound("this sign-in provider is not enabled here")
    return row


# ---- the sealed state (kept by the browser in a short-lived cookie) -------------------------


@dataclass(frozen=True)
class _State:
    state: str
    nonce: str
    verifier: str
    next: str | None
    issued_at: datetime


def _state_context(agency: Agency, provider: str, binding: str) -> str:
    return f"{agency.id}|{provider}|{sha256_hex(binding)}"


def _seal_state(agency: Agency, provider: str, binding: str, st: _State) -> str:
    body = {
        "s": st.state,
        "n": st.nonce,
        "v": st.verifier,
        "next": st.next,
        "iat": st.issued_at.isoformat(),
    }
    return seal_compact(
        json.dumps(body).encode(),
        purpose=_STATE_PURPOSE,
        context=_state_context(agency, provider, binding),
    )


def _open_state(agency: Agency, provider: str, binding: str, sealed: str) -> _State | None:
    if not binding:
        return None
    raw = open_compact(
        sealed, purpose=_STATE_PURPOSE, context=_state_context(agency, provider, binding)
    )
    if raw is None:
        return None
    try:
        body = json.loads(raw)
        st = _State(
            state=str(body["s"]),
            nonce=str(body["n"]),
            verifier=str(body["v"]),
            next=body.get("next") if isinstance(body.get("next"), str) else None,
            issued_at=datetime.fromisoformat(body["iat"]),
        )
    except Exception:  # sealed by us but not a state's shape: not a state
        return None
    if utcnow() - st.issued_at >= STATE_TTL:
        return None
    return st


# ---- sign-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Begun:
    url: str  # the provider's authorization endpoint, with the request
    state: str  # the sealed state, for the cookie


async def begin(
    session: AsyncSession, agency: Agency, provider: str, *, binding: str, next_url: str | None
) -> Begun:
    """Start a sign-in: where to send the browser, and the sealed state to keep."""
    row = await _enabled(session, agency, provider)
    st = _State(
        state=new_token(32),
        nonce=new_token(32),
        verifier=new_token(48),  # 65+ characters of base-58: within PKCE's 43..128
        next=next_url,
        issued_at=utcnow(),
    )
    url = await oidc.authorization_url(
        _provider(agency, row), state=st.state, nonce=st.nonce, code_verifier=st.verifier
    )
    return Begun(url=url, state=_seal_state(agency, provider, binding, st))


class UpstreamRefused(Exception):
    """The sign-in is refused; `message` is written for the person."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


Refuse = Callable[..., Awaitable[UpstreamRefused]]


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # the session cookie
    next: str | None
    second_factor_pending: bool


def _messages(agency: Agency, provider: str) -> dict[str, str]:
    label = LABELS[provider]
    return {
        "state": (
            "This sign-in could not be verified: it was started in another browser or tab, "
            "or it took too long. Nothing was signed in. Start again from the sign-in page."
        ),
        "cancelled": f"Signing in with {label} was cancelled. Nothing was signed in.",
        "provider": f"{label} did not sign you in. Try again, or sign in with your password.",
        "invalid": (
            f"The answer from {label} could not be verified, so you were not signed in. Try again."
        ),
        "unreachable": f"{label} could not be reached. Try again in a moment.",
        "unverified": (
            f"{label} did not confirm the e-mail address of this account, so it cannot be "
            f"matched to an account at {agency.name}. Sign in with your password instead."
            if provider == oidc.GOOGLE
            else f"Microsoft did not confirm that your organisation owns the e-mail address of "
            f"this account, so it cannot be matched to an account at {agency.name}. Sign in "
            f"with your password instead."
        ),
        "inactive": f"This account cannot sign in. Contact {agency.name}.",
    }


async def complete(
    session: AsyncSession,
    agency: Agency,
    provider: str,
    *,
    params: dict[str, str],
    sealed_state: str,
    binding: str,
    ip: str | None,
    user_agent: str | None,
) -> SignedIn:
    """The callback: check everything, find (or link) the person, open the session."""
    row = await _enabled(session, agency, provider)
    keys = [f"ip:{ip}"] if ip else []
    throttles = await refuse_if_throttled(session, agency, keys, "")
    messages = _messages(agency, provider)

    async def refuse(
        reason: str,
        message: str,
        *,
        status: int = 400,
        count: bool = True,
        user: User | None = None,
        email: str | None = None,
    ) -> UpstreamRefused:
        if count:
            await count_failure(session, agency, keys, throttles)
        data = {"provider": provider, "reason": reason[:200]}
        if email:
            data["email"] = email[:320]
        audit.record(
            session,
            "auth.upstream_failed",
            agency_id=agency.id,
            target_type="user",
            target_id=user.id if user else None,
            data=data,
        )
        await session.flush()
        return UpstreamRefused(message, status)

    st = _open_state(agency, provider, binding, sealed_state)
    returned = params.get("state", "")
    if st is None:
        raise await refuse("no valid state (expired, or another browser)", messages["state"])
    if not returned or not constant_time_equal(returned[:200], st.state):
        raise await refuse("state mismatch", messages["state"])
    if params.get("error"):
        error = params["error"][:100]
        cancelled = error == "access_denied"
        raise await refuse(
            f"provider error: {error}",
            messages["cancelled" if cancelled else "provider"],
            count=False,
        )
    code = params.get("code", "")
    if not code or len(code) > 4096:
        raise await refuse("no code", messages["provider"])
    prov = _provider(agency, row)
    try:
        id_token = await oidc.exchange(prov, code, st.verifier)
        claims = await oidc.validate_id_token(prov, id_token, nonce=st.nonce)
        person = oidc.person_of(prov, claims)
    except oidc.UpstreamError as exc:
        raise await refuse(
            exc.reason,
            messages["unreachable" if exc.unreachable else "invalid"],
            status=502 if exc.unreachable else 400,
            count=not exc.unreachable,
        ) from None

    user = await _person(session, agency, provider, person, refuse, messages)
    pending = await mfa.has_second_factor(session, user.id)
    token = await open_session(
        session, agency, user, ip=ip, user_agent=user_agent, mfa_pending=pending
    )
    data = {"method": f"upstream:{provider}"}
    if pending:
        data["second_factor"] = "pending"
    audit.record(
        session, "auth.login", agency_id=agency.id, target_type="user", target_id=user.id, data=data
    )
    await session.flush()
    return SignedIn(user=user, token=token, next=st.next, second_factor_pending=pending)


async def _person(
    session: AsyncSession,
    agency: Agency,
    provider: str,
    person: oidc.UpstreamPerson,
    refuse: Refuse,
    messages: dict[str, str],
) -> User:
    """The linked person, or the person of this agency with the same verified e-mail (linked
    now). Never a new account. `refuse` audits and counts a refusal (see `complete`)."""
    stmt = select(ExternalIdentity).where(
        ExternalIdentity.provider == provider, ExternalIdentity.subject == person.subject
    )
    link = (await session.execute(stmt)).scalar_one_or_none()
    if link is not None:
        user = await repo.user(session, link.user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            raise await refuse("linked person inactive", messages["inactive"], user=user)
        link.last_used_at = utcnow()
        return user
    if not person.email or not person.email_verified:
        raise await refuse(
            "e-mail not verified by the provider", messages["unverified"], email=person.email
        )
    user = await repo.user_by_email(session, person.email)
    if user is None:
        raise await refuse(
            "no account for this e-mail",
            f"There is no account for {person.email} at {agency.name}. Nothing was created: "
            f"ask {agency.name} for an invitation, then sign in with {LABELS[provider]} again.",
            status=403,
            email=person.email,
        )
    if user.status != UserStatus.ACTIVE:
        raise await refuse("person inactive", messages["inactive"], user=user)
    session.add(
        ExternalIdentity(
            agency_id=agency.id,
            user_id=user.id,
            provider=provider,
            subject=person.subject,
            email=person.email,
            last_used_at=utcnow(),
        )
    )
    user.email_verified = True  # the provider vouched for the mailbox
    audit.record(
        session,
        "auth.upstream_linked",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"provider": provider, "subject": person.subject, "email": person.email},
    )
    await session.flush()
    return user


__all__ = [
    "PROVIDERS",
    "Begun",
    "SignedIn",
    "UpstreamRefused",
    "begin",
    "complete",
    "config",
    "delete_config",
    "enabled_providers",
    "redirect_uri",
    "save_config",
]
