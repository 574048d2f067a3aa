"""The OpenID Connect client side of upstream sign-in: Google and Microsoft.

Authlib's `AsyncOAuth2Client` builds the authorization request (state, nonce, PKCE S256,
`openid email profile`) and performs the token request (`client_secret_post`). joserfc checks
the ID token's RS256 signature against the provider's JWKS; the claims are then checked one by
one. Nothing here reads or writes the database: `services.identity.upstream` does.

Where the providers live (`Provider`):

* Google: the discovery document at `SWITCHBOARD_UPSTREAM_GOOGLE_DISCOVERY_URL` (default
  `https://accounts.google.com/.well-known/openid-configuration`). Its `issuer` must be
  `https://accounts.google.com`; ID tokens may carry that or the legacy `accounts.google.com`
  (both are documented by Google).
* Microsoft: `{SWITCHBOARD_UPSTREAM_MICROSOFT_AUTHORITY}/{tenant}/v2.0/.well-known/
  openid-configuration` (authority default `https://login.microsoftonline.com`). For `common`
  and `organizations` the document's issuer is the template
  `https://login.microsoftonline.com/{tenantid}/v2.0`: a token's `iss` must be that template
  with the token's own `tid` (a GUID) put in, and the signing key's `issuer`, when the JWKS
  gives one, must agree. For a directory id the issuer is that directory's, exactly, and `tid`
  must be it. `organizations` refuses the personal-account directory.

Back-channel calls go through `transport` (None: the network); tests point it at the local
upstream-IdP sandbox in-process.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from services.kit.authlib_http import authlib_http, borrowed, for_authlib
from services.settings import get_settings

log = structlog.get_logger("switchboard.upstream")

GOOGLE, MICROSOFT = "google", "microsoft"
PROVIDERS = (GOOGLE, MICROSOFT)
LABELS = {GOOGLE: "Google", MICROSOFT: "Microsoft"}
SCOPE = "openid email profile"

GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_ISSUERS = (GOOGLE_ISSUER, "accounts.google.com")
MICROSOFT_ISSUER_TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0"
MICROSOFT_CONSUMERS_TID = "9188040d-6c67-4c5b-b112-36a304b66dad"  # personal Microsoft accounts
MULTI_TENANT = ("common", "organizations")
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

ACCEPTED_ALGS = ("RS256",)  # what both vendors sign ID tokens with; never "none" or a MAC
LEEWAY = 120  # seconds of clock skew tolerated on exp, nbf and iat
MAX_ID_TOKEN_AGE = 600  # an ID token straight from the token endpoint is seconds old
DISCOVERY_TTL = 3600
KEYS_TTL = 3600  # and fetched again at once, a single time, for a kid not seen yet
HTTP_TIMEOUT = 10.0
MAX_JWT_CHARS = 16384

# Tests replace this with an in-process transport to the upstream-IdP sandbox.
transport: httpx.AsyncBaseTransport | None = None


class UpstreamError(Exception):
    """The upstream answer cannot be trusted or used. `reason` goes to the audit trail;
    `unreachable` says the provider (not the person) failed."""

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


def valid_tenant(value: str) -> bool:
    return value in MULTI_TENANT or bool(GUID_RE.match(value))


@dataclass(frozen=True)
class Provider:
    """One provider as configured by one agency: who it is and which OAuth client."""

    name: str
    client_id: str
    client_secret: str
    redirect_uri: str
    tenant: str | None = None  # Microsoft only

    @property
    def discovery_url(self) -> str:
        settings = get_settings()
        if self.name == GOOGLE:
            return settings.upstream_google_discovery_url
        authority = settings.upstream_microsoft_authority.rstrip("/")
        return f"{authority}/{self.tenant or 'common'}/v2.0/.well-known/openid-configuration"

    @property
    def expected_discovery_issuer(self) -> str:
        if self.name == GOOGLE:
            return GOOGLE_ISSUER
        tenant = self.tenant or "common"
        if tenant in MULTI_TENANT:
            return MICROSOFT_ISSUER_TEMPLATE
        return MICROSOFT_ISSUER_TEMPLATE.replace("{tenantid}", tenant)


# ---- back channel ----------------------------------------------------------------------------


async def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(transport=borrowed(transport), timeout=HTTP_TIMEOUT) as http:
            resp = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("upstream.unreachable", what=what, error=type(exc).__name__)
        raise UpstreamError(f"{what} unreachable", unreachable=True) from exc
    if resp.status_code != 200:
        raise UpstreamError(f"{what} answered {resp.status_code}", unreachable=True)
    try:
        data = resp.json()
    except ValueError as exc:
        raise UpstreamError(f"{what} is not JSON", unreachable=True) from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"{what} is not a JSON object", unreachable=True)
    return data


# Per process: discovery documents and key sets by URL (the same for every agency).
_metadata: dict[str, tuple[float, dict[str, Any]]] = {}
_keys: dict[str, tuple[float, KeySet, dict[str, dict[str, Any]]]] = {}


def clear_caches() -> None:
    _metadata.clear()
    _keys.clear()


async def metadata(provider: Provider) -> dict[str, Any]:
    """The provider's discovery document, checked: the issuer it names is the one expected
    for this provider (and directory), and the three endpoints used are there."""
    url = provider.discovery_url
    cached = _metadata.get(url)
    if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    doc = await _get_json(url, "discovery document")
    if doc.get("issuer") != provider.expected_discovery_issuer:
        raise UpstreamError(
            f"discovery names issuer {str(doc.get('issuer'))[:200]!r}", unreachable=True
        )
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise UpstreamError(f"discovery has no {name}", unreachable=True)
    _metadata[url] = (time.monotonic(), doc)
    return doc


async def keys(provider: Provider, refresh: bool = False) -> tuple[KeySet, dict[str, Any]]:
    """The signing keys, and each key's raw JWK by kid (Microsoft's carry an `issuer`)."""
    meta = await metadata(provider)
    url = meta["jwks_uri"]
    cached = _keys.get(url)
    if cached is not None and not refresh and time.monotonic() - cached[0] < KEYS_TTL:
        return cached[1], cached[2]
    doc = await _get_json(url, "JWKS")
    usable = [
        k
        for k in doc.get("keys") or []
        if isinstance(k, dict)
        and k.get("kty") == "RSA"
        and k.get("use") in (None, "sig")
        and isinstance(k.get("kid"), str)
    ]
    try:
        keyset = KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError) as exc:
        raise UpstreamError("JWKS is not valid", unreachable=True) from exc
    raw = {k["kid"]: k for k in usable}
    _keys[url] = (time.monotonic(), keyset, raw)
    return keyset, raw


@asynccontextmanager
async def _oauth(provider: Provider) -> AsyncIterator[AsyncOAuth2Client]:
    client = AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        token_endpoint_auth_method="client_secret_post",  # noqa: S106  (a method name)
        scope=SCOPE,
        redirect_uri=provider.redirect_uri,
        code_challenge_method="S256",
        transport=for_authlib(transport),
        timeout=HTTP_TIMEOUT,
    )
    try:
        yield client
    finally:
        await client.aclose()


# ---- the protocol ----------------------------------------------------------------------------


async def authorization_url(
    provider: Provider, *, state: str, nonce: str, code_verifier: str
) -> str:
    meta = await metadata(provider)
    extra = {"nonce": nonce}
    if provider.name == GOOGLE:
        extra["prompt"] = "select_account"  # several Google accounts in one browser are usual
    async with _oauth(provider) as client:
        url, _ = client.create_authorization_url(
            meta["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra
        )
    return str(url)


async def exchange(provider: Provider, code: str, code_verifier: str) -> str:
    """The token request; returns the ID token (the access token is not used)."""
    meta = await metadata(provider)
    http = authlib_http()
    try:
        async with _oauth(provider) as client:
            token = await client.fetch_token(
                meta["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
    except OAuthError as exc:
        raise UpstreamError(f"token request refused: {exc.error}") from exc
    except (httpx.HTTPError, http.HTTPError) as exc:
        log.warning("upstream.token_endpoint_failed", error=type(exc).__name__)
        raise UpstreamError("token endpoint unreachable", unreachable=True) from exc
    except ValueError as exc:  # an answer that is not a token response
        raise UpstreamError("token response not understood") from exc
    token = dict(token)
    if str(token.get("token_type", "")).lower() != "bearer":
        raise UpstreamError("token type is not Bearer")
    if not isinstance(token.get("id_token"), str):
        raise UpstreamError("no ID token in the token response")
    return token["id_token"]


def _header(raw: str) -> dict[str, Any]:
    try:
        segment = raw.split(".")[0]
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, IndexError):
        return {}
    return value if isinstance(value, dict) else {}


async def validate_id_token(provider: Provider, raw: str, *, nonce: str) -> dict[str, Any]:
    """Signature (JWKS; fetched again once for an unknown kid), then `iss`, `aud`/`azp`,
    `exp`, `nbf`, `iat`, `nonce` and `sub`. Returns the claims."""
    if len(raw) > MAX_JWT_CHARS or raw.count(".") != 2:
        raise UpstreamError("ID token is not a signed JWT")
    header = _header(raw)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ACCEPTED_ALGS:
        raise UpstreamError(f"ID token algorithm {str(alg)[:20]!r} refused")
    if not isinstance(kid, str) or not kid:
        raise UpstreamError("ID token names no key (kid)")
    keyset, raw_keys = await keys(provider)
    if kid not in raw_keys:
        keyset, raw_keys = await keys(provider, refresh=True)  # the provider may have rotated
    if kid not in raw_keys:
        raise UpstreamError("ID token signed with a key the provider does not publish")
    try:
        token = jwt.decode(raw, keyset.get_by_kid(kid), algorithms=list(ACCEPTED_ALGS))
    except (JoseError, ValueError, TypeError) as exc:
        raise UpstreamError("ID token signature does not verify") from exc
    claims = dict(token.claims)
    _check_issuer(provider, claims, raw_keys[kid])
    _check_claims(provider, claims, nonce)
    return claims


def _check_issuer(provider: Provider, claims: dict[str, Any], jwk: dict[str, Any]) -> None:
    iss = claims.get("iss")
    if provider.name == GOOGLE:
        if iss not in GOOGLE_ISSUERS:
            raise UpstreamError("ID token issuer is not Google")
        return
    tid = claims.get("tid")
    if not isinstance(tid, str) or not GUID_RE.match(tid):
        raise UpstreamError("ID token has no directory id (tid)")
    tenant = provider.tenant or "common"
    if tenant == "organizations" and tid == MICROSOFT_CONSUMERS_TID:
        raise UpstreamError("personal Microsoft account, but only work or school accounts")
    if tenant not in MULTI_TENANT and tid != tenant:
        raise UpstreamError("ID token is from another directory (tid)")
    expected = MICROSOFT_ISSUER_TEMPLATE.replace("{tenantid}", tid)
    if iss != expected:
        raise UpstreamError("ID token issuer does not match its directory")
    key_issuer = jwk.get("issuer")
    if isinstance(key_issuer, str) and key_issuer.replace("{tenantid}", tid) != iss:
        raise UpstreamError("signing key belongs to another issuer")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_claims(provider: Provider, claims: dict[str, Any], nonce: str) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or provider.client_id not in audiences:
        raise UpstreamError("ID token was issued to another client (aud)")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != provider.client_id:
        raise UpstreamError("ID token was presented by another client (azp)")
    now = time.time()
    exp, iat, nbf = (_number(claims.get(k)) for k in ("exp", "iat", "nbf"))
    if exp is None or exp <= now - LEEWAY:
        raise UpstreamError("ID token expired (exp)")
    if iat is None or iat > now + LEEWAY or iat < now - MAX_ID_TOKEN_AGE - LEEWAY:
        raise UpstreamError("ID token issue time not acceptable (iat)")
    if nbf is not None and nbf > now + LEEWAY:
        raise UpstreamError("ID token not valid yet (nbf)")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise UpstreamError("ID token nonce does not match this sign-in")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise UpstreamError("ID token names nobody (sub)")


# ---- who it is ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamPerson:
    subject: str  # stable: Google `sub`; Microsoft `<tid>/<oid>`
    email: str | None  # lower-cased
    email_verified: bool
    name: str


def _truthy(value: Any) -> bool:
    return value is True or value in ("true", "True", "1", 1)


def person_of(provider: Provider, claims: dict[str, Any]) -> UpstreamPerson:
    """What the claims say about the person, under each vendor's rules:

    * Google: the subject is `sub`; the e-mail counts only with `email_verified` true.
    * Microsoft: the subject is `tid/oid` (the account's immutable object id in its
      directory; `sub` is per app registration). The `email` claim is not verified by
      Microsoft and is editable by the directory's administrators, so it counts only with the
      optional claim `xms_edov` true (the directory owns the e-mail's domain).
    """
    email = claims.get("email")
    email = email.strip().lower() if isinstance(email, str) and "@" in email else None
    name = claims.get("name") if isinstance(claims.get("name"), str) else ""
    if provider.name == GOOGLE:
        return UpstreamPerson(
            subject=str(claims["sub"])[:255],
            email=email,
            email_verified=_truthy(claims.get("email_verified")),
            name=str(name)[:200],
        )
    oid, tid = claims.get("oid"), claims.get("tid")
    if not isinstance(oid, str) or not GUID_RE.match(oid):
        raise UpstreamError("ID token has no object id (oid)")
    return UpstreamPerson(
        subject=f"{tid}/{oid}",
        email=email,
        email_verified=_truthy(claims.get("xms_edov")),
        name=str(name)[:200],
    )
