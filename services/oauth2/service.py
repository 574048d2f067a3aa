"""Use cases of the OpenID Connect provider. No HTTP here: endpoints hand in an
`HttpSnapshot` and turn the outcomes into responses.

Authlib's grant logic is synchronous; it runs on this request's session through
`session.run_sync`, so it shares the transaction, the tenant scoping and the commit at the edge.
Domain events collected by the provider (code or refresh-token reuse) are written to the audit
trail here, in the same transaction.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, scope_to_list
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity import service as identity
from services.identity.keycache import invalidate_on_commit
from services.kit import ids
from services.kit.crypto import new_token, sha256_hex
from services.kit.db import unit_of_work
from services.kit.errors import NotFound, Unauthorized, ValidationFailed
from services.kit.types import utcnow
from services.oauth2 import keys
from services.oauth2 import repository as repo
from services.oauth2.models import ClientSolution, ClientType, Consent, OAuthClient, SigningKey
from services.oauth2.schemas import (
    API_SCOPE,
    USER_SCOPES,
    OAuthClientCreate,
    OAuthClientUpdate,
    describe_scope,
)
from services.oauth2.server import (
    EndUser,
    HttpSnapshot,
    Provider,
    ProviderContext,
    ProviderResponse,
    RelyingParty,
    SnapshotRequest,
    api_audience,
    issuer_for,
    user_claims,
    verify_access_token,
)
from tenants import audit
from tenants.context import TenantContext
from tenants.models import Agency, UserStatus
from tenants.principal import Principal
from tenants.roles import CLIENT_ROLES
from tenants.scoping import Widening, current_tenant, set_tenant, widen_to_agency

T = TypeVar("T")
CLIENT_PREFIX = "oac"
SUPPORTED_PROMPTS = ("none", "login", "consent")
# Fields our own forms add; never part of the protocol request they carry.
_FORM_ONLY = frozenset({"csrf_token", "decision"})


def context(session: AsyncSession, agency: Agency) -> ProviderContext:
    return ProviderContext(
        session=session.sync_session,
        agency_id=agency.id,
        agency_slug=agency.slug,
        agency_name=agency.name,
        issuer=issuer_for(agency.slug),
    )


async def _run(session: AsyncSession, ctx: ProviderContext, fn: Callable[[], T]) -> T:
    """Run synchronous provider work on this session, then record its domain events."""
    result = await session.run_sync(lambda _s: fn())
    for e in ctx.events:
        audit.record(
            session,
            e.action,
            agency_id=ctx.agency_id,
            target_type=e.target_type,
            target_id=e.target_id,
            data=e.data,
        )
    ctx.events.clear()
    return result


def _invalid_request(description: str) -> ProviderResponse:
    status, body, headers = InvalidRequestError(description)()
    return ProviderResponse(status, body, list(headers))


# ---- metadata --------------------------------------------------------------------------------


def discovery_document(agency: Agency) -> dict[str, Any]:
    issuer = issuer_for(agency.slug)
    oauth = f"{issuer}/oauth2"
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{oauth}/authorize",
        "token_endpoint": f"{oauth}/token",
        "userinfo_endpoint": f"{oauth}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{oauth}/revoke",
        "introspection_endpoint": f"{oauth}/introspect",
        "end_session_endpoint": f"{oauth}/logout",
        "scopes_supported": sorted(USER_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(keys.SUPPORTED_ALGS),
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": list(SUPPORTED_PROMPTS),
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "sid",
            "name",
            "updated_at",
            "email",
            "email_verified",
            "agency",
            "roles",
            "memberships",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


async def jwks(session: AsyncSession, agency: Agency) -> dict[str, Any]:
    return await session.run_sync(lambda s: keys.jwks(s, agency.id))


# ---- token, revocation, introspection, userinfo -----------------------------------------------


async def token(session: AsyncSession, agency: Agency, snap: HttpSnapshot) -> ProviderResponse:
    ctx = context(session, agency)
    try:
        return await _run(session, ctx, lambda: Provider(ctx).create_token_response(snap))
    except ValueError:  # an error description Authlib cannot send (e.g. control characters)
        return _invalid_request("The request is not valid.")


async def endpoint(
    session: AsyncSession, agency: Agency, name: str, snap: HttpSnapshot
) -> ProviderResponse:
    """RFC 7009 revocation ("revocation") and RFC 7662 introspection ("introspection")."""
    ctx = context(session, agency)
    try:
        return await _run(session, ctx, lambda: Provider(ctx).create_endpoint_response(name, snap))
    except ValueError:
        return _invalid_request("The request is not valid.")


async def userinfo(session: AsyncSession, agency: Agency, snap: HttpSnapshot) -> ProviderResponse:
    ctx = context(session, agency)
    in_body = [v for k, v in snap.form if k == "access_token"]
    if snap.method == "POST" and len(in_body) == 1 and "authorization" not in snap.headers:
        # RFC 6750 §2.2: the bearer token may come as a form field of a POST.
        headers = {"Authorization": f"Bearer {in_body[0]}"}
        snap = HttpSnapshot(snap.method, snap.url, headers, snap.query, snap.form)

    def run() -> ProviderResponse:
        server = Provider(ctx)
        try:
            found = server.resource_protector.validate_request(
                scopes=["openid"], request=server.create_json_request(snap)
            )
        except OAuth2Error as err:
            status, body, headers = err()
            return ProviderResponse(status, body, list(headers))
        assert found.row.user_id is not None  # machine tokens never carry "openid"
        claims = user_claims(ctx, found.row.user_id, found.row.scope)
        return ProviderResponse(200, claims, [("Cache-Control", "no-store")])

    return await _run(session, ctx, run)


# ---- access tokens at the Switchboard API ------------------------------------------------------


def _unverified_issuer(raw: str) -> str | None:
    """The `iss` a JWT claims, read WITHOUT verifying it: only to choose which agency's keys
    verify it next."""
    try:
        payload = raw.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, TypeError):
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


async def resolve_api_access_token(raw: str) -> Principal:
    """An OAuth access token presented at /api/v1: issued by an agency of this installation
    for the `switchboard:api` scope (its `aud` names the API), verified with that agency's
    keys, not expired or revoked, for a person who may still sign in. The caller acts as that
    person, with their own permissions and client scope."""
    from services.agencies import service as agencies

    issuer = _unverified_issuer(raw) or ""
    prefix = issuer_for("")
    slug = issuer[len(prefix) :] if issuer.startswith(prefix) else ""
    if not slug or "/" in slug or len(slug) > 63:
        raise Unauthorized("the access token was not issued by an agency of this installation")
    async with unit_of_work() as session:
        agency = await agencies.active_agency(session, slug)
        if agency is None:
            raise Unauthorized("the access token's agency is unknown or not active")
        await set_tenant(
            session,
            TenantContext.for_agency(agency.id),
            Principal.system(agency.id, label="openid provider"),
        )
        ctx = context(session, agency)
        found = await session.run_sync(lambda _s: verify_access_token(ctx, raw, api_audience()))
        if (
            found is None
            or found.is_revoked()
            or found.is_expired()
            or API_SCOPE not in (scope_to_list(found.row.scope) or [])
        ):
            raise Unauthorized(
                "the access token is invalid, expired, revoked or not for this API "
                f"(it needs the {API_SCOPE} scope)"
            )
        if found.row.user_id is None:
            raise Unauthorized("machine tokens cannot call the API: use an agency API key")
        user = await session.run_sync(lambda s: repo.user(s, found.row.user_id))
        if user is None or user.status != UserStatus.ACTIVE:
            raise Unauthorized("the person this token was issued for cannot sign in")
        principal = await identity.principal_for_user(session, user, agency)
    return principal


# ---- authorization endpoint -------------------------------------------------------------------


@dataclass
class Redirect:
    url: str


@dataclass
class ErrorPage:
    message: str


@dataclass
class NeedsLogin:
    # The authorization request to resume once the person has signed in.
    request: list[tuple[str, str]]
    # prompt=login, max_age exceeded, someone else hinted: the sign-in form is shown even to
    # a signed-in browser. Its session is NOT ended here (a cross-site link could send any
    # browser here): a successful new sign-in replaces it.
    reauthenticate: bool = False


@dataclass
class NeedsConsent:
    client_name: str
    scopes: list[tuple[str, str]]
    fields: list[tuple[str, str]]  # the authorization request, carried by the consent form
    redirect_origin: str


AuthorizeOutcome = Redirect | ErrorPage | NeedsLogin | NeedsConsent


async def end_user_of(session: AsyncSession, principal: Principal | None) -> EndUser | None:
    """The signed-in person and when they authenticated (their browser session's start)."""
    if principal is None or principal.user_id is None:
        return None
    auth_time = utcnow()
    if principal.session_id is not None:
        row = await session.run_sync(lambda s: repo.browser_session(s, principal.session_id))
        if row is not None:
            auth_time = row.created_at
    return EndUser(principal.user_id, auth_time, principal.session_id)


async def authorize(
    session: AsyncSession,
    agency: Agency,
    principal: Principal | None,
    snap: HttpSnapshot,
    *,
    decision: bool | None = None,
) -> AuthorizeOutcome:
    """The authorization endpoint. `decision` is None for the request itself, True/False when
    the person answered the consent screen."""
    end_user = await end_user_of(session, principal)
    await _agency_wide(session, agency, principal)
    ctx = context(session, agency)
    return await _run(session, ctx, lambda: _authorize(ctx, snap, end_user, decision))


async def _agency_wide(session: AsyncSession, agency: Agency, principal: Principal | None) -> None:
    """The provider's rows (clients, codes, consents, tokens) are agency-level: it works on
    the person's behalf in the agency-wide scope, whatever that person's own client scope;
    the person stays the actor of what it writes to the audit trail."""
    if current_tenant(session) is None:
        await set_tenant(session, TenantContext.for_agency(agency.id), principal)
    else:
        await widen_to_agency(session, Widening.OIDC_PROVIDER, principal)


def _redirect_error(err: OAuth2Error) -> Redirect:
    _status, _body, headers = err()
    return Redirect(dict(headers)["Location"])


def _authorize(
    ctx: ProviderContext, snap: HttpSnapshot, end_user: EndUser | None, decision: bool | None
) -> AuthorizeOutcome:
    server = Provider(ctx)
    request = SnapshotRequest(snap)
    try:
        grant = server.get_consent_grant(request=request, end_user=end_user)
    except OAuth2Error as err:
        if err.redirect_uri:  # the client and its redirect URI are known good: tell the client
            return _redirect_error(err)
        return ErrorPage(err.get_error_description() or "This sign-in request is not valid.")
    except ValueError:
        return ErrorPage("This sign-in request is not valid.")
    client: RelyingParty = request.client
    data = request.payload.data
    redirect_uri = grant.redirect_uri
    state = data.get("state")
    prompts = set((data.get("prompt") or "").split())
    scopes = scope_to_list(request.scope) or []

    def fail(err_cls: type[OAuth2Error], description: str | None = None) -> Redirect:
        return _redirect_error(err_cls(description, redirect_uri=redirect_uri, state=state))

    if decision is False:
        return fail(AccessDeniedError, "The person did not allow the request.")
    if end_user is None:
        if "none" in prompts:
            return fail(LoginRequiredError)
        return NeedsLogin(_request_pairs(snap, drop_prompt="login"))
    wanted_after = _reauth_after(data.get(REAUTH_AFTER))
    if wanted_after is not None and end_user.auth_time < wanted_after:
        # prompt=login asked, and this browser has not signed in since: ask again
        return NeedsLogin(_request_pairs(snap), reauthenticate=True)
    hint = (data.get("login_hint") or "").strip().lower()
    if hint and decision is None:
        signed_in_as = repo.user(ctx.session, end_user.user_id)
        if signed_in_as is not None and signed_in_as.email.lower() != hint:
            # The app expects someone else (OpenID Connect login_hint): sign in again rather
            # than hand it whoever happens to be signed in to this browser.
            if "none" in prompts:
                return fail(LoginRequiredError, "A different person is signed in.")
            return NeedsLogin(_request_pairs(snap, drop_hint=True), reauthenticate=True)
    if client.row.solution and not repo.may_use_solution(
        ctx.session, client.row.id, end_user.user_id
    ):
        return fail(AccessDeniedError, "Your business does not have this solution.")
    if decision is None:
        if "login" in prompts:
            # Resumed without prompt=login (no loop) but with the time the sign-in must follow.
            pairs = _request_pairs(snap, drop_prompt="login")
            pairs.append((REAUTH_AFTER, str(int(utcnow().timestamp() * 1000))))
            return NeedsLogin(pairs, reauthenticate=True)
        max_age = data.get("max_age")
        if max_age is not None:
            if not max_age.isdigit() or len(max_age) > 10:
                return fail(InvalidRequestError, "max_age must be a number of seconds.")
            if (utcnow() - end_user.auth_time).total_seconds() > int(max_age):
                if "none" in prompts:
                    return fail(LoginRequiredError)
                return NeedsLogin(_request_pairs(snap), reauthenticate=True)
        if "consent" in prompts or not _consented(ctx, client, end_user, scopes):
            if "none" in prompts:
                return fail(ConsentRequiredError)
            return NeedsConsent(
                client_name=client.row.name,
                scopes=[(s, describe_scope(s)) for s in scopes],
                fields=[(k, v) for k, v in snap.query + snap.form if k not in _FORM_ONLY],
                redirect_origin=url_origin(redirect_uri),
            )
    else:
        _remember_consent(ctx, client, end_user, scopes)
    response = server.create_authorization_response(
        request=request, grant_user=end_user, grant=grant
    )
    location = response.location
    return Redirect(location) if location else ErrorPage("This sign-in request is not valid.")


def _consented(
    ctx: ProviderContext, client: RelyingParty, end_user: EndUser, scopes: list[str]
) -> bool:
    if client.row.first_party:
        return True  # the agency's own solution: pre-approved
    found = repo.consent(ctx.session, end_user.user_id, client.row.id)
    return found is not None and set(scopes) <= set(found.scopes)


def _remember_consent(
    ctx: ProviderContext, client: RelyingParty, end_user: EndUser, scopes: list[str]
) -> None:
    found = repo.consent(ctx.session, end_user.user_id, client.row.id)
    if found is None:
        ctx.session.add(
            Consent(
                agency_id=ctx.agency_id,
                user_id=end_user.user_id,
                client_id=client.row.id,
                scopes=sorted(set(scopes)),
            )
        )
    elif not set(scopes) <= set(found.scopes):
        found.scopes = sorted(set(found.scopes) | set(scopes))
        found.updated_at = utcnow()
    ctx.session.flush()


# prompt=login, honoured: the resumed request carries the time (ms since the epoch) the
# browser's sign-in must be newer than. Only ever asks for more: a request naming a time
# cannot skip a sign-in, it can only ask for one.
REAUTH_AFTER = "sb_reauth_after"


def _reauth_after(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.isdigit() or len(value) > 15:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _request_pairs(
    snap: HttpSnapshot, drop_prompt: str = "", drop_hint: bool = False
) -> list[tuple[str, str]]:
    """The authorization request's parameters, to resume it after sign-in (without the
    prompt value that has just been honoured, so it is not asked again; without the
    login_hint once the person was asked to sign in because of it: who they then sign in as
    is their choice)."""
    pairs: list[tuple[str, str]] = []
    for key, value in snap.query + snap.form:
        if key in _FORM_ONLY or (drop_hint and key == "login_hint"):
            continue
        if key == "prompt" and drop_prompt:
            value = " ".join(p for p in value.split() if p != drop_prompt)
            if not value:
                continue
        pairs.append((key, value))
    return pairs


def authorize_path(slug: str, pairs: list[tuple[str, str]]) -> str:
    return f"/a/{slug}/oauth2/authorize?{urlencode(pairs)}"


def url_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---- RP-initiated logout --------------------------------------------------------------------


@dataclass
class LogoutOutcome:
    error: str | None = None
    confirm: bool = False
    client_name: str | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    redirect_uri: str | None = None
    signed_out: bool = False


async def logout(
    session: AsyncSession,
    agency: Agency,
    principal: Principal | None,
    snap: HttpSnapshot,
    *,
    confirmed: bool,
) -> LogoutOutcome:
    await _agency_wide(session, agency, principal)
    ctx = context(session, agency)

    def validate() -> tuple[LogoutOutcome, str | None]:
        try:
            req = Provider(ctx).validate_endpoint_request("end_session", snap)
        except OAuth2Error as err:
            return LogoutOutcome(error=err.get_error_description() or "invalid request"), None
        except ValueError:
            return LogoutOutcome(error="This sign-out request is not valid."), None
        claims = req.id_token_claims or {}
        hinted = claims.get("sub")
        return LogoutOutcome(
            confirm=req.needs_confirmation,
            client_name=req.client.row.name if req.client is not None else None,
            fields=[(k, v) for k, v in snap.query + snap.form if k not in _FORM_ONLY],
            redirect_uri=req.redirect_uri,
        ), hinted if isinstance(hinted, str) else None

    outcome, hinted_sub = await _run(session, ctx, validate)
    if outcome.error is not None:
        return outcome
    if outcome.confirm and not confirmed and principal is not None:
        return outcome  # no id_token_hint: the person confirms before being signed out
    outcome.confirm = False
    if principal is not None and principal.user_id is not None:
        mine = ids.encode("usr", principal.user_id)
        if hinted_sub is None or hinted_sub == mine:
            if principal.session_id is not None:
                sid = principal.session_id
                await session.run_sync(lambda s: repo.revoke_session_tokens(s, sid, utcnow()))
            await identity.sign_out(session, principal)
            outcome.signed_out = True
    return outcome


# ---- relying parties (the agency's API) -------------------------------------------------------


def _check_shape(
    client_type: ClientType,
    grant_types: Sequence[str],
    redirect_uris: Sequence[str],
    allowed_scopes: Sequence[str],
) -> None:
    if client_type is ClientType.PUBLIC and "client_credentials" in grant_types:
        raise ValidationFailed(
            "public clients cannot use client_credentials (they hold no secret)",
            field="grant_types",
        )
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise ValidationFailed(
            "refresh_token needs authorization_code (machine clients get no refresh tokens)",
            field="grant_types",
        )
    if "authorization_code" in grant_types and not redirect_uris:
        raise ValidationFailed(
            "at least one redirect URI is needed for authorization_code", field="redirect_uris"
        )
    if "authorization_code" in grant_types and "openid" not in allowed_scopes:
        raise ValidationFailed(
            "sign-in clients (authorization_code) must be allowed the openid scope",
            field="allowed_scopes",
        )


def _new_secret() -> tuple[str, str, str]:
    secret = new_token(32)
    return secret, sha256_hex(secret), secret[-4:]


async def list_clients(session: AsyncSession) -> Sequence[OAuthClient]:
    return await session.run_sync(repo.clients)


async def get_client(session: AsyncSession, client_id: uuid.UUID) -> OAuthClient:
    row = await session.run_sync(repo.client, client_id)
    if row is None:
        raise NotFound("no such OAuth client")
    return row


async def create_client(
    session: AsyncSession, principal: Principal, body: OAuthClientCreate
) -> tuple[OAuthClient, str | None]:
    assert principal.agency_id is not None
    grant_types = list(dict.fromkeys(body.grant_types))
    scopes = list(dict.fromkeys(body.allowed_scopes))
    _check_shape(body.type, grant_types, body.redirect_uris, scopes)
    secret = secret_hash = hint = None
    if body.type is ClientType.CONFIDENTIAL:
        secret, secret_hash, hint = _new_secret()
    row = OAuthClient(
        agency_id=principal.agency_id,
        name=body.name,
        client_type=body.type,
        secret_hash=secret_hash,
        secret_hint=hint,
        redirect_uris=list(dict.fromkeys(body.redirect_uris)),
        post_logout_redirect_uris=list(dict.fromkeys(body.post_logout_redirect_uris)),
        allowed_scopes=scopes,
        grant_types=grant_types,
        first_party=body.first_party,
        id_token_signed_response_alg=body.id_token_signed_response_alg,
        solution=body.solution,
        description=body.description,
        initiate_login_uri=body.initiate_login_uri,
        backchannel_logout_uri=body.backchannel_logout_uri,
        backchannel_logout_session_required=body.backchannel_logout_session_required,
        created_by=principal.actor_id,
    )
    session.add(row)
    await session.flush()
    return row, secret


async def update_client(
    session: AsyncSession, client_id: uuid.UUID, body: OAuthClientUpdate
) -> OAuthClient:
    row = await get_client(session, client_id)
    changes = body.model_dump(exclude_unset=True)
    for key in ("redirect_uris", "post_logout_redirect_uris", "allowed_scopes", "grant_types"):
        if changes.get(key) is not None:
            changes[key] = list(dict.fromkeys(changes[key]))
    _check_shape(
        ClientType(row.client_type),
        changes.get("grant_types", row.grant_types),
        changes.get("redirect_uris", row.redirect_uris),
        changes.get("allowed_scopes", row.allowed_scopes),
    )
    for key, value in changes.items():
        setattr(row, key, value)
    if changes:
        row.updated_at = utcnow()
    await session.flush()
    await invalidate_on_commit(session)  # cached relying parties (server._relying_parties)
    return row


async def rotate_client_secret(
    session: AsyncSession, client_id: uuid.UUID
) -> tuple[OAuthClient, str]:
    row = await get_client(session, client_id)
    if ClientType(row.client_type) is ClientType.PUBLIC:
        raise ValidationFailed("public clients have no secret", field="type")
    secret, row.secret_hash, row.secret_hint = _new_secret()
    row.updated_at = utcnow()
    await session.flush()
    await invalidate_on_commit(session)  # the old secret stops working in every process
    return row, secret


async def delete_client(session: AsyncSession, client_id: uuid.UUID) -> None:
    row = await get_client(session, client_id)
    await session.delete(row)
    await session.flush()
    await invalidate_on_commit(session)


# ---- solutions enabled per client ----------------------------------------------------------


async def _solution(session: AsyncSession, oauth_client_id: uuid.UUID) -> OAuthClient:
    row = await get_client(session, oauth_client_id)
    if not row.solution:
        raise ValidationFailed(
            "this OAuth client is not a solution (set solution: true on it first)",
            field="solution_id",
        )
    return row


async def _require_client(session: AsyncSession, client_id: uuid.UUID) -> None:
    from services.clients import service as clients_service

    await clients_service.get(session, client_id)  # NotFound outside the tenant or client scope


async def client_solutions(
    session: AsyncSession, client_id: uuid.UUID
) -> Sequence[tuple[OAuthClient, Any]]:
    await _require_client(session, client_id)
    return await session.run_sync(repo.client_solutions, client_id)


async def enable_solution(
    session: AsyncSession, principal: Principal, client_id: uuid.UUID, oauth_client_id: uuid.UUID
) -> bool:
    """Enable a solution for a client; False when it already was."""
    await _require_client(session, client_id)
    await _solution(session, oauth_client_id)
    if await session.run_sync(repo.client_solution, client_id, oauth_client_id) is not None:
        return False
    assert principal.agency_id is not None
    session.add(
        ClientSolution(
            agency_id=principal.agency_id,
            client_id=client_id,
            oauth_client_id=oauth_client_id,
            enabled_by=principal.actor_id,
        )
    )
    await session.flush()
    return True


async def disable_solution(
    session: AsyncSession, client_id: uuid.UUID, oauth_client_id: uuid.UUID
) -> None:
    await _require_client(session, client_id)
    row = await session.run_sync(repo.client_solution, client_id, oauth_client_id)
    if row is None:
        raise NotFound("this solution is not enabled for the client")
    await session.delete(row)
    await session.flush()


async def solutions_for(session: AsyncSession, principal: Principal) -> Sequence[OAuthClient]:
    """The solutions a signed-in person may open: all of the agency's for its staff, those
    enabled for their businesses for a client's people."""
    if principal.role is None or principal.role not in CLIENT_ROLES:
        return await session.run_sync(repo.solutions, None)
    return await session.run_sync(repo.solutions, sorted(principal.client_ids or ()))


# ---- signing keys ---------------------------------------------------------------------------


async def rotate_signing_key(
    session: AsyncSession, agency_id: uuid.UUID, alg: str = keys.DEFAULT_ALG
) -> SigningKey:
    if alg not in keys.SUPPORTED_ALGS:
        raise ValidationFailed(f"alg must be one of {', '.join(keys.SUPPORTED_ALGS)}", field="alg")
    row = await session.run_sync(lambda s: keys.rotate(s, agency_id, alg))
    await invalidate_on_commit(session)  # every process stops signing with the retired key
    return row


async def rotate_signing_key_for(slug: str, alg: str = keys.DEFAULT_ALG) -> str:
    """For the CLI: rotate one agency's signing key in its own unit of work; returns the new
    key's `kid`."""
    from services.agencies import service as agencies

    async with unit_of_work() as session:
        agency = await agencies.active_agency(session, slug)
        if agency is None:
            raise NotFound(f"no active agency {slug!r}")
        principal = Principal.acting_in(agency.id, agency.slug, "cli: signing-key rotation")
        await set_tenant(session, principal.tenant(), principal)
        row = await rotate_signing_key(session, agency.id, alg)
        return row.kid


async def clients_with_solution(session: AsyncSession, app_id: uuid.UUID) -> set[uuid.UUID]:
    """The clients a relying party (a solution) is enabled for."""
    return await session.run_sync(repo.clients_with_solution, app_id)


async def solution_client_counts(session: AsyncSession) -> dict[uuid.UUID, int]:
    """For each relying party, the number of clients it is enabled for."""
    return await session.run_sync(repo.solution_client_counts)
