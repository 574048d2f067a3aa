"""The token endpoint of the OpenID provider, and what validating its ID tokens costs.

`POST /a/{slug}/oauth2/token` of the real application (uvicorn, the same flags as the
throughput part) is driven with

* `grant_type=authorization_code` (PKCE S256 `code_verifier`, `client_secret_basic`): every
  code is used exactly once, and
* `grant_type=refresh_token` (`client_secret_basic`): every refresh token is used exactly once
  (each use rotates it),

at a fixed concurrency, by the load generator at the bottom of this module (a subprocess:
each request of its file is sent once, over keep-alive connections). The codes come from the
real authorization endpoint: the bench signs the agency's people in through the portal's
sign-in form and then asks `/oauth2/authorize` for each code, as their browser would; the
refresh tokens are the ones the measured code exchanges returned.

The machine is shared and noisy, so the numbers are put next to baselines measured in the same
run, in this process, between the rounds:

* the unavoidable crypto of a response: signing its ID token and access token (RS256, the
  agency's own key, decrypted from the database, with joserfc like the provider), and
* for ID-token validation (what every relying party does after a code exchange): one plain
  RS256 signature verification, against strict validation with joserfc / Authlib.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.bench.config import BenchConfig

BASE_URL = "https://id.bench.example"  # the public URL; Authlib insists on https
REDIRECT = "https://rp.bench.example/callback"
SCOPE = "openid profile email switchboard:memberships"
PASSWORD = "benchmark-password"  # the data set's, see dataset.py
CODE_TTL_SECONDS = 600  # the maximum the settings allow; the default is 60
GRANTS = ("authorization_code", "refresh_token")
# The target (issue 7 §6): server CPU per code exchange or refresh, against Keycloak's sizing
# guide, which allots one vCPU per 120 refresh-token requests per second (~8.3 ms each).
TARGET_SERVER_MS = 4.0
KEYCLOAK_REFRESH_PER_VCPU = 120
KEYCLOAK_MS = 1000 / KEYCLOAK_REFRESH_PER_VCPU


# ---- results -------------------------------------------------------------------------------


@dataclass
class GrantRun:
    grant: str
    round: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu: dict[str, float]  # cores used on average during the run, per process group

    def cpu_ms(self, group: str) -> float:
        """CPU milliseconds per request of one process group."""
        return 1000 * self.cpu.get(group, 0.0) / self.rps if self.rps else 0.0


@dataclass
class Micro:
    """Per-operation timings of an in-process operation, in microseconds."""

    name: str
    label: str
    samples: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples)

    def pct(self, p: float) -> float:
        s = sorted(self.samples)
        return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else 0.0

    @property
    def median(self) -> float:
        return median(self.samples) if self.samples else 0.0


@dataclass
class TokensResult:
    agency_slug: str
    users: int
    client_id: str
    workers: int
    connections: int
    requests_per_round: int
    rounds: int
    warmup_requests: int
    server_command: str
    loadgen_command: str
    code_ttl_seconds: int
    loadavg_start: str = ""
    loadavg_end: str = ""
    checks: list[str] = field(default_factory=list)
    runs: list[GrantRun] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    authorize_rps: float = 0.0  # codes minted per second through /authorize (setup)
    signing: dict[str, Micro] = field(default_factory=dict)
    validation: dict[str, Micro] = field(default_factory=dict)
    validation_tokens: int = 0  # distinct ID tokens the validation cycles through
    id_token_bytes: int = 0
    access_token_bytes: int = 0
    refresh_has_id_token: bool = False

    def of(self, grant: str) -> list[GrantRun]:
        return [r for r in self.runs if r.grant == grant]

    def median_of(self, grant: str, attr: str) -> float:
        return median(float(getattr(r, attr)) for r in self.of(grant))

    def median_cpu_ms(self, grant: str, group: str) -> float:
        return median(r.cpu_ms(group) for r in self.of(grant))

    def errors(self, grant: str | None = None) -> int:
        return sum(r.errors for r in self.runs if grant is None or r.grant == grant)

    def crypto_us(self, grant: str) -> float:
        """The signing a response of this grant cannot avoid (median µs)."""
        at = self.signing["access_token"].median
        if grant == "authorization_code" or self.refresh_has_id_token:
            return at + self.signing["id_token"].median
        return at

    def crypto_ratio(self, grant: str) -> float:
        return 1000 * self.median_cpu_ms(grant, "server") / self.crypto_us(grant)

    def target_ratio(self, grant: str) -> float:
        """Server CPU per request ÷ the target (≤ 1 passes)."""
        return self.median_cpu_ms(grant, "server") / TARGET_SERVER_MS

    def keycloak_ratio(self, grant: str) -> float:
        """Server CPU per request ÷ Keycloak's per-request figure (< 1: cheaper)."""
        return self.median_cpu_ms(grant, "server") / KEYCLOAK_MS

    def target_ok(self, grant: str | None = None) -> bool:
        grants = [grant] if grant else [g for g in GRANTS if self.of(g)]
        return all(self.target_ratio(g) <= 1.0 for g in grants)

    def validation_ratio(self, name: str = "strict_authlib") -> float:
        return self.validation[name].median / self.validation["rs256_verify"].median


# ---- HTTP set-up: relying party, people signed in, authorization codes -----------------------


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _cookies(resp: Any) -> dict[str, str]:
    """Set-Cookie pairs by hand: the cookies are `Secure` (the public URL is https) and the
    bench talks plain http to the server, so a cookie jar would not send them back."""
    out: dict[str, str] = {}
    for raw in resp.headers.get_list("set-cookie"):
        name, _, rest = raw.partition("=")
        value = rest.split(";", 1)[0]
        if value and value != '""':
            out[name.strip()] = value
    return out


def _cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items())


@dataclass
class Code:
    code: str
    verifier: str
    nonce: str


@dataclass
class Setup:
    slug: str
    client_id: str
    secret: str
    browsers: list[dict[str, str]]  # one cookie jar per person signed in
    issuer: str = ""
    jwks: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> str:
        return _basic(self.client_id, self.secret)

    @property
    def token_path(self) -> str:
        return f"/a/{self.slug}/oauth2/token"


async def _setup(url: str, slug: str, api_key: str, emails: list[str]) -> Setup:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = {
            "name": "Bench relying party",
            "type": "confidential",
            "redirect_uris": [REDIRECT],
            "allowed_scopes": SCOPE.split(),
            "grant_types": ["authorization_code", "refresh_token"],
            "first_party": True,  # the agency's own solution: no consent screen
        }
        resp = await http.post(
            "/api/v1/oauth-clients", json=body, headers={"Authorization": f"Bearer {api_key}"}
        )
        if resp.status_code != 201:
            raise RuntimeError(f"registering the relying party: {resp.status_code} {resp.text}")
        rp = resp.json()
        setup = Setup(slug, rp["id"], rp["client_secret"], [])
        for email in emails:
            page = await http.get(f"/a/{slug}/login", headers={"accept": "text/html"})
            jar = _cookies(page)
            http.cookies.clear()
            found = page.text.split('name="csrf_token" value="', 1)
            if page.status_code != 200 or len(found) != 2:
                raise RuntimeError(f"sign-in page: {page.status_code} {page.text[:300]}")
            form = {"email": email, "password": PASSWORD, "csrf_token": found[1].split('"', 1)[0]}
            resp = await http.post(
                f"/a/{slug}/login", data=form, headers={"Cookie": _cookie_header(jar)}
            )
            http.cookies.clear()
            jar.update(_cookies(resp))
            if resp.status_code != 303 or "sb_session" not in jar:
                raise RuntimeError(f"sign-in of {email}: {resp.status_code} {resp.text[:300]}")
            setup.browsers.append(jar)
        disc = (await http.get(f"/a/{slug}/.well-known/openid-configuration")).json()
        setup.issuer = disc["issuer"]
        setup.jwks = (await http.get(f"/a/{slug}/jwks.json")).json()
    return setup


async def _mint(url: str, setup: Setup, n: int, concurrency: int = 8) -> tuple[list[Code], float]:
    """`n` authorization codes through the real authorization endpoint, as the people's
    browsers would get them (round robin over the people signed in). Returns the codes and
    the rate they were minted at."""
    import httpx

    codes: list[Code] = []
    counter = iter(range(n))

    async def one(http: httpx.AsyncClient, i: int) -> None:
        verifier, challenge = _pkce()
        nonce, state = secrets.token_urlsafe(12), secrets.token_urlsafe(8)
        params = {
            "response_type": "code",
            "client_id": setup.client_id,
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        jar = setup.browsers[i % len(setup.browsers)]
        resp = await http.get(
            f"/a/{setup.slug}/oauth2/authorize",
            params=params,
            headers={"Cookie": _cookie_header(jar), "accept": "text/html"},
        )
        http.cookies.clear()
        location = resp.headers.get("location", "")
        if resp.status_code not in (302, 303) or not location.startswith(REDIRECT):
            raise RuntimeError(f"/authorize answered {resp.status_code}: {resp.text[:300]}")
        q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        if q.get("state") != state or "code" not in q:
            raise RuntimeError(f"/authorize redirected to {location}")
        codes.append(Code(q["code"], verifier, nonce))

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            await one(http, i)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return codes, n / (time.perf_counter() - t0)


def _code_form(setup: Setup, c: Code) -> str:
    from urllib.parse import urlencode

    return urlencode(
        {
            "grant_type": "authorization_code",
            "code": c.code,
            "redirect_uri": REDIRECT,
            "code_verifier": c.verifier,
        }
    )


def _refresh_form(refresh_token: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})


# ---- checks before measuring ----------------------------------------------------------------


_LAST_HEADERS: dict[str, str] = {}


def _post(url: str, path: str, auth: str, form: str) -> tuple[int, dict[str, Any]]:
    """POST a form; the response's headers are left in `_LAST_HEADERS`."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        url + path,
        data=form.encode(),
        method="POST",
        headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    _LAST_HEADERS.clear()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            _LAST_HEADERS.update({k.lower(): v for k, v in resp.headers.items()})
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        _LAST_HEADERS.update({k.lower(): v for k, v in exc.headers.items()})
        return exc.code, json.loads(exc.read() or b"{}")


def _verify(url: str, setup: Setup, codes: list[Code]) -> tuple[list[str], dict[str, Any]]:
    """Two full round trips checked by hand before anything is measured. Returns what was
    checked and the responses of the first code exchange and of its refresh."""
    c, c2 = codes[0], codes[1]
    token = setup.token_path

    def post(form: str) -> tuple[int, dict[str, Any]]:
        return _post(url, token, setup.auth, form)

    status, tok = post(_code_form(setup, c))
    if status != 200 or not {"access_token", "id_token", "refresh_token"} <= tok.keys():
        raise RuntimeError(f"code exchange answered {status}: {tok}")
    cache = _LAST_HEADERS.get("cache-control", "")
    if "no-store" not in cache:  # RFC 6749 §5.1
        raise RuntimeError(f"token response without Cache-Control: no-store ({cache!r})")
    claims = _strict_validator(setup)(tok["id_token"], c.nonce, tok["access_token"])
    checks = [
        "code exchange: 200 with `access_token`, `id_token`, `refresh_token`, "
        f"`token_type` {tok.get('token_type')}, `expires_in` {tok.get('expires_in')}, "
        f"`scope` {tok.get('scope')!r}; `Cache-Control: {cache}`",
        "its ID token validates strictly (signature with the JWKS key, `iss`, `aud`, `exp`, "
        f"`iat`, `nonce`, `at_hash`); claims: {', '.join(f'`{k}`' for k in sorted(claims))}",
    ]
    status, ref = post(_refresh_form(tok["refresh_token"]))
    if status != 200 or not ref.get("refresh_token") or not ref.get("access_token"):
        raise RuntimeError(f"refresh answered {status}: {ref}")
    if ref["refresh_token"] == tok["refresh_token"]:
        raise RuntimeError("the refresh token was not rotated")
    checks.append(
        "refresh: 200 with a new `access_token` and a rotated `refresh_token`"
        + (" and an `id_token`" if "id_token" in ref else " (no `id_token`)")
    )
    status, reused = post(_refresh_form(tok["refresh_token"]))
    if status != 400 or reused.get("error") != "invalid_grant":
        raise RuntimeError(f"a rotated refresh token answered {status}: {reused}")
    status, family = post(_refresh_form(ref["refresh_token"]))
    if status != 400:
        raise RuntimeError(f"the successor of a reused refresh token answered {status}")
    checks.append(
        "the rotated refresh token again: 400 `invalid_grant`, and then its successor: "
        f"{status} `{family.get('error')}` (reuse revokes the family)"
    )
    status, bad = post(_code_form(setup, Code(c2.code, "x" * 43, "")))
    if status != 400:
        raise RuntimeError(f"a wrong code_verifier answered {status}: {bad}")
    status, tok2 = post(_code_form(setup, c2))
    if status != 200:
        raise RuntimeError(f"code exchange after a wrong verifier answered {status}: {tok2}")
    status, again = post(_code_form(setup, c2))
    if status != 400 or again.get("error") != "invalid_grant":
        raise RuntimeError(f"a used code answered {status}: {again}")
    status, revoked = post(_refresh_form(tok2["refresh_token"]))
    if status != 400:
        raise RuntimeError(f"a refresh token of a reused code answered {status}: {revoked}")
    checks.append(
        f"a wrong `code_verifier`: 400 `{bad.get('error')}` (the code survives it: 200 with "
        "the right one); the same code a second time: 400 `invalid_grant`, and the refresh "
        f"token it had given: {status} `{revoked.get('error')}` (code reuse revokes its tokens)"
    )
    return checks, {"code": tok, "refresh": ref}


# ---- in-process baselines -------------------------------------------------------------------


def _signing_key(target_url: str, agency_id: uuid.UUID, secret_key: str) -> Any:
    """The agency's active RS256 key, decrypted exactly as `keys.py` does, with the secret
    key of the bench server (this process's own settings are left alone)."""
    import asyncpg
    from joserfc.jwk import RSAKey

    from services.kit import crypto
    from services.oauth2 import keys

    async def fetch() -> Any:
        conn = await asyncpg.connect(target_url)  # the superuser: RLS does not apply
        try:
            return await conn.fetchrow(
                "SELECT kid, private_key_encrypted FROM oauth_signing_keys WHERE agency_id = $1 "
                "AND alg = 'RS256' AND status = 'active' ORDER BY created_at DESC LIMIT 1",
                agency_id,
            )
        finally:
            await conn.close()

    row = asyncio.run(fetch())
    kid, blob = row["kid"], row["private_key_encrypted"]
    raw = base64.urlsafe_b64decode(blob.partition(":")[2].encode())
    context = f"{agency_id}|{kid}".encode()
    pem = crypto._kek(secret_key, keys._PURPOSE).decrypt(raw[:12], raw[12:], context)
    return RSAKey.import_key(pem, parameters={"kid": kid, "alg": "RS256", "use": "sig"})


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, payload, _ = token.split(".")

    def dec(s: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))))

    return dec(head), dec(payload)


def _time_each(ops: dict[str, Callable[[int], object]], iterations: int) -> dict[str, list[float]]:
    """Microseconds per call of each op; the ops take turns, in rotating order, so that drift
    in the machine's load hits them alike."""
    names = list(ops)
    out: dict[str, list[float]] = {n: [] for n in names}
    clock = time.perf_counter_ns
    for i in range(iterations):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            fn = ops[name]
            t0 = clock()
            fn(i)
            out[name].append((clock() - t0) / 1000)
    return out


def signing_baseline(key: Any, sample: dict[str, Any], iterations: int) -> dict[str, list[float]]:
    """Re-sign the ID token and the access token of a real response (same header, same
    claims, same key) with joserfc, as the provider does; and the bare RSA-2048 signature
    with `cryptography` underneath, for reference."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from joserfc import jwt

    id_header, id_claims = _parts(sample["id_token"])
    at_header, at_claims = _parts(sample["access_token"])
    private = key.get_op_key("sign")
    signing_input = sample["access_token"].rsplit(".", 1)[0].encode()
    ops: dict[str, Callable[[int], object]] = {
        "id_token": lambda _i: jwt.encode(id_header, id_claims, key, algorithms=["RS256"]),
        "access_token": lambda _i: jwt.encode(at_header, at_claims, key, algorithms=["RS256"]),
        "rsa_sign": lambda _i: private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256()),
    }
    return _time_each(ops, iterations)


def _strict_validator(setup: Setup, keyset: Any = None) -> Callable[[str, str, str], Any]:
    """What a relying party with Authlib does with the ID token of a code exchange
    (`parse_id_token`): signature with the JWKS key (RS256 only), then `CodeIDToken` with the
    issuer and client id it expects: `iss`, `aud`, `sub`, `exp`, `iat` (no leeway), `nonce`,
    `azp`, `at_hash`. A cached key set (`keyset`), or the JWKS imported on every call as
    `parse_id_token` does (`keyset=None`)."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.jwk import KeySet
    from joserfc.jws import JWSRegistry

    registry = JWSRegistry(algorithms=["RS256"])
    essential = {"essential": True}

    def validate(id_token: str, nonce: str, access_token: str) -> Any:
        ks = keyset if keyset is not None else KeySet.import_key_set(setup.jwks)  # type: ignore[arg-type]
        token = jwt.decode(id_token, ks, registry=registry)
        options = {
            "iss": {"essential": True, "value": setup.issuer},
            "aud": {"essential": True, "value": setup.client_id},
            "sub": essential,
            "exp": essential,
            "iat": essential,
            "nonce": essential,
        }
        params = {"nonce": nonce, "client_id": setup.client_id, "access_token": access_token}
        claims = CodeIDToken(token.claims, token.header, options, params)  # type: ignore[arg-type]
        claims.validate(leeway=0)
        return claims

    return validate


def validation_bench(
    setup: Setup, samples: list[tuple[str, str, str]], iterations: int
) -> dict[str, list[float]]:
    """Microseconds per validation of real ID tokens (cycling through `samples` of
    (id_token, nonce, access_token)), five ways, interleaved."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from joserfc import jws, jwt
    from joserfc.jwk import KeySet, RSAKey

    keyset = KeySet.import_key_set(setup.jwks)  # type: ignore[arg-type]
    kid = _parts(samples[0][0])[0]["kid"]
    jwk = next(k for k in setup.jwks["keys"] if k["kid"] == kid)
    rsa_key = RSAKey.import_key(jwk)
    public = rsa_key.get_op_key("verify")
    strict = _strict_validator(setup, keyset)
    per_call_jwks = _strict_validator(setup)

    def raw_verify(i: int) -> None:
        tok = samples[i % len(samples)][0]
        signing_input, _, sig = tok.rpartition(".")
        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        public.verify(signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())

    def joserfc_strict(i: int) -> None:
        tok, nonce, _ = samples[i % len(samples)]
        token = jwt.decode(tok, keyset, algorithms=["RS256"])
        jwt.JWTClaimsRegistry(
            leeway=0,
            iss={"essential": True, "value": setup.issuer},
            aud={"essential": True, "value": setup.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(token.claims)

    ops: dict[str, Callable[[int], object]] = {
        "rs256_verify": raw_verify,
        "jws_signature": lambda i: jws.deserialize_compact(
            samples[i % len(samples)][0], rsa_key, algorithms=["RS256"]
        ),
        "strict_joserfc": joserfc_strict,
        "strict_authlib": lambda i: strict(*samples[i % len(samples)]),
        "strict_authlib_jwks": lambda i: per_call_jwks(*samples[i % len(samples)]),
    }
    return _time_each(ops, iterations)


VALIDATION_LABELS = {
    "rs256_verify": "plain RS256 signature check (`cryptography`, RSA-2048 public key): "
    "the baseline",
    "jws_signature": "joserfc `jws.deserialize_compact`: parse + signature, no claims",
    "strict_joserfc": "strict, joserfc: `jwt.decode` (key set, RS256 only) + "
    "`JWTClaimsRegistry` (`iss`, `aud`, `sub`, `exp`, `iat`, `nonce`)",
    "strict_authlib": "**strict, Authlib** (what `parse_id_token` does, key set cached): "
    "`jwt.decode` + `CodeIDToken.validate` (`iss`, `aud`, `sub`, `exp`, `iat`, `nonce`, "
    "`azp`, `at_hash`)",
    "strict_authlib_jwks": "the same, importing the JWKS into a `KeySet` on every call "
    "(as Authlib's `parse_id_token` does)",
}
SIGNING_LABELS = {
    "id_token": "sign the ID token (joserfc `jwt.encode`, RS256, the agency's key)",
    "access_token": "sign the access token (same)",
    "rsa_sign": "bare RSA-2048 PKCS#1 v1.5 signature (`cryptography`), for reference",
}


def _negative_checks(setup: Setup, sample: tuple[str, str, str]) -> str:
    """Strict validation must refuse a wrong nonce, another audience and a forged signature."""
    validate = _strict_validator(setup)
    tok, nonce, at = sample
    head, payload, sig = tok.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    cases = {
        "wrong nonce": (tok, nonce + "x", at),
        "forged signature": (forged, nonce, at),
        "other access token (at_hash)": (tok, nonce, at + "x"),
    }
    refused = []
    for name, args in cases.items():
        try:
            validate(*args)
        except Exception:  # any refusal counts
            refused.append(name)
            continue
        raise RuntimeError(f"strict validation accepted an ID token with a {name}")
    other = Setup(setup.slug, "oac_someone_else", "", [], setup.issuer, setup.jwks)
    try:
        _strict_validator(other)(*sample)
    except Exception:
        refused.append("another audience")
    else:
        raise RuntimeError("strict validation accepted an ID token for another audience")
    return "strict validation refuses: " + ", ".join(refused)


# ---- measured runs ---------------------------------------------------------------------------


def _loadgen_cmd(
    url: str, path: str, requests_file: Path, out: Path, connections: int
) -> list[str]:
    import sys

    return [
        sys.executable,
        "-m",
        "tests.bench.tokens",
        url,
        path,
        str(requests_file),
        str(out),
        "--connections",
        str(connections),
    ]


def _write_requests(path: Path, auth: str, forms: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for form in forms:
            fh.write(f"{auth}\t{form}\n")


def _read_responses(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            status, body = json.loads(line)
            try:
                out.append((status, json.loads(body)))
            except ValueError:
                out.append((status, {"raw": body[:300]}))
    return out


def _measure(server: Any, cmd: list[str], grant: str, rnd: int) -> GrantRun:
    from tests.bench.sysinfo import cpu_delta, cpu_seconds, machine_busy_seconds
    from tests.bench.throughput import _cpu_groups, _run_load

    groups = _cpu_groups(server)
    before = {g: cpu_seconds(pids) for g, pids in groups.items()}
    busy0 = machine_busy_seconds()
    t0 = time.perf_counter()
    summary, load_cpu = _run_load(cmd)
    wall = time.perf_counter() - t0
    busy = machine_busy_seconds() - busy0
    after = {g: cpu_seconds(pids) for g, pids in _cpu_groups(server).items()}
    used = {g: max(0.0, cpu_delta(before[g], after[g])) for g in groups}
    seconds = summary["duration_us"] / 1e6
    requests = summary["requests"]
    # The server and PostgreSQL work only while requests are in flight: their CPU seconds are
    # spread over the measured window (first request to last answer). The load generator's
    # own start-up and file handling, and other processes, over the subprocess's whole life.
    cpu = {g: v / seconds if seconds else 0.0 for g, v in used.items()}
    cpu["loadgen"] = load_cpu / wall
    cpu["other"] = max(0.0, (busy - sum(used.values()) - load_cpu) / wall)
    return GrantRun(
        grant=grant,
        round=rnd,
        requests=requests,
        seconds=seconds,
        rps=requests / seconds if seconds else 0.0,
        p50_ms=summary["latency_us"]["p50"] / 1000,
        p99_ms=summary["latency_us"]["p99"] / 1000,
        errors=sum(summary["errors"].values()),
        cpu=cpu,
    )


def run(
    cfg: BenchConfig, agency: Any, log: Callable[[str], None] = print
) -> TokensResult:  # agency: tests.bench.dataset.AgencyData
    from tests.bench.throughput import (
        APP_TARGET,
        Server,
        _free_port,
        running,
        server_command,
        server_env,
    )

    def loadavg() -> str:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])

    tmp = Path(tempfile.mkdtemp(prefix="switchboard-bench-tokens-"))
    env = server_env(cfg.target_url, tmp)
    env["SWITCHBOARD_BASE_URL"] = BASE_URL
    env["SWITCHBOARD_OAUTH2_CODE_TTL_SECONDS"] = str(CODE_TTL_SECONDS)
    server = Server("app", APP_TARGET, _free_port(), factory=True)
    n, rounds, warm, conns = (
        cfg.tokens_requests,
        cfg.tokens_rounds,
        cfg.tokens_warmup,
        cfg.tokens_connections,
    )
    path = f"/a/{agency.slug}/oauth2/token"
    result = TokensResult(
        agency_slug=agency.slug,
        users=len(agency.user_emails),
        client_id="",
        workers=cfg.workers,
        connections=conns,
        requests_per_round=n,
        rounds=rounds,
        warmup_requests=warm,
        server_command=" ".join(server_command(server, cfg.workers)[1:]).replace(
            str(server.port), "PORT"
        ),
        loadgen_command=f"-m tests.bench.tokens http://127.0.0.1:PORT {path} REQUESTS.tsv "
        f"RESPONSES.jsonl --connections {conns}",
        code_ttl_seconds=CODE_TTL_SECONDS,
        loadavg_start=loadavg(),
    )
    with running([server], cfg.workers, env, tmp):
        url = server.url
        setup = asyncio.run(_setup(url, agency.slug, agency.api_key, agency.user_emails))
        result.client_id = setup.client_id
        log(
            f"  relying party {setup.client_id} registered, {len(setup.browsers)} people signed "
            "in through the portal form"
        )
        codes, _ = asyncio.run(_mint(url, setup, 2))
        result.checks, sample = _verify(url, setup, codes)
        result.refresh_has_id_token = "id_token" in sample["refresh"]
        result.id_token_bytes = len(sample["code"]["id_token"])
        result.access_token_bytes = len(sample["code"]["access_token"])
        key = _signing_key(cfg.target_url, agency.id, env["SWITCHBOARD_SECRET_KEY"])
        signing: dict[str, list[float]] = {k: [] for k in SIGNING_LABELS}
        id_samples: list[tuple[str, str, str]] = []

        def batch(grant: str, forms: list[str], rnd: int) -> list[tuple[int, dict[str, Any]]]:
            reqs, out = tmp / f"{grant}-{rnd}.tsv", tmp / f"{grant}-{rnd}.out"
            _write_requests(reqs, setup.auth, forms)
            cmd = _loadgen_cmd(url, path, reqs, out, conns)
            r = _measure(server, cmd, grant, rnd)
            responses = _read_responses(out)
            bad = [(s, b) for s, b in responses if s != 200]
            result.error_samples += [f"{grant}: {s} {b}" for s, b in bad[:3]]
            if rnd > 0:
                result.runs.append(r)
                log(
                    f"  round {rnd} {grant:18s}: {r.rps:7.1f} req/s  p50 {r.p50_ms:7.2f} ms  "
                    f"p99 {r.p99_ms:7.2f} ms  errors {r.errors}  server "
                    f"{r.cpu_ms('server'):.2f} ms/req  cpu "
                    + " ".join(f"{g}={v:.2f}" for g, v in r.cpu.items())
                )
            return responses

        def one_round(rnd: int, count: int) -> None:
            t = time.perf_counter()
            minted, rate = asyncio.run(_mint(url, setup, count))
            if rnd > 0:
                result.authorize_rps = max(result.authorize_rps, rate)
            log(
                f"  {'warm-up' if rnd == 0 else f'round {rnd}'}: {count} codes from /authorize "
                f"in {time.perf_counter() - t:.1f}s ({rate:.0f}/s)"
            )
            responses = batch("authorization_code", [_code_form(setup, c) for c in minted], rnd)
            refresh_tokens = []
            for c, (status, body) in zip(minted, responses, strict=True):
                if status == 200:
                    refresh_tokens.append(body["refresh_token"])
                    if rnd > 0:
                        id_samples.append((body["id_token"], c.nonce, body["access_token"]))
            batch("refresh_token", [_refresh_form(t) for t in refresh_tokens], rnd)
            if rnd > 0:  # the baseline, in this process, between the measured runs
                for k, v in signing_baseline(
                    key, sample["code"], cfg.tokens_sign_iterations
                ).items():
                    signing[k] += v

        one_round(0, warm)
        for rnd in range(1, rounds + 1):
            one_round(rnd, n)
    result.signing = {k: Micro(k, SIGNING_LABELS[k], v) for k, v in signing.items()}
    log(
        "  signing (median µs): "
        + "  ".join(f"{k} {m.median:.0f}" for k, m in result.signing.items())
    )
    samples = id_samples[-2000:]  # real ID tokens from the measured code exchanges
    if not samples:
        raise RuntimeError("no code exchange succeeded: nothing to validate")
    result.checks.append(_negative_checks(setup, samples[0]))
    result.validation_tokens = len(samples)
    timings = validation_bench(setup, samples, cfg.tokens_validations)
    result.validation = {k: Micro(k, VALIDATION_LABELS[k], v) for k, v in timings.items()}
    log(
        f"  ID-token validation (median µs over {cfg.tokens_validations:,} each, "
        f"{len(samples):,} distinct tokens): "
        + "  ".join(f"{k} {m.median:.0f}" for k, m in result.validation.items())
    )
    result.loadavg_end = loadavg()
    return result


# ---- the load generator (a subprocess) -------------------------------------------------------


def _requests(path: str, host: str, port: int, requests_file: str) -> list[bytes]:
    reqs: list[bytes] = []
    with open(requests_file, encoding="utf-8") as fh:
        for line in fh:
            auth, _, form = line.rstrip("\n").partition("\t")
            body = form.encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            reqs.append(head.encode() + body)
    return reqs


async def _load(
    host: str, port: int, reqs: list[bytes], connections: int
) -> tuple[dict[str, object], list[tuple[int, str]]]:
    responses: list[tuple[int, str]] = [(0, "")] * len(reqs)
    latencies: list[float] = []
    errors = {"status": 0, "read": 0}
    next_index = iter(range(len(reqs)))
    conns = [await asyncio.open_connection(host, port) for _ in range(connections)]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in next_index:  # every request exactly once, whichever connection is free
            t0 = time.perf_counter()
            try:
                writer.write(reqs[i])
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors["read"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors["status"] += 1
            responses[i] = (status, body.decode())
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in conns))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6)

    summary = {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "errors": errors,
        "latency_us": {
            "mean": sum(latencies) / len(latencies) * 1e6 if latencies else 0.0,
            "p50": pct(0.50),
            "p90": pct(0.90),
            "p99": pct(0.99),
            "max": int(latencies[-1] * 1e6) if latencies else 0,
        },
    }
    return summary, responses


def main() -> None:
    """`python -m tests.bench.tokens URL PATH REQUESTS_FILE OUT_FILE --connections N`: POST
    each line of REQUESTS_FILE (`<authorization>\\t<form body>`) exactly once to PATH over N
    keep-alive connections; write every response (status, body) to OUT_FILE in request order
    and print a `BENCH_JSON {...}` summary like tests/bench/loadgen.py (a request that got no
    answer counts as a `read` error, status 0)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("path")
    parser.add_argument("requests_file")
    parser.add_argument("out_file")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reqs = _requests(args.path, host, port, args.requests_file)
    summary, responses = asyncio.run(_load(host, port, reqs, args.connections))
    with open(args.out_file, "w", encoding="utf-8") as fh:
        for item in responses:
            fh.write(json.dumps(item) + "\n")
    print("BENCH_JSON " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
