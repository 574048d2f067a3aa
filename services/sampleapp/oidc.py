"""The OpenID Connect relying party of the sample app: discovery, the authorization request,
the code exchange and strict ID-token validation.

Authlib's `AsyncOAuth2Client` builds the authorization request (PKCE S256) and performs the
token request (`client_secret_basic` for a confidential client, `none` + PKCE for a public
one). joserfc verifies the ID token against the provider's JWKS; the claims are then checked
one by one (`iss`, `aud`/`azp`, `exp`, `iat`, `nonce`, `sub`, `at_hash`). Anything that does
not hold is a `SignInError` carrying a message meant for the person in front of the browser.

Logout tokens of OpenID Connect Back-Channel Logout 1.0 are verified the same way (§2.6):
signature with the provider's keys, `typ` logout+jwt, `iss`, `aud`, `iat`, `exp`, the
back-channel logout event, `sub` and/or `sid`, `jti`, and no `nonce`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from services.kit.authlib_http import authlib_http, borrowed, for_authlib

log = logging.getLogger("switchboard.sampleapp")

SCOPE = "openid profile email switchboard:memberships"
# Asymmetric algorithms only: never "none", never a MAC keyed with the client secret.
ACCEPTED_ALGS = ("RS256", "ES256")
LEEWAY = 60  # seconds of clock skew tolerated on exp and iat
MAX_ID_TOKEN_AGE = 600  # an ID token fresh from the token endpoint is seconds old
DISCOVERY_TTL = 300
# Keys are fetched again after this long (a key the agency withdrew stops verifying), and at
# once, a single time, when an ID token names a key not seen yet (the agency rotated).
KEYS_TTL = 300
HTTP_TIMEOUT = 10.0
MAX_JWT_CHARS = 16384
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYP = "logout+jwt"  # noqa: S105  (a media type)
MAX_LOGOUT_TOKEN_AGE = 600  # a logout token is sent when it is made, retried for seconds


class SignInError(Exception):
    """The sign-in cannot go on; `message` is shown to the person (status 400 by default)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def provider_unreachable(what: str) -> SignInError:
    return SignInError(
        f"The agency's sign-in service could not be reached ({what}). Try again in a moment.",
        status=502,
    )


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    post_logout_redirect_uri: str
    scope: str = SCOPE

    @property
    def auth_method(self) -> str:
        return "client_secret_basic" if self.client_secret else "none"


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def unverified_part(token: str, index: int) -> dict[str, Any]:
    """Header (0) or claims (1) of a compact JWT, NOT verified: only for a token verified
    before (it sits in a signed cookie) or to pick the key that will verify it."""
    try:
        value = json.loads(_b64decode(token.split(".")[index]))
    except (ValueError, IndexError):
        return {}
    return value if isinstance(value, dict) else {}


def at_hash(access_token: str, alg: str) -> str:
    """OpenID Connect Core §3.1.3.6: the left half of the access token's hash (SHA-256 for
    RS256/ES256), base64url without padding."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    if alg not in ACCEPTED_ALGS:
        raise SignInError("The ID token uses an algorithm this app does not accept.")
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


class RelyingParty:
    """One relying party (client id) of one issuer. Keeps discovery and the JWKS in memory."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self.settings = settings
        self._transport = transport
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    # ---- back channel ----------------------------------------------------------------------

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                transport=borrowed(self._transport), timeout=HTTP_TIMEOUT
            ) as http:
                resp = await http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            log.warning("sample app: %s unreachable: %s", what, exc)
            raise provider_unreachable(what) from exc
        if resp.status_code != 200:
            log.warning("sample app: %s answered %s", what, resp.status_code)
            raise provider_unreachable(f"{what} answered {resp.status_code}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise provider_unreachable(f"{what} is not JSON") from exc
        if not isinstance(data, dict):
            raise provider_unreachable(f"{what} is not a JSON object")
        return data

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, checked: its `issuer` is exactly the configured one."""
        if self._metadata is not None and time.monotonic() - self._metadata_at < DISCOVERY_TTL:
            return self._metadata
        url = f"{self.settings.issuer}/.well-known/openid-configuration"
        doc = await self._get_json(url, "discovery")
        if doc.get("issuer") != self.settings.issuer:
            raise SignInError(
                "The agency's discovery document names another issuer "
                f"({doc.get('issuer')!r}); this app only trusts {self.settings.issuer}.",
                status=502,
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise SignInError(f"The agency's discovery document has no {name}.", status=502)
        methods = doc.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise SignInError("The agency's provider does not support PKCE (S256).", status=502)
        self._metadata, self._metadata_at = doc, time.monotonic()
        return doc

    async def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is not None and not refresh and time.monotonic() - self._keys_at < KEYS_TTL:
            return self._keys
        meta = await self.metadata()
        doc = await self._get_json(meta["jwks_uri"], "JWKS")
        usable = [
            k
            for k in doc.get("keys") or []
            if isinstance(k, dict)
            and k.get("kty") in ("RSA", "EC")
            and k.get("use") in (None, "sig")
        ]
        try:
            self._keys = KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInError("The agency's key set (JWKS) is not valid.", status=502) from exc
        self._keys_at = time.monotonic()
        return self._keys

    @asynccontextmanager
    async def _oauth(self) -> AsyncIterator[AsyncOAuth2Client]:
        client = AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            token_endpoint_auth_method=self.settings.auth_method,
            scope=self.settings.scope,
            redirect_uri=self.settings.redirect_uri,
            code_challenge_method="S256",
            transport=for_authlib(self._transport),
            timeout=HTTP_TIMEOUT,
        )
        try:
            yield client
        finally:
            await client.aclose()

    # ---- the protocol ----------------------------------------------------------------------

    async def authorization_url(
        self, *, state: str, nonce: str, code_verifier: str, login_hint: str | None = None
    ) -> str:
        meta = await self.metadata()
        extra = {"nonce": nonce}
        if login_hint:
            extra["login_hint"] = login_hint
        async with self._oauth() as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra
            )
        return str(url)

    async def exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        """The token request; the answer must be a Bearer token with an ID token."""
        meta = await self.metadata()
        http = authlib_http()
        try:
            async with self._oauth() as client:
                token = await client.fetch_token(
                    meta["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            log.info("sample app: token request refused: %s %s", exc.error, exc.description)
            raise SignInError(
                f"The agency did not accept this sign-in ({exc.error}). Start again."
            ) from exc
        except (httpx.HTTPError, http.HTTPError) as exc:
            log.warning("sample app: token endpoint failed: %s", exc)
            raise provider_unreachable("token endpoint") from exc
        token = dict(token)
        if str(token.get("token_type", "")).lower() != "bearer":
            raise SignInError("The agency answered with a token type this app does not know.")
        if not isinstance(token.get("id_token"), str) or not isinstance(
            token.get("access_token"), str
        ):
            raise SignInError("The agency's answer has no ID token: this is not a sign-in.")
        return token

    async def _verified_claims(self, raw: str, what: str) -> dict[str, Any]:
        """The claims of a JWT whose signature verifies with the provider's keys (the JWKS,
        fetched again once for an unknown `kid`), with an accepted asymmetric algorithm."""
        if not isinstance(raw, str) or len(raw) > MAX_JWT_CHARS or raw.count(".") != 2:
            raise SignInError(f"The {what} is not a signed JWT.")
        header = unverified_part(raw, 0)
        meta = await self.metadata()
        advertised = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        alg = header.get("alg")
        if alg not in ACCEPTED_ALGS or alg not in advertised:
            raise SignInError(f"The {what} is signed with an algorithm ({alg!r}) not accepted.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SignInError(f"The {what} does not name its signing key (kid).")
        keyset = await self.keys()
        if not any(k.kid == kid for k in keyset):
            keyset = await self.keys(refresh=True)  # the agency may have rotated its key
        if not any(k.kid == kid for k in keyset):
            raise SignInError(f"The {what} is signed with a key the agency does not publish.")
        try:
            token = jwt.decode(raw, keyset.get_by_kid(kid), algorithms=[alg])
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInError(
                f"The {what}'s signature does not verify with the agency's keys."
            ) from exc
        return dict(token.claims)

    async def validate_id_token(
        self, raw: str, *, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """Signature (the provider's JWKS, fetched again once for an unknown `kid`), then
        `iss`, `aud`/`azp`, `exp`, `iat`, `nonce`, `sub` and `at_hash`."""
        claims = await self._verified_claims(raw, "ID token")
        alg = unverified_part(raw, 0)["alg"]
        self._check_claims(claims, nonce)
        if (
            access_token is not None
            and "at_hash" in claims
            and not hmac.compare_digest(str(claims["at_hash"]), at_hash(access_token, alg))
        ):
            raise SignInError("The ID token does not belong to the access token (at_hash).")
        return claims

    def _check_issuer_and_audience(self, claims: dict[str, Any], what: str) -> list[Any]:
        """`iss` is our provider and `aud` names this app (ID and logout tokens alike);
        returns the audiences."""
        s = self.settings
        if claims.get("iss") != s.issuer:
            raise SignInError(f"The {what} was issued by someone else (iss).")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or s.client_id not in audiences:
            raise SignInError(f"The {what} was issued to another application (aud).")
        return audiences

    def _check_claims(self, claims: dict[str, Any], nonce: str) -> None:
        s = self.settings
        audiences = self._check_issuer_and_audience(claims, "ID token")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != s.client_id:
            raise SignInError("The ID token was issued to another application (azp).")
        _check_times(claims, "ID token", MAX_ID_TOKEN_AGE)
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise SignInError(
                "The ID token was not made for this sign-in (nonce): it may have been replayed."
            )
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SignInError("The ID token names nobody (sub).")

    async def validate_logout_token(self, raw: str) -> dict[str, Any]:
        """OpenID Connect Back-Channel Logout §2.6: the signature and `typ`, then `iss`, `aud`,
        `iat`, `exp`, the logout event, `sub` and/or `sid`, `jti`, and no `nonce` (a logout
        token must never be mistaken for an ID token, nor the reverse). Replays (`jti`) are
        the caller's to refuse."""
        if not isinstance(raw, str) or len(raw) > MAX_JWT_CHARS or raw.count(".") != 2:
            raise SignInError("The logout token is not a signed JWT.")
        if unverified_part(raw, 0).get("typ") != LOGOUT_TOKEN_TYP:
            raise SignInError(f"The logout token's typ is not {LOGOUT_TOKEN_TYP}.")
        claims = await self._verified_claims(raw, "logout token")
        self._check_issuer_and_audience(claims, "logout token")
        _check_times(claims, "logout token", MAX_LOGOUT_TOKEN_AGE)
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
            raise SignInError("The logout token carries no back-channel logout event (events).")
        if "nonce" in claims:
            raise SignInError("The logout token has a nonce: it is not a logout token.")
        sub, sid = claims.get("sub"), claims.get("sid")
        if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
            raise SignInError("The logout token names no one (neither sub nor sid).")
        for name in ("sub", "sid"):
            if name in claims and not (isinstance(claims[name], str) and claims[name]):
                raise SignInError(f"The logout token's {name} is not a string.")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise SignInError("The logout token has no identifier (jti).")
        return claims

    async def end_session_url(self, id_token_hint: str | None) -> str | None:
        """Where to send the browser to sign out at the agency too (None: not supported)."""
        try:
            meta = await self.metadata()
        except SignInError:
            return None
        endpoint = meta.get("end_session_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            return None
        params = {
            "client_id": self.settings.client_id,
            "post_logout_redirect_uri": self.settings.post_logout_redirect_uri,
        }
        if id_token_hint:
            params = {"id_token_hint": id_token_hint, **params}
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"


def _check_times(claims: dict[str, Any], what: str, max_age: int) -> None:
    """Not expired (`exp`) and issued neither in the future nor too long ago (`iat`)."""
    now = time.time()
    exp, iat = _time(claims.get("exp")), _time(claims.get("iat"))
    if exp is None or exp <= now - LEEWAY:
        raise SignInError(f"The {what} has expired (exp).")
    if iat is None or iat > now + LEEWAY or iat < now - max_age - LEEWAY:
        raise SignInError(f"The {what}'s issue time is not acceptable (iat).")


def _time(value: Any) -> float | None:
    """A NumericDate claim, or None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
