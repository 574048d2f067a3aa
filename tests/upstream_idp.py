"""A small local upstream identity provider imitating Google's and Microsoft's OpenID Connect
endpoints, for the upstream sign-in tests (an ASGI app: in-process through an httpx transport,
or served on a local port for the browser test).

What it imitates (facts from the vendors' documentation, see `GOOGLE_DISCOVERY_FIELDS` and
`MICROSOFT_DISCOVERY_FIELDS` in tests/portal/test_upstream_sandbox.py):

* **Google** (`{base}/google/...` stands for the real hosts):
  discovery `/.well-known/openid-configuration` (issuer `https://accounts.google.com`),
  authorization `/o/oauth2/v2/auth` (accounts.google.com), token `/token`
  (oauth2.googleapis.com), JWKS `/oauth2/v3/certs` (www.googleapis.com), userinfo
  `/v1/userinfo` (openidconnect.googleapis.com). ID tokens: `iss`, `azp`, `aud`, `sub` (a
  21-digit number), `email`, `email_verified`, `at_hash`, `nonce`, `name`, `picture`,
  `given_name`, `family_name`, `iat`, `exp`, and `hd` for Workspace accounts.
* **Microsoft identity platform v2.0** (`{base}/microsoft/...` stands for
  login.microsoftonline.com): per authority (`common`, `organizations`, `consumers` or a
  directory id) discovery `/{tenant}/v2.0/.well-known/openid-configuration` whose issuer is
  the template `https://login.microsoftonline.com/{tenantid}/v2.0` for the multi-tenant
  authorities, authorization `/{tenant}/oauth2/v2.0/authorize`, token
  `/{tenant}/oauth2/v2.0/token`, JWKS `/{tenant}/discovery/v2.0/keys` (keys carry `x5t`,
  `x5c` and their `issuer`). ID tokens (v2.0): `aud`, `iss` (the person's directory),
  `iat`, `nbf`, `exp`, `aio`, `email` (only when the account has one), `name`, `nonce`,
  `oid`, `preferred_username`, `rh`, `sid`, `sub` (pairwise: differs per app), `tid`, `uti`,
  `ver`, and `xms_edov` when the app registration asks for that optional claim.

Both: `response_type=code` with PKCE (`S256` or `plain`), `client_secret_post` and
`client_secret_basic`, single-use codes bound to client, redirect URI and challenge, errors in
each vendor's JSON shape. The authorization endpoint signs in the person chosen with
`sign_in_as` at once (auto-approve), or shows a tiny form listing the people when none is.

Test levers: `deny_next` (the person cancels), `next_claims(...)` (change or drop claims of
the next ID token), `forge_next` (sign the next ID token with a key that is not published,
under the published kid).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

GOOGLE_ISSUER = "https://accounts.google.com"
MS_ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0"
MS_CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"
DROP = object()  # `next_claims(email=DROP)` removes a claim


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return _b64(digest[:16])


@dataclass
class Person:
    """Someone with an account at the provider."""

    email: str | None
    name: str = "Test Person"
    # Google
    email_verified: bool = True
    sub: str = field(default_factory=lambda: str(10**20 + secrets.randbelow(9 * 10**20)))
    hd: str | None = None
    # Microsoft
    tid: str = field(default_factory=lambda: str(uuid.uuid4()))
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))
    preferred_username: str | None = None
    xms_edov: bool | None = None  # None: the app registration does not ask for it


@dataclass
class _Client:
    vendor: str
    client_id: str
    secret: str
    redirect_uris: list[str]


@dataclass
class _Grant:
    vendor: str
    client_id: str
    redirect_uri: str
    person: Person
    nonce: str | None
    scope: str
    challenge: str | None
    method: str | None
    authority: str
    expires: float
    used: bool = False


def _cert(key: RSAKey) -> str:
    """A self-signed certificate for the key (Microsoft publishes `x5c`)."""
    private = key.private_key
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())  # type: ignore[union-attr]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(private, hashes.SHA256())  # type: ignore[arg-type]
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class UpstreamIdP:
    """The sandbox. `base` is where it is reached (e.g. `http://idp.test` in-process or
    `http://127.0.0.1:PORT` when served)."""

    def __init__(self, base: str = "http://idp.test") -> None:
        self.base = base.rstrip("/")
        self.clients: dict[tuple[str, str], _Client] = {}
        self.people: dict[str, list[Person]] = {"google": [], "microsoft": []}
        self.current: dict[str, Person | None] = {"google": None, "microsoft": None}
        self.codes: dict[str, _Grant] = {}
        self.access_tokens: dict[str, tuple[str, Person]] = {}
        self.authorizations: list[dict[str, str]] = []  # every authorization request seen
        self.token_requests: list[dict[str, str]] = []  # every token request (form fields)
        self.deny_next: str | None = None
        self.forge_next = False
        self._next_claims: dict[str, Any] = {}
        self.keys = {
            v: RSAKey.generate_key(
                2048, parameters={"kid": secrets.token_hex(20), "use": "sig"}, private=True
            )
            for v in ("google", "microsoft")
        }
        # Google publishes two keys at a time; the second is not signing right now.
        self.spare = RSAKey.generate_key(
            2048, parameters={"kid": secrets.token_hex(20), "use": "sig"}, private=True
        )
        self.rogue = RSAKey.generate_key(2048, private=True)  # never published
        self._x5c = {v: _cert(k) for v, k in self.keys.items()}
        self.app = Starlette(routes=self._routes())

    # ---- configuration -------------------------------------------------------------------

    @property
    def google_discovery_url(self) -> str:
        return f"{self.base}/google/.well-known/openid-configuration"

    @property
    def microsoft_authority(self) -> str:
        return f"{self.base}/microsoft"

    def register(self, vendor: str, redirect_uri: str) -> tuple[str, str]:
        """A new OAuth client (what an agency gets from the vendor's console)."""
        if vendor == "google":
            number, suffix = secrets.randbelow(10**12), secrets.token_hex(16)
            client_id = f"{number:012d}-{suffix}.apps.googleusercontent.com"
            secret = "GOCSPX-" + secrets.token_urlsafe(21)
        else:
            client_id = str(uuid.uuid4())
            secret = secrets.token_urlsafe(30)
        self.clients[(vendor, client_id)] = _Client(vendor, client_id, secret, [redirect_uri])
        return client_id, secret

    def add_person(self, vendor: str, person: Person) -> Person:
        self.people[vendor].append(person)
        return person

    def sign_in_as(self, vendor: str, person: Person | None) -> Person | None:
        """Who is signed in at the vendor in 'the browser': approved at once."""
        if person is not None and person not in self.people[vendor]:
            self.people[vendor].append(person)
        self.current[vendor] = person
        return person

    def next_claims(self, **claims: Any) -> None:
        self._next_claims.update(claims)

    # ---- documents -----------------------------------------------------------------------

    def google_discovery(self) -> dict[str, Any]:
        g = f"{self.base}/google"
        return {
            "issuer": GOOGLE_ISSUER,
            "authorization_endpoint": f"{g}/o/oauth2/v2/auth",
            "device_authorization_endpoint": f"{g}/device/code",
            "token_endpoint": f"{g}/token",
            "userinfo_endpoint": f"{g}/v1/userinfo",
            "revocation_endpoint": f"{g}/revoke",
            "jwks_uri": f"{g}/oauth2/v3/certs",
            "response_types_supported": [
                "code",
                "token",
                "id_token",
                "code token",
                "code id_token",
                "token id_token",
                "code token id_token",
                "none",
            ],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "aud",
                "email",
                "email_verified",
                "exp",
                "family_name",
                "given_name",
                "iat",
                "iss",
                "name",
                "picture",
                "sub",
            ],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
        }

    def _ms_issuer(self, authority: str) -> str:
        if authority in ("common", "organizations"):
            return MS_ISSUER
        tid = MS_CONSUMERS if authority == "consumers" else authority
        return MS_ISSUER.replace("{tenantid}", tid)

    def microsoft_discovery(self, authority: str) -> dict[str, Any]:
        m = f"{self.base}/microsoft/{authority}"
        return {
            "token_endpoint": f"{m}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{m}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self._ms_issuer(authority),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.base}/microsoft/oidc/userinfo",
            "authorization_endpoint": f"{m}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{m}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{m}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{m}/kerberos",
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def google_jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {**k.as_dict(private=False), "alg": "RS256", "use": "sig"}
                for k in (self.keys["google"], self.spare)
            ]
        }

    def microsoft_jwks(self, authority: str) -> dict[str, Any]:
        key = self.keys["microsoft"]
        public = key.as_dict(private=False)
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": public["kid"],
                    "x5t": public["kid"],
                    "n": public["n"],
                    "e": public["e"],
                    "x5c": [self._x5c["microsoft"]],
                    "cloud_instance_name": "microsoftonline.com",
                    "issuer": self._ms_issuer(authority),
                }
            ]
        }

    # ---- tokens ----------------------------------------------------------------------------

    def _id_token(self, grant: _Grant, access_token: str) -> str:
        now = int(time.time())
        p = grant.person
        if grant.vendor == "google":
            claims: dict[str, Any] = {
                "iss": GOOGLE_ISSUER,
                "azp": grant.client_id,
                "aud": grant.client_id,
                "sub": p.sub,
                "at_hash": _half_hash(access_token),
                "iat": now,
                "exp": now + 3599,
            }
            if p.hd:
                claims["hd"] = p.hd
            if "email" in grant.scope.split() and p.email:
                claims |= {"email": p.email, "email_verified": p.email_verified}
            if "profile" in grant.scope.split():
                first, _, last = p.name.partition(" ")
                claims |= {
                    "name": p.name,
                    "picture": "https://lh3.googleusercontent.com/a/default-user=s96-c",
                    "given_name": first,
                    "family_name": last or first,
                }
        else:
            claims = {
                "aud": grant.client_id,
                "iss": MS_ISSUER.replace("{tenantid}", p.tid),
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "aio": _b64(secrets.token_bytes(40)),
                "name": p.name,
                "oid": p.oid,
                "preferred_username": p.preferred_username or p.email or f"{p.oid}@example",
                "rh": "0.A" + _b64(secrets.token_bytes(30)) + ".",
                "sid": str(uuid.uuid4()),
                # Pairwise: the same person has another `sub` in another app registration.
                "sub": _b64(hashlib.sha256(f"{grant.client_id}|{p.tid}|{p.oid}".encode()).digest()),
                "tid": p.tid,
                "uti": _b64(secrets.token_bytes(16)),
                "ver": "2.0",
            }
            if "email" in grant.scope.split() and p.email:
                claims["email"] = p.email
            if p.xms_edov is not None:
                claims["xms_edov"] = p.xms_edov
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in self._next_claims.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        self._next_claims = {}
        key = self.keys[grant.vendor]
        header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
        signer = key
        if self.forge_next:
            self.forge_next = False
            signer = self.rogue
        return jwt.encode(header, claims, signer)

    # ---- HTTP ------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/google/.well-known/openid-configuration", self._google_discovery),
            Route("/google/o/oauth2/v2/auth", self._authorize, methods=["GET", "POST"]),
            Route("/google/token", self._token, methods=["POST"]),
            Route("/google/oauth2/v3/certs", self._google_certs),
            Route("/google/v1/userinfo", self._userinfo, methods=["GET", "POST"]),
            Route("/microsoft/oidc/userinfo", self._userinfo, methods=["GET", "POST"]),
            Route(
                "/microsoft/{authority}/v2.0/.well-known/openid-configuration",
                self._ms_discovery,
            ),
            Route(
                "/microsoft/{authority}/oauth2/v2.0/authorize",
                self._authorize,
                methods=["GET", "POST"],
            ),
            Route("/microsoft/{authority}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route("/microsoft/{authority}/discovery/v2.0/keys", self._ms_keys),
        ]

    @staticmethod
    def _vendor(request: Request) -> str:
        return "google" if request.url.path.startswith("/google/") else "microsoft"

    @staticmethod
    def _json(body: dict[str, Any], status: int = 200, *, no_store: bool = False) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"} if no_store else {}
        return JSONResponse(body, status_code=status, headers=headers)

    async def _google_discovery(self, request: Request) -> Response:
        return self._json(self.google_discovery())

    async def _google_certs(self, request: Request) -> Response:
        return self._json(self.google_jwks())

    async def _ms_discovery(self, request: Request) -> Response:
        return self._json(self.microsoft_discovery(request.path_params["authority"]))

    async def _ms_keys(self, request: Request) -> Response:
        return self._json(self.microsoft_jwks(request.path_params["authority"]))

    @staticmethod
    def _error_page(vendor: str, status: int, code: str, text: str) -> Response:
        title = f"Error {status}: {code}" if vendor == "google" else f"Sign in: {code}"
        body = (
            f"<!doctype html><title>{title}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        )
        return HTMLResponse(body, status_code=status)

    def _ms_error_fields(self, code: int, text: str) -> dict[str, Any]:
        return {
            "error_description": f"AADSTS{code}: {text} Trace ID: {uuid.uuid4()} "
            f"Correlation ID: {uuid.uuid4()} Timestamp: {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
        }

    async def _authorize(self, request: Request) -> Response:
        vendor = self._vendor(request)
        authority = request.path_params.get("authority", "")
        params = dict(request.query_params)
        chosen: Person | None = None
        if request.method == "POST":  # the chooser form
            form = await request.form()
            params = {k: str(v) for k, v in form.items() if k != "person"}
            index = int(str(form.get("person", "-1")))
            people = self.people[vendor]
            chosen = people[index] if 0 <= index < len(people) else None
        else:
            self.authorizations.append({"vendor": vendor, "authority": authority, **params})
        client = self.clients.get((vendor, params.get("client_id", "")))
        if client is None:
            return self._error_page(
                vendor, 401, "invalid_client", "The OAuth client was not found."
            )
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            if vendor == "google":
                return self._error_page(vendor, 400, "redirect_uri_mismatch", redirect_uri)
            return self._error_page(
                vendor, 400, "AADSTS50011", "The redirect URI does not match the app's."
            )

        def back(**answer: str) -> Response:
            if params.get("state") is not None:
                answer["state"] = params["state"]
            sep = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(f"{redirect_uri}{sep}{urlencode(answer)}", status_code=302)

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type")
        scope = params.get("scope", "")
        if "openid" not in scope.split():
            return back(error="invalid_scope" if vendor == "google" else "invalid_request")
        method = params.get("code_challenge_method")
        challenge = params.get("code_challenge")
        if challenge and (method or "plain") not in ("plain", "S256"):
            return back(error="invalid_request")
        if self.deny_next:
            error, self.deny_next = self.deny_next, None
            if vendor == "google":
                return back(error=error)
            return back(error=error, **self._ms_error_fields(65004, "User declined to consent."))
        person = chosen or self.current[vendor]
        if person is None:
            return self._chooser(vendor, params)
        if vendor == "microsoft":
            if (
                authority not in ("common", "organizations", "consumers")
                and person.tid != authority
            ):
                return self._error_page(
                    vendor,
                    400,
                    "AADSTS50020",
                    "The user account does not exist in the tenant of this application.",
                )
            if authority == "organizations" and person.tid == MS_CONSUMERS:
                return back(
                    error="invalid_request",
                    **self._ms_error_fields(
                        9002331, "Application is configured for work or school accounts only."
                    ),
                )
        code = (
            "4/0A" + _b64(secrets.token_bytes(48))
            if vendor == "google"
            else "1.A" + _b64(secrets.token_bytes(90))
        )
        self.codes[code] = _Grant(
            vendor=vendor,
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            person=person,
            nonce=params.get("nonce"),
            scope=scope,
            challenge=challenge,
            method=(method or "plain") if challenge else None,
            authority=authority,
            expires=time.time() + 600,
        )
        if vendor == "google":
            granted = "email profile openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile"
            return back(code=code, scope=granted, authuser="0", prompt="consent")
        return back(code=code, session_state=str(uuid.uuid4()))

    def _chooser(self, vendor: str, params: dict[str, str]) -> Response:
        label = "Google" if vendor == "google" else "Microsoft"
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        buttons = "".join(
            f'<button type="submit" name="person" value="{i}">Continue as '
            f"{html.escape(p.name)} ({html.escape(p.email or '')})</button>"
            for i, p in enumerate(self.people[vendor])
        )
        body = (
            f"<!doctype html><title>Sign in - {label} (sandbox)</title>"
            f"<h1>Choose an account</h1><p>to continue to the application</p>"
            f"<form method=post>{hidden}{buttons}</form>"
        )
        return HTMLResponse(body)

    def _token_error(
        self, vendor: str, status: int, error: str, ms_code: int, text: str
    ) -> Response:
        if vendor == "google":
            return self._json(
                {
                    "error": error,
                    "error_description": "Bad Request" if status == 400 else "Unauthorized",
                },
                status,
                no_store=True,
            )
        body = {
            "error": error,
            **self._ms_error_fields(ms_code, text),
            "error_codes": [ms_code],
            "timestamp": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}",
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }
        return self._json(body, status, no_store=True)

    async def _token(self, request: Request) -> Response:
        vendor = self._vendor(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append({"vendor": vendor, **form})
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:]).decode()
            except ValueError:
                decoded = ":"
            basic_id, _, basic_secret = decoded.partition(":")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        client = self.clients.get((vendor, client_id))
        if client is None or secret is None or not secrets.compare_digest(secret, client.secret):
            return self._token_error(
                vendor, 401, "invalid_client", 7000215, "Invalid client secret provided."
            )
        if form.get("grant_type") != "authorization_code":
            return self._token_error(
                vendor, 400, "unsupported_grant_type", 70003, "Unsupported grant type."
            )
        grant = self.codes.get(form.get("code", ""))
        if (
            grant is None
            or grant.used
            or grant.expires < time.time()
            or grant.client_id != client_id
        ):
            return self._token_error(
                vendor,
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired or was already used.",
            )
        grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._token_error(
                vendor, 400, "invalid_grant", 50011, "The redirect URI does not match."
            )
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            computed = (
                _b64(hashlib.sha256(verifier.encode()).digest())
                if grant.method == "S256"
                else verifier
            )
            if not verifier or not secrets.compare_digest(computed, grant.challenge):
                return self._token_error(
                    vendor,
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
        access = ("ya29." if vendor == "google" else "eyJ0eXAi.") + _b64(secrets.token_bytes(60))
        self.access_tokens[access] = (vendor, grant.person)
        id_token = self._id_token(grant, access)
        if vendor == "google":
            body = {
                "access_token": access,
                "expires_in": 3599,
                "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
                "token_type": "Bearer",
                "id_token": id_token,
            }
        else:
            body = {
                "token_type": "Bearer",
                "scope": "openid profile email",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": access,
                "id_token": id_token,
            }
        return self._json(body, no_store=True)

    async def _userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        found = self.access_tokens.get(token)
        if found is None:
            return Response(
                status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        vendor, p = found
        first, _, last = p.name.partition(" ")
        if vendor == "google":
            body: dict[str, Any] = {
                "sub": p.sub,
                "name": p.name,
                "given_name": first,
                "family_name": last,
                "email": p.email,
                "email_verified": p.email_verified,
            }
        else:
            body = {
                "sub": p.oid,
                "name": p.name,
                "given_name": first,
                "family_name": last,
                "email": p.email,
            }
        return self._json(body)
