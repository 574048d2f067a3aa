"""Authlib wiring: one `Provider` (an Authlib AuthorizationServer) per request and agency.

Authlib's server side is synchronous. It runs here on the request's own SQLAlchemy session
through `AsyncSession.run_sync` (a synchronous `AppSession`), so the tenant scoping hooks,
the PostgreSQL RLS settings of the transaction and the commit at the edge all apply exactly as
for the rest of the application. Nothing in this module touches HTTP objects: the endpoint
hands over an `HttpSnapshot` (method, public URL, headers, query and form pairs) and gets a
`ProviderResponse` (status, body, headers) back.

Hooks Authlib calls (query_client, save_token, the grants' code/token lookups) are implemented
against `repository.py`; the JWT work uses joserfc with the agency's own keys (`keys.py`).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request, ResourceProtector
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    JsonRequest,
    OAuth2Payload,
    TokenMixin,
    grants,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy.orm import Session

from services.identity.keycache import principal_cache
from services.kit import ids
from services.kit.cache import FollowerCache, columns_of, row_from
from services.kit.crypto import constant_time_equal, hmac_hex, new_token, sha256_hex
from services.kit.types import utcnow
from services.oauth2 import keys
from services.oauth2 import repository as repo
from services.oauth2.models import (
    AuthorizationCode,
    ClientType,
    OAuthClient,
    OAuthToken,
    TokenKind,
)
from services.oauth2.schemas import API_SCOPE, MEMBERSHIPS_SCOPE, USER_SCOPES
from services.settings import get_settings
from tenants.models import Membership, User, UserStatus

CLIENT_PREFIX = "oac"
USER_PREFIX = "usr"
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105  (a media type, RFC 9068)


# ---- what the endpoint hands over and gets back --------------------------------------------


@dataclass(frozen=True)
class HttpSnapshot:
    method: str
    url: str  # the public URL (BASE_URL + path + query)
    headers: Any  # a case-insensitive mapping (Starlette Headers)
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ProviderResponse:
    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((v for k, v in self.headers if k.lower() == "location"), None)


@dataclass
class DomainEvent:
    action: str
    target_type: str
    target_id: uuid.UUID | None
    data: dict[str, Any]


@dataclass
class ProviderContext:
    """One agency's provider inside one unit of work."""

    session: Session
    agency_id: uuid.UUID
    agency_slug: str
    agency_name: str
    issuer: str
    events: list[DomainEvent] = field(default_factory=list)
    _clients: dict[str, RelyingParty | None] = field(default_factory=dict)
    _issued: dict[str, tuple[str, int]] = field(default_factory=dict)
    _signing: dict[str, keys.PrivateKey] = field(default_factory=dict)
    _users: dict[uuid.UUID, User | None] = field(default_factory=dict)
    _roles: dict[uuid.UUID, list[tuple[Membership, str | None]]] = field(default_factory=dict)
    # Codes and refresh tokens this request marked used; released if the request fails.
    _claims: list[tuple[type[AuthorizationCode | OAuthToken], uuid.UUID]] = field(
        default_factory=list
    )

    def signing_key(self, alg: str) -> keys.PrivateKey:
        """The agency's active key for `alg`, loaded (and decrypted) once per request: a code
        exchange signs an access token and an ID token, and asks for the key three times."""
        key = self._signing.get(alg)
        if key is None:
            key = self._signing[alg] = keys.signing_key(self.session, self.agency_id, alg)
        return key

    def user(self, user_id: uuid.UUID) -> User | None:
        """The person, loaded once per request with their roles, in one statement (the grant
        checks them, the claims read them)."""
        if user_id not in self._users:
            self._users[user_id], self._roles[user_id] = repo.user_with_memberships(
                self.session, user_id
            )
        return self._users[user_id]

    def roles(self, user_id: uuid.UUID) -> list[tuple[Membership, str | None]]:
        """The person's memberships with their clients' names (loaded with the person)."""
        self.user(user_id)
        return self._roles.get(user_id, [])

    def release_claims(self) -> None:
        while self._claims:
            model, row_id = self._claims.pop()
            repo.release_claim(self.session, model, row_id)

    def event(
        self, action: str, target_type: str, target_id: uuid.UUID | None, **data: Any
    ) -> None:
        self.events.append(DomainEvent(action, target_type, target_id, data))


def issuer_for(slug: str) -> str:
    return f"{get_settings().base_url.rstrip('/')}/a/{slug}"


def session_sid(agency_id: uuid.UUID, session_id: uuid.UUID) -> str:
    """The `sid` of a portal session in ID and logout tokens (OpenID Connect Front- and
    Back-Channel Logout): stable for the session's life, the same for every relying party,
    and derived (HMAC with the installation secret) so that it reveals nothing of the session
    row or its cookie."""
    return hmac_hex(get_settings().secret_key, f"oidc-sid\x00{agency_id}\x00{session_id}")[:32]


def api_audience() -> str:
    """The `aud` of access tokens that may call the Switchboard API (scope switchboard:api)."""
    return f"{get_settings().base_url.rstrip('/')}/api/v1"


def _transport_uri(url: str) -> str:
    """Authlib refuses a non-https request URI (it reads it for nothing else). Outside
    production the installation may run on plain http (tests, the local demo); transport
    security there is the deployment's business, so Authlib is shown the https form."""
    if get_settings().env != "production" and url.startswith("http://"):
        return "https://" + url[len("http://") :]
    return url


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class SnapshotRequest(OAuth2Request):
    def __init__(self, snap: HttpSnapshot) -> None:
        super().__init__(snap.method, _transport_uri(snap.url), headers=snap.headers)
        self.payload = _Payload(snap.query + snap.form)
        self._args = dict(reversed(snap.query))  # first value wins
        self._form = dict(reversed(snap.form))

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# ---- Authlib's view of our rows ------------------------------------------------------------


class RelyingParty(ClientMixin):
    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.client_id = ids.encode(CLIENT_PREFIX, row.id)

    @property
    def is_public(self) -> bool:
        return ClientType(self.row.client_type) is ClientType.PUBLIC

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.row.post_logout_redirect_uris)}

    @property
    def id_token_signed_response_alg(self) -> str:
        return self.row.id_token_signed_response_alg or keys.DEFAULT_ALG

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # OpenID Connect: the redirect_uri parameter is required

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The requested scopes if the client may ask for all of them; None otherwise."""
        if not scope:
            return ""
        requested = list(dict.fromkeys(scope_to_list(scope)))
        if not set(requested) <= set(self.row.allowed_scopes):
            return None
        return list_to_scope(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match, nothing else

    def check_client_secret(self, client_secret: str) -> bool:
        if self.is_public or not self.row.secret_hash:
            return False
        return constant_time_equal(sha256_hex(client_secret), self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


@dataclass
class EndUser:
    """The person an authorization is for."""

    user_id: uuid.UUID
    auth_time: datetime
    session_id: uuid.UUID | None = None

    def get_user_id(self) -> str:
        return ids.encode(USER_PREFIX, self.user_id)


class IssuedCode(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class IssuedToken(TokenMixin):
    def __init__(self, row: OAuthToken, ctx: ProviderContext) -> None:
        self.row = row
        self.ctx = ctx

    @property
    def scope(self) -> str:
        return self.row.scope

    def check_client(self, client: RelyingParty) -> bool:
        return self.row.client_id == client.row.id

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.row.expires_at - self.row.issued_at).total_seconds()))

    def is_expired(self) -> bool:
        return self.row.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or (
            self.row.kind == TokenKind.REFRESH and self.row.used_at is not None
        )

    def get_user(self) -> EndUser | None:
        if self.row.user_id is None:
            return None
        return EndUser(
            self.row.user_id, self.row.auth_time or self.row.issued_at, self.row.session_id
        )

    def get_client(self) -> RelyingParty | None:
        return _query_client(self.ctx, ids.encode(CLIENT_PREFIX, self.row.client_id))


# Relying parties by (agency, id), as column values: every token request authenticates one.
# Changing, rotating the secret of or deleting a client invalidates them on commit in every
# process (the API-key cache's invalidation, services/identity/keycache.py); an unknown
# client is never cached.
_relying_parties: FollowerCache[tuple[uuid.UUID, uuid.UUID], dict[str, Any]] = FollowerCache(
    principal_cache
)


def _client_row(ctx: ProviderContext, value: uuid.UUID) -> OAuthClient | None:
    key = (ctx.agency_id, value)
    fields = _relying_parties.get(key)
    if fields is not None:
        return row_from(OAuthClient, fields)
    generation = _relying_parties.generation()
    row = repo.client(ctx.session, value)
    if row is not None and row.agency_id == ctx.agency_id:
        _relying_parties.put(key, columns_of(row), generation)
    return row


def _query_client(ctx: ProviderContext, client_id: str | None) -> RelyingParty | None:
    if not client_id or not isinstance(client_id, str):
        return None
    if client_id not in ctx._clients:
        value = ids.decode(CLIENT_PREFIX, client_id)
        row = _client_row(ctx, value) if value is not None else None
        ctx._clients[client_id] = RelyingParty(row) if row is not None else None
    return ctx._clients[client_id]


# ---- claims -----------------------------------------------------------------------------------


def user_claims(ctx: ProviderContext, user_id: uuid.UUID, scope: str) -> dict[str, Any]:
    """The claims about a person that the granted scopes release (ID token and userinfo)."""
    scopes = set(scope_to_list(scope) or [])
    user = ctx.user(user_id)
    if user is None:
        return {"sub": ids.encode(USER_PREFIX, user_id)}
    claims: dict[str, Any] = {
        "sub": ids.encode(USER_PREFIX, user.id),
        "agency": {
            "id": ids.encode("agy", ctx.agency_id),
            "slug": ctx.agency_slug,
            "name": ctx.agency_name,
        },
    }
    if "profile" in scopes:
        claims["name"] = user.name or user.email
        claims["updated_at"] = int(user.updated_at.timestamp())
    if "email" in scopes:
        claims["email"] = user.email
        claims["email_verified"] = bool(user.email_verified)
    if MEMBERSHIPS_SCOPE in scopes:
        memberships = []
        roles: set[str] = set()
        for m, client_name in ctx.roles(user.id):
            role = str(m.role.value if hasattr(m.role, "value") else m.role)
            roles.add(role)
            memberships.append(
                {
                    "role": role,
                    "client_id": ids.encode("cli", m.client_id) if m.client_id else None,
                    "client_name": client_name,
                }
            )
        claims["roles"] = sorted(roles)
        claims["memberships"] = memberships
    return claims


# ---- grants and extensions ------------------------------------------------------------------


class S256Only(CodeChallenge):
    """PKCE with S256 only ("plain" is refused); mandatory for public clients."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        client: RelyingParty | None = grant.request.client
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            # RFC 7636 would default to "plain", which this server does not accept.
            raise InvalidRequestError("code_challenge_method must be S256")
        if client is not None and client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("public clients must use PKCE with S256")
        super().validate_code_challenge(grant, redirect_uri)


class SwitchboardOpenIDCode(OpenIDCode):
    """ID tokens for the code flow, signed with the agency's key (with `kid`)."""

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(require_nonce=False)
        self.ctx = ctx

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        client: RelyingParty = request.client  # type: ignore[assignment]
        return repo.nonce_used(self.ctx.session, client.row.id, nonce)

    def _key(self, client: RelyingParty) -> keys.PrivateKey:
        return self.ctx.signing_key(client.id_token_signed_response_alg)

    def resolve_client_private_key(self, client: RelyingParty) -> keys.PrivateKey:
        return self._key(client)

    def get_client_algorithm(self, client: RelyingParty) -> str:
        return client.id_token_signed_response_alg

    def get_encode_header(self, client: RelyingParty) -> dict[str, str]:
        return {
            "alg": client.id_token_signed_response_alg,
            "kid": str(self._key(client).kid),
            "typ": "JWT",
        }

    def get_client_claims(self, client: RelyingParty) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.ctx.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + get_settings().oauth2_id_token_ttl_seconds,
        }

    def generate_user_info(self, user: EndUser, scope: str) -> dict[str, Any]:
        claims = user_claims(self.ctx, user.user_id, scope)
        if user.session_id is not None:
            claims["sid"] = session_sid(self.ctx.agency_id, user.session_id)
        return claims


class SwitchboardIdTokenOnRefresh(SwitchboardOpenIDCode):
    """A fresh ID token with every refresh of an `openid` grant (OpenID Connect Core §12.2):
    same `iss`, `sub`, `aud` and `auth_time` as the original sign-in, a new `iat`/`exp`, no
    `nonce`; claims reflect the person's current name, e-mail and memberships."""

    def get_client_claims(self, client: RelyingParty) -> dict[str, Any]:
        claims = super().get_client_claims(client)
        user: EndUser | None = getattr(self, "_refresh_user", None)
        if user is not None:
            claims["auth_time"] = int(user.auth_time.timestamp())
        return claims

    def process_token(self, grant: Any, response: Any) -> Any:
        self._refresh_user = grant.request.user
        return super().process_token(grant, response)

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    AUTHORIZATION_CODE_LENGTH = 48

    @property
    def ctx(self) -> ProviderContext:
        return self.server.ctx  # type: ignore[no-any-return]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        client: RelyingParty = request.client  # type: ignore[assignment]
        user: EndUser = request.user  # type: ignore[assignment]
        data = request.payload.data
        now = utcnow()
        self.ctx.session.add(
            AuthorizationCode(
                agency_id=self.ctx.agency_id,
                code_hash=sha256_hex(code),
                client_id=client.row.id,
                user_id=user.user_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                nonce=data.get("nonce") or None,
                code_challenge=data.get("code_challenge") or None,
                code_challenge_method=data.get("code_challenge_method") or None,
                auth_time=user.auth_time,
                session_id=user.session_id,
                expires_at=now + timedelta(seconds=get_settings().oauth2_code_ttl_seconds),
            )
        )
        self.ctx.session.flush()
        if user.session_id is not None:  # told through back-channel logout when it ends
            repo.remember_session_client(
                self.ctx.session, self.ctx.agency_id, user.session_id, client.row.id, user.user_id
            )

    def query_authorization_code(self, code: str, client: RelyingParty) -> IssuedCode | None:
        """A good code is claimed (marked used) right here, in one statement; a request that
        then fails (redirect URI, PKCE verifier) releases it (`Provider.create_token_response`)
        so the code still works once. Anything else is looked up to tell a replay."""
        code_hash, now = sha256_hex(code), utcnow()
        claimed = repo.claim_code_by_hash(self.ctx.session, code_hash, client.row.id, now)
        if claimed is not None:
            self.ctx._claims.append((AuthorizationCode, claimed.id))
            return IssuedCode(claimed)
        row = repo.code_by_hash(self.ctx.session, code_hash)
        if row is None or row.client_id != client.row.id:
            return None
        if row.used_at is not None:
            self.server.code_reused(row)  # type: ignore[attr-defined]
            return None
        if row.expires_at <= utcnow():
            return None
        return IssuedCode(row)

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Codes are kept, marked used, so that a second use is recognised."""
        if (AuthorizationCode, authorization_code.row.id) in self.ctx._claims:
            self.ctx._claims.remove((AuthorizationCode, authorization_code.row.id))
            return  # claimed by query_authorization_code: the response is being sent
        if not repo.claim_code(self.ctx.session, authorization_code.row.id, utcnow()):
            self.server.code_reused(authorization_code.row)  # type: ignore[attr-defined]
            raise InvalidGrantError("Invalid 'code' in request.")

    def authenticate_user(self, authorization_code: IssuedCode) -> EndUser | None:
        row = authorization_code.row
        user = self.ctx.user(row.user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            return None
        return EndUser(row.user_id, row.auth_time, row.session_id)


class RotatingRefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # every use rotates

    @property
    def ctx(self) -> ProviderContext:
        return self.server.ctx  # type: ignore[no-any-return]

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        """A good refresh token of this client is rotated (marked used) right here, in one
        statement; a request that then fails (a scope the grant does not cover, a person who
        may no longer sign in) releases it. Anything else is looked up to tell a replay,
        which revokes the token's whole family."""
        client: RelyingParty = self.request.client  # type: ignore[assignment]
        token_hash, now = sha256_hex(refresh_token), utcnow()
        claimed = repo.claim_refresh_by_hash(self.ctx.session, token_hash, client.row.id, now)
        if claimed is not None:
            self.ctx._claims.append((OAuthToken, claimed.id))
            return IssuedToken(claimed, self.ctx)
        row = repo.token_by_hash(self.ctx.session, token_hash, TokenKind.REFRESH)
        if row is None or row.revoked_at is not None:
            return None
        if row.used_at is not None:
            self.server.refresh_reused(row)  # type: ignore[attr-defined]
            return None
        if row.expires_at <= utcnow():
            return None
        return IssuedToken(row, self.ctx)

    def authenticate_user(self, refresh_token: IssuedToken) -> EndUser:
        end_user = refresh_token.get_user()
        user = self.ctx.user(end_user.user_id) if end_user else None
        if end_user is None or user is None or user.status != UserStatus.ACTIVE:
            raise InvalidGrantError("The person this token was issued for cannot sign in.")
        return end_user

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        if (OAuthToken, refresh_token.row.id) in self.ctx._claims:
            self.ctx._claims.remove((OAuthToken, refresh_token.row.id))
            return  # rotated by authenticate_refresh_token: the response is being sent
        if not repo.claim_refresh(self.ctx.session, refresh_token.row.id, utcnow()):
            self.server.refresh_reused(refresh_token.row)  # type: ignore[attr-defined]
            raise InvalidGrantError()


class MachineGrant(grants.ClientCredentialsGrant):
    """Client credentials for confidential machine clients, limited to their allowed scopes
    (never the person-related ones)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: RelyingParty = self.request.client  # type: ignore[assignment]
        allowed = [s for s in client.row.allowed_scopes if s not in USER_SCOPES]
        requested = list(dict.fromkeys(scope_to_list(self.request.payload.scope) or []))
        if not requested:
            requested = allowed
        elif not set(requested) <= set(allowed):
            raise InvalidScopeError()
        self.request.scope = list_to_scope(requested)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


# ---- token lookups (revocation, introspection, userinfo) --------------------------------------


def verify_access_token(
    ctx: ProviderContext, raw: str, audience: str | None = None
) -> IssuedToken | None:
    """An access token of THIS agency: its signature verifies with one of this agency's keys,
    `iss` is this agency's issuer, it has not expired, its `aud` names a relying party of this
    agency (and `audience` too, when given), and its `jti` is on record and not revoked.
    Anything else: None."""
    if not isinstance(raw, str) or raw.count(".") != 2 or len(raw) > 8192:
        return None
    keyset = keys.verification_keys(ctx.session)
    if keyset is None:
        return None
    try:
        token = jwt.decode(raw, keyset, algorithms=list(keys.SUPPORTED_ALGS))
        if token.header.get("typ") != ACCESS_TOKEN_TYP:
            return None
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": ctx.issuer},
            exp={"essential": True},
            jti={"essential": True},
            aud={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError, TypeError):
        return None
    claims = token.claims
    client = _query_client(ctx, claims.get("client_id"))
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client is None or audiences[0] != client.client_id:
        return None
    if audience is not None and audience not in audiences:
        return None
    row = repo.token_by_hash(ctx.session, sha256_hex(str(claims["jti"])), TokenKind.ACCESS)
    if row is None or row.client_id != client.row.id:
        return None
    return IssuedToken(row, ctx)


def find_token(ctx: ProviderContext, raw: str, hint: str | None) -> IssuedToken | None:
    if not isinstance(raw, str) or not raw:
        return None
    if hint != "refresh_token" and raw.count(".") == 2:
        found = verify_access_token(ctx, raw)
        if found is not None or hint == "access_token":
            return found
    row = repo.token_by_hash(ctx.session, sha256_hex(raw), TokenKind.REFRESH)
    return IssuedToken(row, ctx) if row is not None else None


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return find_token(self.server.ctx, token_string, token_type_hint)

    def authenticate_token(self, request: OAuth2Request, client: RelyingParty) -> Any:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # RFC 7009: a token the client may not revoke is answered like an unknown one.
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        self.server.revoke(token)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return find_token(self.server.ctx, token_string, token_type_hint)

    def check_permission(
        self, token: IssuedToken, client: RelyingParty, request: OAuth2Request
    ) -> bool:
        # A client may introspect its own tokens; the agency's own (first-party) confidential
        # services may introspect any token of the agency, as resource servers do.
        return token.check_client(client) or bool(client.row.first_party)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        row = token.row
        client_id = ids.encode(CLIENT_PREFIX, row.client_id)
        sub = ids.encode(USER_PREFIX, row.user_id) if row.user_id else client_id
        return {
            "active": True,
            "token_type": "Bearer" if row.kind == TokenKind.ACCESS else "refresh_token",
            "client_id": client_id,
            "scope": row.scope,
            "sub": sub,
            "aud": client_id,
            "iss": self.server.ctx.issuer,
            "exp": int(row.expires_at.timestamp()),
            "iat": int(row.issued_at.timestamp()),
        }


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self) -> Any:
        keyset = keys.verification_keys(self.server.ctx.session)
        if keyset is None:
            raise InvalidRequestError("The provider has no signing keys yet.")
        return keyset

    def validate_request(self, request: OAuth2Request) -> EndSessionRequest:
        validated = super().validate_request(request)
        claims = validated.id_token_claims
        if claims is not None and claims.get("iss") != self.server.ctx.issuer:
            raise InvalidRequestError("The id_token_hint was not issued here.")
        return validated

    def is_post_logout_redirect_uri_legitimate(
        self,
        request: OAuth2Request,
        post_logout_redirect_uri: str,
        client: Any,
        logout_hint: str | None,
    ) -> bool:
        # Without an id_token_hint the person confirms the sign-out first, and the address is
        # one the client registered: that is the confirmation the specification asks for.
        return client is not None

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """The sign-out itself happens in the service (browser session and its tokens)."""


class AccessTokenValidator(BearerTokenValidator):
    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(realm=ctx.issuer)
        self.ctx = ctx

    def authenticate_token(self, token_string: str) -> IssuedToken | None:
        return verify_access_token(self.ctx, token_string)


# ---- the provider ----------------------------------------------------------------------------


class Provider(AuthorizationServer):
    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(scopes_supported=None)
        self.ctx = ctx
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [S256Only(required=True), SwitchboardOpenIDCode(ctx)])
        self.register_grant(RotatingRefreshGrant, [SwitchboardIdTokenOnRefresh(ctx)])
        self.register_grant(MachineGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)
        self.register_endpoint(EndSession)
        self.resource_protector = ResourceProtector()
        self.resource_protector.register_token_validator(AccessTokenValidator(ctx))

    def create_token_response(self, request: Any = None) -> ProviderResponse:
        """Authlib's token endpoint; a failed request releases what it claimed."""
        try:
            response: ProviderResponse = super().create_token_response(request)
        except ValueError:  # an error Authlib cannot send: the service answers for it
            self.ctx.release_claims()
            raise
        if response.status != 200:
            self.ctx.release_claims()
        return response

    # -- Authlib's framework hooks
    def query_client(self, client_id: str) -> RelyingParty | None:
        return _query_client(self.ctx, client_id)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return SnapshotRequest(request)

    def create_json_request(self, request: Any) -> JsonRequest:
        return JsonRequest(request.method, _transport_uri(request.url), request.headers)

    def handle_response(self, status: int, body: Any, headers: Any) -> ProviderResponse:
        return ProviderResponse(status, body, list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    # -- tokens
    def _generate_token(
        self,
        grant_type: str,
        client: RelyingParty,
        user: EndUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        ttl = expires_in or get_settings().oauth2_access_token_ttl_seconds
        now = int(time.time())
        jti = new_token(16)
        audience: str | list[str] = client.client_id
        if user is not None and API_SCOPE in (scope_to_list(scope) or []):
            audience = [client.client_id, api_audience()]
        claims: dict[str, Any] = {
            "iss": self.ctx.issuer,
            "sub": user.get_user_id() if user else client.client_id,
            "aud": audience,
            "client_id": client.client_id,
            "iat": now,
            "exp": now + ttl,
            "jti": jti,
            "scope": scope or "",
            "agency": self.ctx.agency_slug,
        }
        if user is not None:
            claims["auth_time"] = int(user.auth_time.timestamp())
        key = self.ctx.signing_key(keys.DEFAULT_ALG)
        header = {"alg": keys.DEFAULT_ALG, "kid": str(key.kid), "typ": ACCESS_TOKEN_TYP}
        access = jwt.encode(header, claims, key, algorithms=[keys.DEFAULT_ALG])
        self.ctx._issued[access] = (jti, now + ttl)
        token: dict[str, Any] = {"token_type": "Bearer", "access_token": access, "expires_in": ttl}
        if scope:
            token["scope"] = scope
        if include_refresh_token:
            token["refresh_token"] = new_token(32)
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        ctx = self.ctx
        client: RelyingParty = request.client  # type: ignore[assignment]
        user: EndUser | None = request.user  # type: ignore[assignment]
        jti, exp = ctx._issued.pop(token["access_token"])
        family_id, code_id = uuid.uuid4(), None
        previous: IssuedToken | None = request.refresh_token  # type: ignore[assignment]
        code: IssuedCode | None = request.authorization_code  # type: ignore[assignment]
        if previous is not None:
            family_id, code_id = previous.row.family_id, previous.row.code_id
        elif code is not None:
            code_id = code.row.id
        now = utcnow()
        common: dict[str, Any] = {
            "agency_id": ctx.agency_id,
            "family_id": family_id,
            "client_id": client.row.id,
            "user_id": user.user_id if user else None,
            "scope": token.get("scope", ""),
            "code_id": code_id,
            "session_id": user.session_id if user else None,
            "auth_time": user.auth_time if user else None,
            "issued_at": now,
            "used_at": None,
            "revoked_at": None,
        }
        rows = [
            {
                "id": uuid.uuid4(),
                "kind": TokenKind.ACCESS,
                "token_hash": sha256_hex(jti),
                "expires_at": datetime.fromtimestamp(exp, tz=now.tzinfo),
                **common,
            }
        ]
        if token.get("refresh_token"):
            ttl = timedelta(seconds=get_settings().oauth2_refresh_token_ttl_seconds)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "kind": TokenKind.REFRESH,
                    "token_hash": sha256_hex(token["refresh_token"]),
                    "expires_at": now + ttl,
                    **common,
                }
            )
        repo.insert_tokens(ctx.session, rows)

    # -- misuse: revoke and tell the audit trail
    def code_reused(self, row: AuthorizationCode) -> None:
        count = repo.revoke_code_tokens(self.ctx.session, row.id, utcnow())
        self.ctx.event(
            "oauth2.code_reused",
            "oauth_client",
            row.client_id,
            user_id=ids.encode(USER_PREFIX, row.user_id),
            tokens_revoked=count,
        )

    def refresh_reused(self, row: OAuthToken) -> None:
        count = repo.revoke_family(self.ctx.session, row.family_id, utcnow())
        self.ctx.event(
            "oauth2.refresh_token_reused",
            "oauth_client",
            row.client_id,
            user_id=ids.encode(USER_PREFIX, row.user_id) if row.user_id else None,
            family_id=str(row.family_id),
            tokens_revoked=count,
        )

    def revoke(self, token: IssuedToken) -> None:
        """RFC 7009: a refresh token takes its whole family with it; an access token goes
        alone."""
        now = utcnow()
        if token.row.kind == TokenKind.REFRESH:
            repo.revoke_family(self.ctx.session, token.row.family_id, now)
        else:
            repo.revoke_token(self.ctx.session, token.row.id, now)
