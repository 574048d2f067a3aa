"""The sample solution, end to end and in-process: a person signed in at the agency's portal
opens the solution and lands in it signed in (no second password), and every way of
forging or replaying the sign-in is refused.

Two ASGI apps share one in-process "network" (`Network`, dispatching by host): the
Switchboard app at `http://testserver` (the provider) and the sample app at
`https://sample.test`. The browser is one httpx client over that network (its cookie jar
keeps each host's cookies apart); the sample app's back-channel calls (discovery, JWKS,
token endpoint) go through the same network, where a test can tamper with the token
endpoint's answer like an attacker in the middle would.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.sampleapp import create_sample_app
from services.sampleapp.cookies import Signer
from services.sampleapp.oidc import RelyingParty, Settings, SignInError, at_hash
from tests.oauth2.conftest import OIDC, csrf_of

SAMPLE = "https://sample.test"
PASSWORD = "sample-pass-" + secrets.token_hex(4)


# ---- the in-process network -------------------------------------------------------------------


class Network(httpx.AsyncBaseTransport):
    """Routes each request to the ASGI app serving its host; records what passes; lets a
    test rewrite the token endpoint's JSON answer."""

    def __init__(self, hosts: dict[str, Any]) -> None:
        self.hosts = {host: httpx.ASGITransport(app=app) for host, app in hosts.items()}
        self.seen: list[httpx.Request] = []
        self.token_answers: list[dict] = []
        self.rewrite_token: Callable[[dict], dict] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        transport = self.hosts.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        resp = await transport.handle_async_request(request)
        if request.url.path.endswith("/oauth2/token"):
            body = json.loads(await resp.aread())
            self.token_answers.append(body)
            if self.rewrite_token is not None and resp.status_code == 200:
                body = self.rewrite_token(dict(body))
            return httpx.Response(
                resp.status_code, json=body, headers={"cache-control": "no-store"}
            )
        return resp

    def paths(self, host: str = "testserver") -> list[str]:
        return [r.url.path for r in self.seen if r.url.host == host]


class Browser:
    def __init__(self, network: Network) -> None:
        self.http = httpx.AsyncClient(
            transport=network, base_url="http://testserver", headers={"accept": "text/html"}
        )

    async def get(self, url: str, **kw) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def post(self, url: str, **kw) -> httpx.Response:
        return await self.http.post(url, **kw)

    async def follow(self, resp: httpx.Response, limit: int = 12) -> tuple[httpx.Response, list]:
        """Follow redirects like a browser; returns the last answer and every address visited."""
        hops: list[str] = []
        while resp.is_redirect and limit:
            url = urljoin(str(resp.url), resp.headers["location"])
            hops.append(url)
            resp = await self.http.get(url)
            limit -= 1
        return resp, hops

    def cookie(self, name_prefix: str) -> str | None:
        return next(
            (c.value for c in self.http.cookies.jar if c.name.startswith(name_prefix)), None
        )


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class World:
    def __init__(self, app, api, agency, rp: dict, *, public: bool = False) -> None:
        self.api = api
        self.agency = agency
        self.rp = rp
        self.issuer = f"http://testserver/a/{agency.slug}"
        self.backchannel = Network({"testserver": app})
        self.sample = create_sample_app(
            self.issuer,
            rp["id"],
            None if public else rp["client_secret"],
            SAMPLE,
            name="Review Booster",
            http_transport=self.backchannel,
            secret_key="test-" + secrets.token_hex(16),
        )
        self.network = Network({"testserver": app, "sample.test": self.sample})
        self.browsers: list[Browser] = []

    def browser(self) -> Browser:
        b = Browser(self.network)
        self.browsers.append(b)
        return b

    async def invite(self, b: Browser, *, role: str, client_id: str | None = None, name: str):
        """A person arrives by invitation and sets a password: signed in at the portal."""
        email = f"{role}-{secrets.token_hex(3)}@people.example"
        body = {"email": email, "role": role, "name": name}
        if client_id:
            body["client_id"] = client_id
        resp = await self.api.post("/api/v1/invitations", headers=self.agency.headers, json=body)
        assert resp.status_code == 201, resp.text
        path = httpx.URL(resp.json()["url"]).path
        page = await b.get(path)
        assert page.status_code == 200, page.text[:300]
        form = {"name": name, "password": PASSWORD, "password_confirm": PASSWORD}
        accepted = await b.post(path, data={**form, "csrf_token": csrf_of(page.text)})
        assert accepted.status_code == 303, accepted.text[:500]
        return email

    async def sign_in_at_portal(self, b: Browser) -> None:
        url = f"/a/{self.agency.slug}/login"
        page = await b.get(url)
        form = {
            "email": self.agency.owner_email,
            "password": self.agency.owner_password,
            "csrf_token": csrf_of(page.text),
        }
        assert (await b.post(url, data=form)).status_code == 303

    async def to_callback(self, b: Browser, **login_params: str) -> str:
        """/login, then the provider (a signed-in, pre-approved person): the callback URL the
        provider sends the browser to, not followed yet."""
        start = await b.get(f"{SAMPLE}/login", params=login_params or None)
        assert start.status_code == 303, start.text[:300]
        at_provider = await b.get(start.headers["location"])
        assert at_provider.status_code in (302, 303), at_provider.text[:300]
        location = at_provider.headers["location"]
        assert location.startswith(f"{SAMPLE}/callback?"), location
        return location

    async def signed_in(self, b: Browser) -> httpx.Response:
        done, _ = await b.follow(await b.get(await self.to_callback(b)))
        assert done.status_code == 200 and "Signed in as" in done.text, done.text[:500]
        return done


@pytest.fixture
async def world(app, client, make_agency):
    made: list[World] = []

    async def make(*, first_party: bool = True, public: bool = False, **fields) -> World:
        agency = await make_agency(name="Northwind Digital")
        body = {
            "name": "Review Booster",
            "type": "public" if public else "confidential",
            "redirect_uris": [f"{SAMPLE}/callback"],
            "post_logout_redirect_uris": [f"{SAMPLE}/"],
            "first_party": first_party,
            **fields,
        }
        resp = await client.post("/api/v1/oauth-clients", headers=agency.headers, json=body)
        assert resp.status_code == 201, resp.text
        w = World(app, client, agency, resp.json(), public=public)
        made.append(w)
        return w

    yield make
    for w in made:
        for b in w.browsers:
            await b.http.aclose()


@lru_cache(maxsize=1)
def attacker_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def claims_of(token: str) -> dict:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def header_of(token: str) -> dict:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def set_cookie_headers(resp: httpx.Response) -> list[str]:
    return resp.headers.get_list("set-cookie")


# ---- the happy paths ---------------------------------------------------------------------------


async def test_portal_person_opens_the_solution_and_is_signed_in(world, make_client):
    w = await world()
    shop = await make_client(w.agency, legal_name="Bella Vista Bistro SARL")
    b = w.browser()
    email = await w.invite(b, role="client_owner", client_id=shop["id"], name="Maria Rossi")

    # Before: a button to sign in with the agency
    home = await b.get(f"{SAMPLE}/")
    assert home.status_code == 200
    assert "Sign in with" in home.text and "Signed in as" not in home.text
    assert "Content-Security-Policy" in home.headers

    # "Open" in the portal: third-party-initiated login at the initiate login URI
    start = await b.get(
        f"{SAMPLE}/login",
        params={"iss": w.issuer, "login_hint": email, "target_link_uri": f"{SAMPLE}/"},
    )
    assert start.status_code == 303
    authorize = start.headers["location"]
    assert authorize.startswith(f"{w.issuer}/oauth2/authorize?")
    q = query_of(authorize)
    assert q["client_id"] == w.rp["id"] and q["redirect_uri"] == f"{SAMPLE}/callback"
    assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
    assert len(q["code_challenge"]) == 43 and len(q["state"]) >= 32 and len(q["nonce"]) >= 32
    assert q["login_hint"] == email
    assert set(q["scope"].split()) == {"openid", "profile", "email", "switchboard:memberships"}
    pending = set_cookie_headers(start)
    assert any("sample_signin_" in c for c in pending)

    done, hops = await b.follow(start)
    # no sign-in page, no consent page: straight back to the app
    assert not any("/login" in urlsplit(h).path and "testserver" in h for h in hops), hops
    assert [urlsplit(h).path for h in hops] == [
        f"/a/{w.agency.slug}/oauth2/authorize",
        "/callback",
        "/",
    ]
    assert done.status_code == 200, done.text[:500]
    assert f"Signed in as Maria Rossi ({email})" in done.text
    assert "Northwind Digital" in done.text and w.agency.slug in done.text
    assert "Bella Vista Bistro SARL" in done.text and f'data-client-id="{shop["id"]}"' in done.text
    assert 'data-role="client_owner"' in done.text
    assert "e-mail verified" in done.text or "e-mail not verified" in done.text
    assert "Session ends" in done.text and "UTC" in done.text
    assert 'action="logout"' in done.text and "Sign out" in done.text
    assert not re.search(r"<script|<link|<img|src=|@import|url\(", done.text), "no assets"

    # the session cookie: signed, HttpOnly, SameSite=Lax, Secure (https), the whole app
    session_cookie = next(c for c in b.http.cookies.jar if c.name.startswith("sample_session_"))
    assert session_cookie.secure and session_cookie.path == "/"
    assert session_cookie.has_nonstandard_attr("HttpOnly")
    assert (session_cookie.get_nonstandard_attr("SameSite") or "").lower() == "lax"

    # the back channel: discovery, JWKS, and the code exchange with client_secret_basic + PKCE
    paths = w.backchannel.paths()
    assert f"/a/{w.agency.slug}/.well-known/openid-configuration" in paths
    assert f"/a/{w.agency.slug}/jwks.json" in paths
    token_req = next(r for r in w.backchannel.seen if r.url.path.endswith("/oauth2/token"))
    assert token_req.headers["authorization"].startswith("Basic ")
    form = parse_qs(token_req.content.decode())
    assert form["grant_type"] == ["authorization_code"] and "code_verifier" in form
    assert "client_secret" not in form

    # the agency's name is known now: the sign-in button uses it
    fresh = w.browser()
    assert "Sign in with Northwind Digital" in (await fresh.get(f"{SAMPLE}/")).text


async def test_a_solution_opens_for_the_businesses_that_have_it(world, make_client):
    """Registered as a solution sold to clients: "Open" in the client portal sends the browser
    to the initiate login URI with `iss`, `login_hint` and `target_link_uri` (the initiate
    login URI itself); people of a business without the solution are turned away."""
    w = await world(solution=True, initiate_login_uri=f"{SAMPLE}/login")
    shop, other = await make_client(w.agency), await make_client(w.agency)
    enabled = await w.api.put(
        f"/api/v1/clients/{shop['id']}/solutions/{w.rp['id']}", headers=w.agency.headers
    )
    assert enabled.status_code == 204, enabled.text

    async def open_from_portal(b: Browser, email: str) -> tuple[httpx.Response, list[str]]:
        params = {"iss": w.issuer, "target_link_uri": f"{SAMPLE}/login", "login_hint": email}
        return await b.follow(await b.get(f"{SAMPLE}/login", params=params))

    b = w.browser()
    email = await w.invite(b, role="client_member", client_id=shop["id"], name="Tom Member")
    done, hops = await open_from_portal(b, email)
    assert hops[-1] == f"{SAMPLE}/"  # not back to /login: no loop
    assert done.status_code == 200 and f"Signed in as Tom Member ({email})" in done.text
    assert shop["legal_name"] in done.text and 'data-role="client_member"' in done.text

    outsider = w.browser()
    email = await w.invite(outsider, role="client_owner", client_id=other["id"], name="Olga")
    refused, _ = await open_from_portal(outsider, email)
    assert refused.status_code == 400 and "access_denied" in refused.text
    assert "does not have this solution" in refused.text
    assert outsider.cookie("sample_session_") is None


async def test_signed_out_person_signs_in_at_the_agency_and_consents(world):
    """A public client (PKCE alone, no secret), not pre-approved: the browser passes by the
    agency's sign-in page and consent screen, then lands in the app."""
    w = await world(first_party=False, public=True)
    b = w.browser()
    start = await b.get(f"{SAMPLE}/login")
    login_page, hops = await b.follow(start)
    assert login_page.status_code == 200 and urlsplit(hops[-1]).path.endswith("/login")
    next_url = re.search(r'name="next" value="([^"]+)"', login_page.text).group(1)
    signed = await b.post(
        f"/a/{w.agency.slug}/login",
        data={
            "email": w.agency.owner_email,
            "password": w.agency.owner_password,
            "next": next_url.replace("&amp;", "&"),
            "csrf_token": csrf_of(login_page.text),
        },
    )
    assert signed.status_code == 303
    consent, _ = await b.follow(signed)
    assert consent.status_code == 200 and "Review Booster" in consent.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
    allowed = await b.post(
        f"/a/{w.agency.slug}/oauth2/consent", data={**fields, "decision": "allow"}
    )
    done, hops = await b.follow(allowed)
    assert done.status_code == 200, done.text[:500]
    assert f"Signed in as Owner ({w.agency.owner_email})" in done.text
    assert 'data-role="agency_owner"' in done.text and "No business memberships" in done.text

    token_req = next(r for r in w.backchannel.seen if r.url.path.endswith("/oauth2/token"))
    assert "authorization" not in token_req.headers
    form = parse_qs(token_req.content.decode())
    assert form["client_id"] == [w.rp["id"]] and "code_verifier" in form


async def test_denied_consent_is_a_clear_page(world):
    w = await world(first_party=False)
    b = w.browser()
    await w.sign_in_at_portal(b)
    consent, _ = await b.follow(await b.get(f"{SAMPLE}/login"))
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text))
    denied = await b.post(f"/a/{w.agency.slug}/oauth2/consent", data={**fields, "decision": "deny"})
    page, _ = await b.follow(denied)
    assert page.status_code == 400 and "did not allow" in page.text
    assert "access_denied" in page.text
    assert b.cookie("sample_session_") is None


async def test_a_rotated_signing_key_is_fetched_once(world):
    from services.oauth2 import service

    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    jwks = f"/a/{w.agency.slug}/jwks.json"
    assert w.backchannel.paths().count(jwks) == 1

    await service.rotate_signing_key_for(w.agency.slug)
    await w.signed_in(b)  # an unknown kid: the app fetches the JWKS again, once
    assert w.backchannel.paths().count(jwks) == 2
    await w.signed_in(b)  # known now: no more fetching
    assert w.backchannel.paths().count(jwks) == 2


async def test_target_link_uri_is_followed_inside_the_app_only(world):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    location = await w.to_callback(b, iss=w.issuer, target_link_uri=f"{SAMPLE}/?tab=businesses")
    landed = await b.get(location)
    assert landed.status_code == 303 and landed.headers["location"] == f"{SAMPLE}/?tab=businesses"

    for foreign in ("https://evil.example/", "https://sample.test.evil.example/", "//evil.example"):
        refused = await b.get(f"{SAMPLE}/login", params={"target_link_uri": foreign})
        assert refused.status_code == 400, foreign
        assert "outside Review Booster" in refused.text
    # the initiate login URI itself is no target (it would loop)
    location = await w.to_callback(b, target_link_uri=f"{SAMPLE}/login")
    assert (await b.get(location)).headers["location"] == f"{SAMPLE}/"


# ---- what is refused -------------------------------------------------------------------------


async def test_state_mismatch_is_refused_and_opens_no_session(world):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    location = await w.to_callback(b)
    q = query_of(location)

    tampered = f"{SAMPLE}/callback?" + urlencode({**q, "state": q["state"][:-2] + "xx"})
    refused = await b.get(tampered)
    assert refused.status_code == 400 and "state mismatch" in refused.text
    assert not any("sample_session_" in c for c in set_cookie_headers(refused))
    assert b.cookie("sample_session_") is None
    assert not any(r.url.path.endswith("/oauth2/token") for r in w.backchannel.seen)
    no_state = await b.get(f"{SAMPLE}/callback?" + urlencode({"code": q["code"]}))
    assert no_state.status_code == 400
    assert "Signed in as" not in (await b.get(f"{SAMPLE}/")).text

    # login CSRF: someone else's (valid) callback link in a browser that started nothing
    victim = w.browser()
    forced = await victim.get(location)
    assert forced.status_code == 400 and victim.cookie("sample_session_") is None

    # the sign-in really in flight in this browser was left alone and still completes
    done, _ = await b.follow(await b.get(location))
    assert done.status_code == 200 and "Signed in as Owner" in done.text
    # and its state is spent: the same answer cannot be replayed
    assert (await b.get(location)).status_code == 400


async def test_third_party_login_from_another_issuer_is_refused(world):
    w = await world()
    b = w.browser()
    for iss in ("https://evil.example/a/x", f"{w.issuer}/", "http://testserver/a/another", ""):
        resp = await b.get(
            f"{SAMPLE}/login", params={"iss": iss, "login_hint": "someone@example.com"}
        )
        assert resp.status_code == 400, iss
        assert "not for this app" in resp.text
        assert b.cookie("sample_signin_") is None
    posted = await b.post(f"{SAMPLE}/login", data={"iss": "https://evil.example"})
    assert posted.status_code == 400
    # the configured issuer is fine, by GET or POST
    assert (await b.get(f"{SAMPLE}/login", params={"iss": w.issuer})).status_code == 303
    assert (await b.post(f"{SAMPLE}/login", data={"iss": w.issuer})).status_code == 303


def _forge_signature(body: dict) -> dict:
    real = body["id_token"]
    header = header_of(real)  # the agency's real kid, an attacker's key
    body["id_token"] = jwt.encode(header, claims_of(real), attacker_key())
    return body


def _forge_unknown_kid(body: dict) -> dict:
    header = {"alg": "RS256", "kid": "attacker-key", "typ": "JWT"}
    body["id_token"] = jwt.encode(header, claims_of(body["id_token"]), attacker_key())
    return body


def _forge_alg_none(body: dict) -> dict:
    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = {"alg": "none", "kid": header_of(body["id_token"])["kid"]}
    body["id_token"] = f"{b64(header)}.{b64(claims_of(body['id_token']))}."
    return body


def _swap_access_token(body: dict) -> dict:
    body["access_token"] = body["access_token"][:-4] + "AAAA"
    return body


def _drop_id_token(body: dict) -> dict:
    body.pop("id_token")
    return body


@pytest.mark.parametrize(
    ("forge", "message"),
    [
        (_forge_signature, "signature does not verify"),
        (_forge_unknown_kid, "key the agency does not publish"),
        (_forge_alg_none, "algorithm"),
        (_swap_access_token, "at_hash"),
        (_drop_id_token, "no ID token"),
    ],
)
async def test_forged_id_tokens_are_refused(world, forge, message):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    w.backchannel.rewrite_token = forge
    location = await w.to_callback(b)
    refused = await b.get(location)
    assert refused.status_code == 400, refused.text[:500]
    assert message in refused.text
    assert b.cookie("sample_session_") is None
    assert "Signed in as" not in (await b.get(f"{SAMPLE}/")).text
    if forge is _forge_unknown_kid:  # fetched again once, then refused
        assert w.backchannel.paths().count(f"/a/{w.agency.slug}/jwks.json") == 2


async def test_an_id_token_issued_to_another_app_is_refused(world, app, client):
    w = await world()
    oidc = OIDC(app, client)
    other = await oidc.register(w.agency, name="Other app", first_party=True)
    foreign = await oidc.tokens(other)  # genuine, signed by the agency, aud = the other app
    await oidc.close()
    assert claims_of(foreign["id_token"])["aud"] == other.id

    def substitute(body: dict) -> dict:
        body["id_token"] = foreign["id_token"]
        return body

    b = w.browser()
    await w.sign_in_at_portal(b)
    w.backchannel.rewrite_token = substitute
    refused = await b.get(await w.to_callback(b))
    assert refused.status_code == 400 and "another application (aud)" in refused.text
    assert b.cookie("sample_session_") is None


async def test_an_id_token_with_another_nonce_is_refused(world):
    """The browser (or someone in it) changes the nonce of the authorization request: the
    agency signs a perfectly valid ID token, for another sign-in than the one the app began."""
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    start = await b.get(f"{SAMPLE}/login")
    params = query_of(start.headers["location"])
    params["nonce"] = "attacker-chosen-nonce"
    at_provider = await b.get(f"/a/{w.agency.slug}/oauth2/authorize", params=params)
    refused = await b.get(at_provider.headers["location"])
    assert refused.status_code == 400 and "(nonce)" in refused.text
    assert b.cookie("sample_session_") is None


async def test_an_error_from_the_agency_and_a_reused_code_are_refused(world):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    location = await w.to_callback(b)
    q = query_of(location)
    err = await b.get(
        f"{SAMPLE}/callback",
        params={"state": q["state"], "error": "server_error", "error_description": "<b>x</b>"},
    )
    assert err.status_code == 400 and "server_error" in err.text
    assert "<b>x</b>" not in err.text and "&lt;b&gt;x&lt;/b&gt;" in err.text

    # a fresh sign-in; then its code replayed by a second sign-in attempt of this browser
    location = await w.to_callback(b)
    done, _ = await b.follow(await b.get(location))
    assert done.status_code == 200
    again = await w.to_callback(b)
    replay = f"{SAMPLE}/callback?" + urlencode(
        {"code": query_of(location)["code"], "state": query_of(again)["state"]}
    )
    refused = await b.get(replay)
    assert refused.status_code == 400 and "invalid_grant" in refused.text


async def test_an_altered_session_cookie_is_not_a_session(world):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    cookie = next(c for c in b.http.cookies.jar if c.name.startswith("sample_session_"))
    body, mac = cookie.value.split(".")
    cookie.value = body[:-3] + ("AAA" if body[-3:] != "AAA" else "BBB") + "." + mac
    page = await b.get(f"{SAMPLE}/")
    assert page.status_code == 200 and "Signed in as" not in page.text
    assert "Sign in with" in page.text


# ---- sign-out --------------------------------------------------------------------------------


async def test_logout_ends_both_sessions_through_the_end_session_endpoint(world):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    id_token = w.backchannel.token_answers[-1]["id_token"]

    confirm = await b.get(f"{SAMPLE}/logout")
    assert confirm.status_code == 200 and 'method="post"' in confirm.text

    bye = await b.post(f"{SAMPLE}/logout", headers={"origin": SAMPLE})
    assert bye.status_code == 303
    location = bye.headers["location"]
    assert location.startswith(f"{w.issuer}/oauth2/logout?")
    q = query_of(location)
    assert q["id_token_hint"] == id_token
    assert q["post_logout_redirect_uri"] == f"{SAMPLE}/"
    assert q["client_id"] == w.rp["id"]
    assert any("sample_session_" in c and "Max-Age=0" in c for c in set_cookie_headers(bye))
    assert b.cookie("sample_session_") is None

    back, hops = await b.follow(bye)
    assert hops[-1] == f"{SAMPLE}/" and back.status_code == 200
    assert "Sign in with" in back.text
    # signed out at the agency too: the next sign-in asks for the password again
    again, hops = await b.follow(await b.get(f"{SAMPLE}/login"))
    assert urlsplit(hops[-1]).path == f"/a/{w.agency.slug}/login"
    assert again.status_code == 200 and 'name="password"' in again.text


async def test_logout_from_another_site_is_refused(world):
    w = await world()
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    refused = await b.post(f"{SAMPLE}/logout", headers={"origin": "https://evil.example"})
    assert refused.status_code == 403 and "Sign out of Review Booster?" in refused.text
    assert not any("sample_session_" in c for c in set_cookie_headers(refused))
    assert "Signed in as" in (await b.get(f"{SAMPLE}/")).text


# ---- units: the claim checks, the cookies, the CLI -------------------------------------------


def _rp() -> RelyingParty:
    return RelyingParty(
        Settings(
            issuer="https://id.example/a/x",
            client_id="oac_me",
            client_secret="s",
            redirect_uri=f"{SAMPLE}/callback",
            post_logout_redirect_uri=f"{SAMPLE}/",
        ),
        None,
    )


def _claims(**over) -> dict:
    import time

    now = int(time.time())
    claims = {
        "iss": "https://id.example/a/x",
        "aud": "oac_me",
        "sub": "usr_1",
        "iat": now,
        "exp": now + 3600,
        "nonce": "n1",
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize(
    ("over", "fault"),
    [
        ({"iss": "https://id.example/a/y"}, "(iss)"),
        ({"iss": None}, "(iss)"),
        ({"aud": "oac_other"}, "(aud)"),
        ({"aud": ["oac_me", "oac_other"]}, "(azp)"),
        ({"aud": ["oac_me"], "azp": "oac_other"}, "(azp)"),
        ({"exp": 1000}, "(exp)"),
        ({"exp": "soon"}, "(exp)"),
        ({"iat": 10**11}, "(iat)"),
        ({"iat": 1000}, "(iat)"),
        ({"iat": None}, "(iat)"),
        ({"nonce": "n2"}, "(nonce)"),
        ({"nonce": None}, "(nonce)"),
        ({"sub": ""}, "(sub)"),
    ],
)
def test_claim_checks(over, fault):
    with pytest.raises(SignInError) as caught:
        _rp()._check_claims(_claims(**over), "n1")
    assert fault in caught.value.message


def test_claim_checks_accept_a_good_token():
    _rp()._check_claims(_claims(), "n1")
    _rp()._check_claims(_claims(aud=["oac_me", "oac_x"], azp="oac_me"), "n1")


def test_at_hash_is_the_left_half_of_sha256():
    # OpenID Connect Core, Appendix A.3 (the example access token and its at_hash)
    assert at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", "RS256") == (
        "77QmUPtjPfzWtF2AnpK9RQ"
    )


def test_signed_cookies():
    signer = Signer(b"k" * 32)
    value = signer.dumps("session", {"a": 1}, 60)
    assert signer.loads("session", value) == {"a": 1}
    assert signer.loads("pending-sign-in", value) is None  # made for another cookie
    assert Signer(b"j" * 32).loads("session", value) is None  # another key
    body, mac = value.split(".")
    assert signer.loads("session", body + "." + mac[:-1] + ("A" if mac[-1] != "A" else "B")) is None
    assert signer.loads("session", signer.dumps("session", {"a": 1}, -1)) is None  # expired
    assert signer.loads("session", "garbage") is None


def test_cli_serves_the_sample_app(monkeypatch):
    from typer.testing import CliRunner

    import services.cli as cli

    served: dict = {}

    def fake_run(web, **kw):
        served["app"], served["kw"] = web, kw

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setenv("SWITCHBOARD_SAMPLE_APP_CLIENT_SECRET", "from-the-environment")
    result = CliRunner().invoke(
        cli.app,
        [
            "sample-app",
            "--issuer",
            "http://127.0.0.1:8000/a/northwind",
            "--client-id",
            "oac_demo",
            "--port",
            "8011",
            "--name",
            "Review Booster",
        ],
    )
    assert result.exit_code == 0, result.output
    assert served["kw"]["host"] == "127.0.0.1" and served["kw"]["port"] == 8011
    sample = served["app"].state.sample
    assert sample.name == "Review Booster"
    assert sample.rp.settings.client_secret == "from-the-environment"
    assert sample.rp.settings.redirect_uri == "http://127.0.0.1:8011/callback"
    assert "http://127.0.0.1:8011/callback" in result.output
    assert "http://127.0.0.1:8011/login" in result.output

    missing = CliRunner().invoke(cli.app, ["sample-app", "--client-id", "x"])
    assert missing.exit_code != 0
