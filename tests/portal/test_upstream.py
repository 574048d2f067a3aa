"""Upstream sign-in with Google and Microsoft, against the local upstream-IdP sandbox
(`tests/upstream_idp.py`), end to end and in-process.

Two ASGI apps share one in-process network: Switchboard at `http://testserver` and the sandbox
at `http://idp-<random>.test` (its discovery documents carry the vendors' real issuers). The
browser is an httpx client over that network that follows nothing by itself; Switchboard's
back-channel calls (discovery, JWKS, token endpoint) reach the sandbox through the transport
`services.identity.upstream_oidc.transport`.
"""

from __future__ import annotations

import re
import secrets
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pyotp
import pytest

from tests.portal.conftest import csrf_of
from tests.portal.test_mfa import _enrol, _next_code
from tests.upstream_idp import DROP, MS_CONSUMERS, Person, UpstreamIdP

# ---- the in-process network, the browser, the sandbox ------------------------------------------


class Network(httpx.AsyncBaseTransport):
    def __init__(self, hosts: dict[str, object]) -> None:
        self.hosts = {h: httpx.ASGITransport(app=a) for h, a in hosts.items()}  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.hosts.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        return await transport.handle_async_request(request)


class Browser:
    def __init__(self, network: Network) -> None:
        self.http = httpx.AsyncClient(
            transport=network, base_url="http://testserver", headers={"accept": "text/html"}
        )

    async def get(self, url: str, **kw) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def submit(self, page_url: str, action: str, data: dict) -> httpx.Response:
        token = csrf_of((await self.get(page_url)).text)
        return await self.http.post(action, data={**data, "csrf_token": token})

    async def sign_in(self, slug: str, email: str, password: str) -> httpx.Response:
        return await self.submit(
            f"/a/{slug}/login", f"/a/{slug}/login", {"email": email, "password": password}
        )

    async def start(self, slug: str, provider: str, next_url: str = "") -> httpx.Response:
        """Press "Continue with ...": Switchboard's redirect to the provider."""
        url = f"/a/{slug}/login/upstream/{provider}"
        resp = await self.get(url + (f"?{urlencode({'next': next_url})}" if next_url else ""))
        assert resp.status_code == 303, (resp.status_code, resp.text[:500])
        return resp

    async def at_provider(self, authorize_url: str) -> httpx.Response:
        """The provider's page: the sandbox approves at once and redirects back."""
        return await self.get(authorize_url)

    async def upstream(self, slug: str, provider: str, next_url: str = "") -> httpx.Response:
        """The whole round trip; returns Switchboard's answer to the callback."""
        started = await self.start(slug, provider, next_url)
        back = await self.at_provider(started.headers["location"])
        assert back.status_code == 302, (back.status_code, back.text[:500])
        return await self.get(back.headers["location"])

    async def signed_in(self, slug: str) -> bool:
        resp = await self.get(f"/a/{slug}/account")
        return resp.status_code == 200

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
def idp(monkeypatch) -> UpstreamIdP:
    from services.identity import upstream_oidc
    from services.settings import get_settings

    sandbox = UpstreamIdP(f"http://idp-{secrets.token_hex(4)}.test")
    settings = get_settings()
    monkeypatch.setattr(settings, "upstream_google_discovery_url", sandbox.google_discovery_url)
    monkeypatch.setattr(settings, "upstream_microsoft_authority", sandbox.microsoft_authority)
    monkeypatch.setattr(upstream_oidc, "transport", httpx.ASGITransport(app=sandbox.app))
    return sandbox


@pytest.fixture
async def browsers(app, idp):
    made: list[Browser] = []
    network = Network({"testserver": app, urlsplit(idp.base).hostname: idp.app})

    def make() -> Browser:
        b = Browser(network)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.aclose()


def carry_state(src: Browser, dst: Browser, path: str) -> None:
    """Copy the browser `src`'s upstream state cookie into `dst`, under `path`."""
    [cookie] = [c for c in src.http.cookies.jar if c.name == "sb_upstream"]
    dst.http.cookies.set("sb_upstream", cookie.value or "", domain=cookie.domain, path=path)


def callback_uri(slug: str, provider: str) -> str:
    return f"http://testserver/a/{slug}/login/upstream/{provider}/callback"


async def configure(client, agency, idp: UpstreamIdP, provider: str, **extra) -> tuple[str, str]:
    """The agency registers an OAuth client at the vendor and saves it through the API."""
    client_id, secret = idp.register(provider, callback_uri(agency.slug, provider))
    body = {"client_id": client_id, "client_secret": secret, **extra}
    resp = await client.put(
        f"/api/v1/agency/sign-in-providers/{provider}", headers=agency.headers, json=body
    )
    assert resp.status_code == 200, resp.text
    return client_id, secret


async def events(client, agency, action: str) -> list[dict]:
    resp = await client.get(
        "/api/v1/audit-events", headers=agency.headers, params={"action": action, "limit": 200}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def user_count(client, agency) -> int:
    resp = await client.get("/api/v1/users", headers=agency.headers, params={"limit": 200})
    return len(resp.json()["items"])


async def linked(agency) -> list:
    from sqlalchemy import select

    from services.identity.models import ExternalIdentity
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        return list((await session.execute(select(ExternalIdentity))).scalars().all())


def ms_issuer(tid: str) -> str:
    return f"https://login.microsoftonline.com/{tid}/v2.0"


# ---- happy paths --------------------------------------------------------------------------------


async def test_google_links_by_verified_email_then_by_subject(client, make_agency, idp, browsers):
    agency = await make_agency(name="Northwind Digital")
    slug = agency.slug
    client_id, _ = await configure(client, agency, idp, "google")
    person = idp.sign_in_as("google", Person(email=agency.owner_email, name="Olivia Owner"))

    b = browsers()
    login = await b.get(f"/a/{slug}/login")
    assert "Continue with Google" in login.text and "Continue with Microsoft" not in login.text

    started = await b.start(slug, "google", next_url=f"/a/{slug}/account")
    cookie = started.headers["set-cookie"]
    assert "sb_upstream=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert f"Path=/a/{slug}/login/upstream/" in cookie
    request = parse_qs(urlsplit(started.headers["location"]).query)
    assert started.headers["location"].startswith(f"{idp.base}/google/o/oauth2/v2/auth?")
    assert request["response_type"] == ["code"] and request["client_id"] == [client_id]
    assert request["scope"] == ["openid email profile"]
    assert request["code_challenge_method"] == ["S256"] and len(request["code_challenge"][0]) == 43
    assert len(request["state"][0]) >= 40 and len(request["nonce"][0]) >= 40
    assert request["redirect_uri"] == [callback_uri(slug, "google")]
    back = await b.at_provider(started.headers["location"])
    done = await b.get(back.headers["location"])
    assert done.status_code == 303, done.text[:800]
    assert done.headers["location"] == f"/a/{slug}/account"  # `next` survived the round trip
    dropped = [c for c in done.headers.get_list("set-cookie") if c.startswith("sb_upstream=")]
    assert dropped and "Max-Age=0" in dropped[0]  # one try per state
    assert await b.signed_in(slug)
    token_request = idp.token_requests[-1]
    assert token_request["client_id"] == client_id and "client_secret" in token_request
    assert len(token_request["code_verifier"]) >= 43

    [link] = await linked(agency)
    assert link.provider == "google" and link.subject == person.sub
    assert link.email == agency.owner_email
    [ev] = await events(client, agency, "auth.upstream_linked")
    assert ev["data"]["provider"] == "google" and ev["target_id"] == agency.owner_user_id
    logins = await events(client, agency, "auth.login")
    assert logins[0]["data"] == {"method": "upstream:google"}

    # Next time the link decides, not the e-mail: the Google account changed its address.
    person.email = "olivia.renamed@gmail.example"
    again = browsers()
    done = await again.upstream(slug, "google")
    assert done.status_code == 303 and await again.signed_in(slug)
    assert len(await linked(agency)) == 1
    assert len(await events(client, agency, "auth.upstream_linked")) == 1


async def test_microsoft_multi_tenant_issuer_template(client, make_agency, idp, browsers):
    agency = await make_agency(name="Contoso Partners")
    await configure(client, agency, idp, "microsoft", tenant="common")
    discovery = await httpx.AsyncClient(transport=httpx.ASGITransport(app=idp.app)).get(
        f"{idp.microsoft_authority}/common/v2.0/.well-known/openid-configuration"
    )
    assert discovery.json()["issuer"] == "https://login.microsoftonline.com/{tenantid}/v2.0"
    person = idp.sign_in_as(
        "microsoft", Person(email=agency.owner_email, name="Olivia Owner", xms_edov=True)
    )
    b = browsers()
    assert "Continue with Microsoft" in (await b.get(f"/a/{agency.slug}/login")).text
    started = await b.start(agency.slug, "microsoft")
    assert started.headers["location"].startswith(
        f"{idp.microsoft_authority}/common/oauth2/v2.0/authorize?"
    )
    back = await b.at_provider(started.headers["location"])
    done = await b.get(back.headers["location"])
    assert done.status_code == 303, done.text[:800]
    assert await b.signed_in(agency.slug)
    [link] = await linked(agency)
    assert link.subject == f"{person.tid}/{person.oid}"
    [login] = await events(client, agency, "auth.login")
    assert login["data"]["method"] == "upstream:microsoft"

    # Another directory's person, same app: its own tid in the template is fine (common) ...
    other = idp.sign_in_as("microsoft", Person(email=None, name="Guest"))
    refused = await browsers().upstream(agency.slug, "microsoft")
    assert refused.status_code == 400  # ... and then refused for want of a verified e-mail
    assert "did not confirm" in refused.text
    # ... but a token whose issuer names another directory than its tid is forged.
    idp.sign_in_as("microsoft", person)
    idp.next_claims(iss=ms_issuer(other.tid))
    forged = await browsers().upstream(agency.slug, "microsoft")
    assert forged.status_code == 400 and "could not be verified" in forged.text
    reasons = [e["data"]["reason"] for e in await events(client, agency, "auth.upstream_failed")]
    assert "ID token issuer does not match its directory" in reasons


async def test_microsoft_single_directory_and_organizations(client, make_agency, idp, browsers):
    agency = await make_agency()
    home = Person(email=agency.owner_email, xms_edov=True)
    await configure(client, agency, idp, "microsoft", tenant=home.tid.upper())
    got = await client.get("/api/v1/agency/sign-in-providers/microsoft", headers=agency.headers)
    assert got.json()["tenant"] == home.tid  # stored lower-cased
    idp.sign_in_as("microsoft", home)
    ok = await browsers().upstream(agency.slug, "microsoft")
    assert ok.status_code == 303, ok.text[:600]
    # A token from another directory (tid and iss consistent) is refused for this directory.
    stranger = Person(email=agency.owner_email, xms_edov=True)
    idp.next_claims(tid=stranger.tid, iss=ms_issuer(stranger.tid))
    refused = await browsers().upstream(agency.slug, "microsoft")
    assert refused.status_code == 400
    reasons = [e["data"]["reason"] for e in await events(client, agency, "auth.upstream_failed")]
    assert "ID token is from another directory (tid)" in reasons

    # organizations: work or school accounts only, never the personal-account directory
    # (the sandbox refuses it at the authorization endpoint, as Microsoft does; Switchboard
    # refuses such a token too).
    await configure(client, agency, idp, "microsoft", tenant="organizations")
    idp.sign_in_as("microsoft", Person(email="someone@outlook.example", tid=MS_CONSUMERS))
    at_provider = await browsers().upstream(agency.slug, "microsoft")
    assert at_provider.status_code == 400 and "did not sign you in" in at_provider.text
    work = idp.sign_in_as("microsoft", Person(email=agency.owner_email, xms_edov=True))
    idp.next_claims(tid=MS_CONSUMERS, iss=ms_issuer(MS_CONSUMERS))
    refused = await browsers().upstream(agency.slug, "microsoft")
    assert refused.status_code == 400
    reasons = [e["data"]["reason"] for e in await events(client, agency, "auth.upstream_failed")]
    assert "personal Microsoft account, but only work or school accounts" in reasons
    assert (await browsers().upstream(agency.slug, "microsoft")).status_code == 303
    assert {x.subject for x in await linked(agency)} == {
        f"{home.tid}/{home.oid}",
        f"{work.tid}/{work.oid}",
    }


# ---- what is refused ----------------------------------------------------------------------------


async def test_state_mismatch_is_refused_and_signs_nobody_in(client, make_agency, idp, browsers):
    agency = await make_agency()
    await configure(client, agency, idp, "google")
    idp.sign_in_as("google", Person(email=agency.owner_email))

    b = browsers()
    started = await b.start(agency.slug, "google")
    back = await b.at_provider(started.headers["location"])
    callback = urlsplit(back.headers["location"])
    params = parse_qs(callback.query)
    tampered = {**{k: v[0] for k, v in params.items()}, "state": secrets.token_urlsafe(32)}
    resp = await b.get(f"{callback.path}?{urlencode(tampered)}")
    assert resp.status_code == 400
    assert "could not be verified" in resp.text and "Nothing was signed in" in resp.text
    assert "sb_session" not in str(resp.headers.get_list("set-cookie"))
    assert not await b.signed_in(agency.slug)
    # the state cookie is spent: the genuine answer does not work afterwards either
    replay = await b.get(back.headers["location"])
    assert replay.status_code == 400 and not await b.signed_in(agency.slug)

    # Login CSRF: an attacker's own genuine callback URL, opened in a victim's browser.
    attacker = browsers()
    attacker_back = await attacker.at_provider(
        (await attacker.start(agency.slug, "google")).headers["location"]
    )
    victim = browsers()
    await victim.get(f"/a/{agency.slug}/login")  # the victim has been on the portal
    hijack = await victim.get(attacker_back.headers["location"])
    assert hijack.status_code == 400 and not await victim.signed_in(agency.slug)
    # a state sealed for one browser does not open with another's CSRF cookie
    carry_state(attacker, victim, f"/a/{agency.slug}/login/upstream/")
    planted = await victim.get(attacker_back.headers["location"])
    assert planted.status_code == 400 and not await victim.signed_in(agency.slug)

    reasons = [e["data"]["reason"] for e in await events(client, agency, "auth.upstream_failed")]
    assert reasons.count("state mismatch") == 1
    assert reasons.count("no valid state (expired, or another browser)") == 3
    assert await linked(agency) == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("nonce", "ID token nonce does not match this sign-in"),
        ("forged", "ID token signature does not verify"),
        ("audience", "ID token was issued to another client (aud)"),
        ("issuer", "ID token issuer is not Google"),
        ("expired", "ID token expired (exp)"),
        ("unverified", "e-mail not verified by the provider"),
        ("no_email", "e-mail not verified by the provider"),
    ],
)
async def test_untrustworthy_id_tokens_are_refused(
    client, make_agency, idp, browsers, case, reason
):
    agency = await make_agency()
    await configure(client, agency, idp, "google")
    idp.sign_in_as("google", Person(email=agency.owner_email))
    match case:
        case "nonce":
            idp.next_claims(nonce=secrets.token_urlsafe(32))
        case "forged":
            idp.forge_next = True
        case "audience":
            idp.next_claims(aud="someone-else.apps.googleusercontent.com", azp=DROP)
        case "issuer":
            idp.next_claims(iss="https://accounts.evil.example")
        case "expired":
            idp.next_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
        case "unverified":
            idp.next_claims(email_verified=False)
        case "no_email":
            idp.next_claims(email=DROP, email_verified=DROP)
    b = browsers()
    resp = await b.upstream(agency.slug, "google")
    assert resp.status_code == 400, resp.text[:600]
    assert not await b.signed_in(agency.slug)
    assert await linked(agency) == []
    [ev] = await events(client, agency, "auth.upstream_failed")
    assert ev["data"]["reason"] == reason
    assert await events(client, agency, "auth.login") == []


async def test_unknown_email_is_refused_and_creates_no_account(client, make_agency, idp, browsers):
    agency = await make_agency(name="Fabrikam Studio")
    await configure(client, agency, idp, "google")
    before = await user_count(client, agency)
    idp.sign_in_as("google", Person(email="stranger@gmail.example"))
    b = browsers()
    resp = await b.upstream(agency.slug, "google")
    assert resp.status_code == 403
    text = re.sub(r"\s+", " ", resp.text)
    assert "There is no account for stranger@gmail.example at Fabrikam Studio" in text
    assert "ask Fabrikam Studio for an invitation" in text
    assert not await b.signed_in(agency.slug)
    assert await user_count(client, agency) == before
    assert await linked(agency) == []
    [ev] = await events(client, agency, "auth.upstream_failed")
    assert ev["data"] == {
        "provider": "google",
        "reason": "no account for this e-mail",
        "email": "stranger@gmail.example",
    }


async def test_another_agencys_link_is_not_usable_here(client, make_agency, idp, browsers):
    a, b = await make_agency(name="Agency A"), await make_agency(name="Agency B")
    await configure(client, a, idp, "google")
    await configure(client, b, idp, "google")
    person = idp.sign_in_as("google", Person(email=a.owner_email))
    assert (await browsers().upstream(a.slug, "google")).status_code == 303
    assert [x.subject for x in await linked(a)] == [person.sub]

    # The same Google account at B: A's link does not exist there, and A's e-mail has no
    # account at B.
    at_b = browsers()
    resp = await at_b.upstream(b.slug, "google")
    assert resp.status_code == 403 and f"no account for {a.owner_email} at Agency B" in resp.text
    assert not await at_b.signed_in(b.slug) and await linked(b) == []

    # A state begun at A's portal does not open at B's callback (agency-bound seal), even
    # when the browser carries it there.
    mover = browsers()
    started = await mover.start(a.slug, "google")
    back = await mover.at_provider(started.headers["location"])
    code_and_state = urlsplit(back.headers["location"]).query
    carry_state(mover, mover, f"/a/{b.slug}/login/upstream/")
    moved = await mover.get(f"/a/{b.slug}/login/upstream/google/callback?{code_and_state}")
    assert moved.status_code == 400 and not await mover.signed_in(b.slug)


async def test_disabled_or_missing_provider_is_404(client, make_agency, idp, browsers):
    agency = await make_agency()
    await configure(client, agency, idp, "google", enabled=False)
    b = browsers()
    login = await b.get(f"/a/{agency.slug}/login")
    assert "Continue with" not in login.text
    for provider in ("google", "microsoft", "github"):
        for path in ("", "/callback?code=x&state=y"):
            resp = await b.get(f"/a/{agency.slug}/login/upstream/{provider}{path}")
            assert resp.status_code == 404, (provider, path)
            assert "Page not found" in resp.text


async def test_person_cancelling_at_the_provider(client, make_agency, idp, browsers):
    agency = await make_agency()
    await configure(client, agency, idp, "google")
    idp.sign_in_as("google", Person(email=agency.owner_email))
    idp.deny_next = "access_denied"
    b = browsers()
    resp = await b.upstream(agency.slug, "google")
    assert resp.status_code == 400 and "was cancelled" in resp.text
    assert not await b.signed_in(agency.slug)
    [ev] = await events(client, agency, "auth.upstream_failed")
    assert ev["data"]["reason"] == "provider error: access_denied"


async def test_second_factor_still_required_after_upstream(client, make_agency, idp, browsers):
    agency = await make_agency()
    await configure(client, agency, idp, "google")
    owner = browsers()
    assert (
        await owner.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    ).status_code == 303
    totp, _ = await _enrol(owner, agency.slug)
    idp.sign_in_as("google", Person(email=agency.owner_email))

    b = browsers()
    done = await b.upstream(agency.slug, "google", next_url=f"/a/{agency.slug}/clients")
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/a/{agency.slug}/login/verify")
    assert not await b.signed_in(agency.slug)  # half-open: Google was the first factor only
    verified = await b.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": _next_code(totp), "next": f"/a/{agency.slug}/clients"},
    )
    assert verified.status_code == 303 and await b.signed_in(agency.slug)
    upstream_logins = [
        e["data"]
        for e in await events(client, agency, "auth.login")
        if (e["data"] or {}).get("method") == "upstream:google"
    ]
    assert upstream_logins == [{"method": "upstream:google", "second_factor": "pending"}]
    assert isinstance(totp, pyotp.TOTP)


async def test_failures_are_throttled_like_passwords(client, make_agency, idp, browsers):
    agency = await make_agency()
    await configure(client, agency, idp, "google")
    b = browsers()
    for _ in range(20):  # ip:<address>: 20 failures in 15 minutes
        await b.start(agency.slug, "google")
        resp = await b.get(f"/a/{agency.slug}/login/upstream/google/callback?code=x&state=forged")
        assert resp.status_code == 400
    idp.sign_in_as("google", Person(email=agency.owner_email))
    locked = await b.upstream(agency.slug, "google")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert not await b.signed_in(agency.slug)


# ---- configuration: API and settings page -------------------------------------------------------


async def test_api_is_per_agency_and_never_returns_the_secret(client, make_agency, idp, capfd):
    a, b = await make_agency(), await make_agency()
    client_id, secret = await configure(client, a, idp, "google")
    url = "/api/v1/agency/sign-in-providers/google"
    mine = await client.get(url, headers=a.headers)
    assert mine.status_code == 200
    body = mine.json()
    assert body["client_id"] == client_id and body["client_secret_set"] is True
    assert body["redirect_uri"] == callback_uri(a.slug, "google") and body["enabled"] is True
    assert secret not in mine.text and "client_secret_sealed" not in mine.text

    # B sees, changes and deletes only its own.
    assert (await client.get(url, headers=b.headers)).status_code == 404
    assert (await client.delete(url, headers=b.headers)).status_code == 404
    other = await client.put(
        url, headers=b.headers, json={"client_id": "b-client", "client_secret": "b-secret-1"}
    )
    assert other.status_code == 200 and other.json()["client_id"] == "b-client"
    assert (await client.delete(url, headers=b.headers)).status_code == 204
    assert (await client.get(url, headers=a.headers)).json()["client_id"] == client_id

    # Update without a secret keeps it; validation.
    kept = await client.put(url, headers=a.headers, json={"client_id": client_id, "enabled": False})
    assert kept.status_code == 200 and kept.json()["enabled"] is False
    bad = [
        ("google", {"client_id": "x", "client_secret": "y", "tenant": "common"}, "tenant"),
        ("microsoft", {"client_id": "x"}, "client_secret"),
        ("microsoft", {"client_id": "x", "client_secret": "y", "tenant": "contoso"}, "tenant"),
    ]
    for provider, payload, field in bad:
        resp = await client.put(
            f"/api/v1/agency/sign-in-providers/{provider}", headers=b.headers, json=payload
        )
        assert resp.status_code == 422, resp.text
        assert field in resp.text
    assert (
        await client.get("/api/v1/agency/sign-in-providers/github", headers=a.headers)
    ).status_code == 404

    # Nothing anywhere shows the secret: answers, audit trail, logs.
    trail = await client.get("/api/v1/audit-events", headers=a.headers, params={"limit": 200})
    assert secret not in trail.text and "client_secret_sealed" not in trail.text
    assert "upstream_provider.created" in {e["action"] for e in trail.json()["items"]}
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err


async def test_api_needs_agency_manage(client, make_agency):
    agency = await make_agency()
    staff = await client.post(
        "/api/v1/api-keys", headers=agency.headers, json={"name": "staff", "role": "agency_staff"}
    )
    headers = {"Authorization": f"Bearer {staff.json()['key']}"}
    for method in ("GET", "PUT", "DELETE"):
        resp = await client.request(
            method,
            "/api/v1/agency/sign-in-providers/google",
            headers=headers,
            json={"client_id": "x", "client_secret": "y"} if method == "PUT" else None,
        )
        assert resp.status_code == 403, (method, resp.text)


async def test_secret_is_sealed_at_rest_and_not_logged_during_sign_in(
    client, make_agency, idp, browsers, capfd
):
    agency = await make_agency()
    _, secret = await configure(client, agency, idp, "google")
    from sqlalchemy import select

    from services.identity.models import UpstreamProvider
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        row = (await session.execute(select(UpstreamProvider))).scalar_one()
        assert row.client_secret_sealed.startswith("v1:") and secret not in row.client_secret_sealed
    idp.sign_in_as("google", Person(email=agency.owner_email))
    b = browsers()
    assert (await b.upstream(agency.slug, "google")).status_code == 303
    assert idp.token_requests[-1]["client_secret"] == secret  # it did reach Google
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err


async def test_settings_page(client, make_agency, idp, browsers, make_person):
    agency = await make_agency()
    slug = agency.slug
    owner = browsers()
    assert (await owner.sign_in(slug, agency.owner_email, agency.owner_password)).status_code == 303
    page = await owner.get(f"/a/{slug}/settings/sign-in")
    assert page.status_code == 200
    assert "Sign in with Google" in page.text and "Sign in with Microsoft" in page.text
    assert callback_uri(slug, "google") in page.text and "xms_edov" in page.text
    assert page.text.count("Not set up") == 2

    client_id, secret = idp.register("google", callback_uri(slug, "google"))
    missing = await owner.submit(
        f"/a/{slug}/settings/sign-in",
        f"/a/{slug}/settings/sign-in/google",
        {"client_id": client_id, "client_secret": "", "enabled": "on"},
    )
    assert missing.status_code == 422 and "Enter the client secret" in missing.text
    saved = await owner.submit(
        f"/a/{slug}/settings/sign-in",
        f"/a/{slug}/settings/sign-in/google",
        {"client_id": client_id, "client_secret": secret, "enabled": "on"},
    )
    assert saved.status_code == 303
    page = await owner.get(f"/a/{slug}/settings/sign-in")
    assert "Saved. The sign-in page shows the change at once." in page.text
    assert client_id in page.text and secret not in page.text
    assert "Saved. Leave empty to keep it" in page.text

    # Saving again without the secret keeps it: the sign-in still works.
    again = await owner.submit(
        f"/a/{slug}/settings/sign-in",
        f"/a/{slug}/settings/sign-in/google",
        {"client_id": client_id, "client_secret": "", "enabled": "on"},
    )
    assert again.status_code == 303
    idp.sign_in_as("google", Person(email=agency.owner_email))
    assert (await browsers().upstream(slug, "google")).status_code == 303

    bad_tenant = await owner.submit(
        f"/a/{slug}/settings/sign-in",
        f"/a/{slug}/settings/sign-in/microsoft",
        {"client_id": "app", "client_secret": "s", "tenant": "contoso", "enabled": "on"},
    )
    assert bad_tenant.status_code == 422 and "directory (tenant) id" in bad_tenant.text

    removed = await owner.submit(
        f"/a/{slug}/settings/sign-in", f"/a/{slug}/settings/sign-in/google/remove", {}
    )
    assert removed.status_code == 303
    assert (await owner.get(f"/a/{slug}/settings/sign-in")).text.count("Not set up") == 2
    assert "Continue with Google" not in (await browsers().get(f"/a/{slug}/login")).text

    # Only agency managers.
    staff, _ = await make_person(agency, "agency_staff")
    assert (await staff.get(f"/a/{slug}/settings/sign-in")).status_code == 403
    nothing = await client.get("/api/v1/agency/sign-in-providers/microsoft", headers=agency.headers)
    assert nothing.status_code == 404
