"""OpenID Connect Back-Channel Logout 1.0, the provider's side: relying parties register a
`backchannel_logout_uri`; when a portal session ends (sign-out, sign out everywhere, a person
disabled through the API or SCIM, a password reset), every app that session signed in to is
sent a signed Logout Token over real HTTP (a receiver served by uvicorn on 127.0.0.1; in
worker mode the real Celery worker sends it), the session's tokens are revoked, and the
outcome is audited. Registration refuses URLs the server may not be made to fetch.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.helpers import wait_for_jobs
from tests.live import served
from tests.oauth2.conftest import csrf_of
from tests.scim.conftest import issue_token

EVENT = "http://schemas.openid.net/event/backchannel-logout"
PASSWORD = "bc-pass-" + secrets.token_hex(6)


# ---- a relying party's back-channel logout URI, over real HTTP ------------------------------


class Receiver:
    """Records every POST to /bc/{name}; answers with the statuses scripted for that name
    (then 200)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: dict[str, list[dict]] = {}
        self.script: dict[str, list[int]] = {}
        self.url = ""
        self.app = Starlette(routes=[Route("/bc/{name}", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = (await request.body()).decode()
        with self.lock:
            self.got.setdefault(name, []).append(
                {"content_type": request.headers.get("content-type"), "form": parse_qs(body)}
            )
            statuses = self.script.get(name) or []
            status = statuses.pop(0) if statuses else 200
        return Response(status_code=status)

    def uri(self, name: str) -> str:
        return f"{self.url}/bc/{name}"

    def posts(self, name: str) -> list[dict]:
        with self.lock:
            return list(self.got.get(name, []))


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    with served(r.app) as url:
        r.url = url
        yield r


def new_name() -> str:
    return "rp-" + secrets.token_hex(4)


async def register(oidc, agency, receiver: Receiver | None, **fields):
    name = new_name()
    if receiver is not None:
        fields.setdefault("backchannel_logout_uri", receiver.uri(name))
    rp = await oidc.register(agency, **fields)
    rp.extra["name"] = name
    return rp


async def person(client, oidc, agency, role: str = "agency_staff") -> tuple[httpx.AsyncClient, str]:
    """Someone invited to the agency who set a password (signed in at the portal)."""
    email = f"{role}-{secrets.token_hex(3)}@people.example"
    resp = await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={"email": email, "role": role, "name": "Pat Doe"},
    )
    assert resp.status_code == 201, resp.text
    path = httpx.URL(resp.json()["url"]).path
    b = oidc.browser()
    page = await b.get(path)
    form = {"name": "Pat Doe", "password": PASSWORD, "password_confirm": PASSWORD}
    accepted = await b.post(path, data={**form, "csrf_token": csrf_of(page.text)})
    assert accepted.status_code == 303, accepted.text[:300]
    return b, email


async def portal_logout(b: httpx.AsyncClient, agency) -> None:
    page = await b.get(f"/a/{agency.slug}/account")
    assert page.status_code == 200, page.text[:300]
    out = await b.post(f"/a/{agency.slug}/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303


async def wait_posts(receiver: Receiver, name: str, n: int = 1) -> list[dict]:
    await wait_for_jobs(lambda: len(receiver.posts(name)) >= n, timeout=30)
    return receiver.posts(name)


async def verified(client, agency, raw: str):
    jwks = (await client.get(f"/a/{agency.slug}/jwks.json")).json()
    return jwt.decode(raw, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])


def row_id(rp) -> str:
    """The audit trail names a relying party by its row id."""
    from services.kit import ids

    return str(ids.decode("oac", rp.id))


def claims_of(raw: str) -> dict:
    import base64
    import json

    seg = raw.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


async def audit(client, agency, action: str) -> list[dict]:
    resp = await client.get(
        "/api/v1/audit-events", headers=agency.headers, params={"action": action}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def wait_audit(client, agency, action: str, n: int = 1) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        events = await audit(client, agency, action)
        if len(events) >= n or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.2)


# ---- metadata and registration ----------------------------------------------------------------


async def test_discovery_advertises_back_channel_logout(client, make_agency):
    agency = await make_agency()
    doc = (await client.get(f"/a/{agency.slug}/.well-known/openid-configuration")).json()
    assert doc["backchannel_logout_supported"] is True
    assert doc["backchannel_logout_session_supported"] is True
    assert "sid" in doc["claims_supported"]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://rp.example/bc", "must use https"),
        ("https://rp.example/bc#frag", "fragment"),
        ("https://user:pw@rp.example/bc", "user name"),
        ("/bc", "absolute"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[fe80::1]/bc", "private"),
        ("https://224.0.0.1/bc", "private"),
        ("https://rp.example/b c", "spaces"),
    ],
)
async def test_registration_refuses_urls_we_may_not_fetch(client, make_agency, uri, reason):
    agency = await make_agency()
    body = {"name": "RP", "redirect_uris": ["https://rp.example/cb"], "backchannel_logout_uri": uri}
    resp = await client.post("/api/v1/oauth-clients", headers=agency.headers, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    errors = resp.json()["errors"]
    assert [e["field"] for e in errors] == ["backchannel_logout_uri"], errors
    assert errors[0]["type"] == "value_error" and reason in errors[0]["message"], errors


async def test_registration_and_update_keep_the_metadata(client, make_agency):
    agency = await make_agency()
    body = {
        "name": "RP",
        "redirect_uris": ["https://rp.example/cb"],
        "backchannel_logout_uri": "https://rp.example/bc",
        "backchannel_logout_session_required": True,
    }
    made = await client.post("/api/v1/oauth-clients", headers=agency.headers, json=body)
    assert made.status_code == 201, made.text
    assert made.json()["backchannel_logout_uri"] == "https://rp.example/bc"
    assert made.json()["backchannel_logout_session_required"] is True
    url = f"/api/v1/oauth-clients/{made.json()['id']}"
    bad = await client.patch(
        url, headers=agency.headers, json={"backchannel_logout_uri": "http://x.example/"}
    )
    assert bad.status_code == 422
    null = await client.patch(
        url, headers=agency.headers, json={"backchannel_logout_session_required": None}
    )
    assert null.status_code == 422 and "backchannel_logout_session_required" in null.text
    cleared = await client.patch(url, headers=agency.headers, json={"backchannel_logout_uri": None})
    assert cleared.status_code == 200 and cleared.json()["backchannel_logout_uri"] is None


async def test_apps_console_uses_the_same_rule(client, make_agency, oidc):
    agency = await make_agency()
    b = await oidc.signed_in_browser(agency)
    page = await b.get(f"/a/{agency.slug}/settings/apps/new")
    assert page.status_code == 200 and 'name="backchannel_logout_uri"' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "name": "Console app",
        "type": "confidential",
        "redirect_uris": "https://rp.example/cb",
        "scopes": "openid",
        "backchannel_logout_uri": "https://169.254.169.254/bc",
    }
    refused = await b.post(f"/a/{agency.slug}/settings/apps", data=form)
    assert refused.status_code == 422 and "private" in refused.text
    form["backchannel_logout_uri"] = "https://rp.example/bc"
    form["backchannel_logout_session_required"] = "on"
    made = await b.post(f"/a/{agency.slug}/settings/apps", data=form)
    assert made.status_code in (200, 303), made.text[:500]
    apps = (await client.get("/api/v1/oauth-clients", headers=agency.headers)).json()
    app = next(a for a in apps if a["name"] == "Console app")
    assert app["backchannel_logout_uri"] == "https://rp.example/bc"
    assert app["backchannel_logout_session_required"] is True


def test_in_production_this_server_and_private_networks_are_refused(monkeypatch):
    from services.kit import outbound
    from services.settings import get_settings

    settings = get_settings()
    for uri in ("http://127.0.0.1:9000/bc", "https://10.1.2.3/bc", "https://[::1]/bc"):
        assert outbound.check_url(uri) == uri  # development and tests: allowed
    monkeypatch.setattr(settings, "env", "production")
    for uri in (
        "http://127.0.0.1:9000/bc",
        "https://localhost/bc",
        "https://10.1.2.3/bc",
        "https://192.168.0.10/bc",
        "https://[::1]/bc",
        "https://[::ffff:10.0.0.1]/bc",
    ):
        with pytest.raises(outbound.Refused):
            outbound.check_url(uri)
    assert outbound.check_url("https://rp.example/bc") == "https://rp.example/bc"
    monkeypatch.setattr(settings, "outbound_allow_private", True)
    assert outbound.check_url("https://10.1.2.3/bc") == "https://10.1.2.3/bc"
    with pytest.raises(outbound.Refused):  # cloud metadata: never
        outbound.check_url("https://169.254.169.254/bc")


async def test_a_name_resolving_to_a_private_address_is_not_called(monkeypatch, receiver):
    """The fetch-time half of the rule: the name is resolved and every address checked (a
    public-looking name pointing at this server is refused in production)."""
    from services.kit import outbound
    from services.settings import get_settings

    port = receiver.url.rsplit(":", 1)[1]
    monkeypatch.setattr(get_settings(), "env", "production")

    async def resolves_home(host, port, **kw):
        return [(2, 1, 6, "", ("127.0.0.1", int(port)))]

    monkeypatch.setattr(outbound.anyio, "getaddrinfo", resolves_home)
    name = new_name()
    with pytest.raises(outbound.Refused):
        await outbound.post_form(
            f"https://rp.example:{port}/bc/{name}", {"logout_token": "x"}, timeout_seconds=2
        )
    assert receiver.posts(name) == []


# ---- sid ----------------------------------------------------------------------------------------


async def test_id_tokens_carry_a_stable_public_sid(client, make_agency, oidc):
    agency = await make_agency()
    rp = await register(oidc, agency, None, first_party=True)
    other = await register(oidc, agency, None, first_party=True)
    b = await oidc.signed_in_browser(agency)
    first = await oidc.tokens(rp, b)
    second = await oidc.tokens(other, b)
    sid = claims_of(first["id_token"])["sid"]
    assert sid == claims_of(second["id_token"])["sid"]  # one portal session, one sid
    assert re.fullmatch(r"[0-9a-f]{32}", sid)
    cookie = next(c.value for c in b.cookies.jar if c.name.startswith("sb_session"))
    assert sid not in cookie and cookie not in sid
    refreshed = await oidc.refresh(rp, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["id_token"])["sid"] == sid
    elsewhere = await oidc.tokens(rp, await oidc.signed_in_browser(agency))
    assert claims_of(elsewhere["id_token"])["sid"] != sid  # another session, another sid


# ---- delivery ------------------------------------------------------------------------------------


async def test_portal_sign_out_sends_a_logout_token_and_revokes_the_session(
    client, make_agency, oidc, receiver
):
    agency = await make_agency()
    rp = await register(oidc, agency, receiver, first_party=True)
    quiet = await register(oidc, agency, None, first_party=True)  # no back-channel URI
    b = await oidc.signed_in_browser(agency)
    tokens = await oidc.tokens(rp, b)
    quiet_tokens = await oidc.tokens(quiet, b)
    id_claims = claims_of(tokens["id_token"])

    await portal_logout(b, agency)
    posts = await wait_posts(receiver, rp.extra["name"])
    assert len(posts) == 1
    post = posts[0]
    assert post["content_type"] == "application/x-www-form-urlencoded"
    assert list(post["form"]) == ["logout_token"] and len(post["form"]["logout_token"]) == 1
    raw = post["form"]["logout_token"][0]
    token = await verified(client, agency, raw)
    assert token.header["typ"] == "logout+jwt" and token.header["kid"]
    claims = token.claims
    assert claims["iss"] == f"http://testserver/a/{agency.slug}"
    assert claims["aud"] == rp.id
    assert claims["sub"] == id_claims["sub"] and claims["sid"] == id_claims["sid"]
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims and len(claims["jti"]) >= 16
    assert 0 < claims["exp"] - claims["iat"] <= 120 and abs(claims["iat"] - time.time()) < 60

    # the session's tokens are revoked, with or without a back-channel URI
    for app, issued in ((rp, tokens), (quiet, quiet_tokens)):
        refused = await oidc.refresh(app, issued["refresh_token"])
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        assert (await oidc.userinfo(agency, issued["access_token"])).status_code == 401

    events = await wait_audit(client, agency, "oauth2.backchannel_logout.delivered")
    assert len(events) == 1
    assert events[0]["target_id"] == row_id(rp) and events[0]["data"]["status"] == 200
    assert raw not in str(events)  # the token itself is never kept


async def test_an_offline_access_grant_outlives_the_session(client, make_agency, oidc, receiver):
    agency = await make_agency()
    scopes = ["openid", "profile", "email", "offline_access"]
    rp = await register(oidc, agency, receiver, first_party=True, allowed_scopes=scopes)
    b = await oidc.signed_in_browser(agency)
    tokens = await oidc.tokens(rp, b, scope="openid offline_access")
    await portal_logout(b, agency)
    await wait_posts(receiver, rp.extra["name"])
    assert (await oidc.refresh(rp, tokens["refresh_token"])).status_code == 200


async def test_every_way_a_session_is_revoked_tells_the_apps(client, make_agency, oidc, receiver):
    """Sign out everywhere, a person disabled through the API and through SCIM: all end the
    sessions through identity.end_sessions, and each app signed in is told."""
    agency = await make_agency()
    rp = await register(oidc, agency, receiver, first_party=True)
    name = rp.extra["name"]

    # sign out everywhere: both sessions of the person end, each app session is told
    b1, email = await person(client, oidc, agency)
    b2 = await oidc.signed_in_browser(agency, email=email, password=PASSWORD)
    t1, t2 = await oidc.tokens(rp, b1), await oidc.tokens(rp, b2)
    page = await b1.get(f"/a/{agency.slug}/account")
    out = await b1.post(
        f"/a/{agency.slug}/account/sessions/revoke", data={"csrf_token": csrf_of(page.text)}
    )
    assert out.status_code == 303
    posts = await wait_posts(receiver, name, 2)
    sids = {claims_of(p["form"]["logout_token"][0])["sid"] for p in posts}
    assert sids == {claims_of(t1["id_token"])["sid"], claims_of(t2["id_token"])["sid"]}

    # disabled by an admin through the API
    b3, _ = await person(client, oidc, agency)
    t3 = await oidc.tokens(rp, b3)
    user_id = claims_of(t3["id_token"])["sub"]
    resp = await client.patch(
        f"/api/v1/users/{user_id}", headers=agency.headers, json={"status": "disabled"}
    )
    assert resp.status_code == 200, resp.text
    posts = await wait_posts(receiver, name, 3)
    assert claims_of(posts[2]["form"]["logout_token"][0])["sub"] == user_id

    # deactivated by the directory (SCIM)
    scim_token = (await issue_token(client, agency))["token"]
    scim_base, scim_headers = f"/a/{agency.slug}/scim/v2", {"Authorization": f"Bearer {scim_token}"}
    b4, email4 = await person(client, oidc, agency)
    t4 = await oidc.tokens(rp, b4)
    found = await client.get(
        f"{scim_base}/Users", headers=scim_headers, params={"filter": f'userName eq "{email4}"'}
    )
    assert found.status_code == 200, found.text
    scim_id = found.json()["Resources"][0]["id"]
    patched = await client.patch(
        f"{scim_base}/Users/{scim_id}",
        headers=scim_headers,
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        },
    )
    assert patched.status_code == 200, patched.text
    posts = await wait_posts(receiver, name, 4)
    assert claims_of(posts[3]["form"]["logout_token"][0])["sid"] == claims_of(t4["id_token"])["sid"]


async def test_password_reset_tells_the_apps(client, make_agency, oidc, receiver, mailbox):
    agency = await make_agency()
    rp = await register(oidc, agency, receiver, first_party=True)
    b, email = await person(client, oidc, agency)
    tokens = await oidc.tokens(rp, b)
    other = oidc.browser()
    page = await other.get(f"/a/{agency.slug}/forgot")
    sent = await other.post(
        f"/a/{agency.slug}/forgot", data={"email": email, "csrf_token": csrf_of(page.text)}
    )
    assert sent.status_code in (200, 303), sent.text[:300]

    def reset_mail() -> list[dict]:  # (the invitation went to the same address)
        return [m for m in mailbox.to(email) if "/reset/" in m["body"]]

    await wait_for_jobs(lambda: bool(reset_mail()))
    link = re.search(r"/a/[^/]+/reset/[A-Za-z0-9]+", reset_mail()[-1]["body"]).group(0)
    form_page = await other.get(link)
    new = "new-pass-" + secrets.token_hex(6)
    done = await other.post(
        link,
        data={"password": new, "password_confirm": new, "csrf_token": csrf_of(form_page.text)},
    )
    assert done.status_code == 303, done.text[:300]
    posts = await wait_posts(receiver, rp.extra["name"])
    assert (
        claims_of(posts[0]["form"]["logout_token"][0])["sid"]
        == claims_of(tokens["id_token"])["sid"]
    )


async def test_5xx_is_retried_and_400_is_final(client, make_agency, oidc, receiver):
    agency = await make_agency()
    flaky = await register(oidc, agency, receiver, first_party=True)
    refusing = await register(oidc, agency, receiver, first_party=True)
    receiver.script[flaky.extra["name"]] = [503, 500]
    receiver.script[refusing.extra["name"]] = [400]
    b = await oidc.signed_in_browser(agency)
    await oidc.tokens(flaky, b)
    await oidc.tokens(refusing, b)
    await portal_logout(b, agency)

    posts = await wait_posts(receiver, flaky.extra["name"], 3)
    jtis = {claims_of(p["form"]["logout_token"][0])["jti"] for p in posts}
    assert len(posts) == 3 and len(jtis) == 3  # a fresh token for every attempt
    delivered = await wait_audit(client, agency, "oauth2.backchannel_logout.delivered")
    assert [e["data"]["attempts"] for e in delivered] == [3]

    failed = await wait_audit(client, agency, "oauth2.backchannel_logout.failed")
    assert len(failed) == 1 and failed[0]["target_id"] == row_id(refusing)
    assert failed[0]["data"]["status"] == 400 and failed[0]["data"]["attempts"] == 1
    assert len(receiver.posts(refusing.extra["name"])) == 1  # not sent again


async def test_an_unreachable_app_is_tried_three_times_then_audited(client, make_agency, oidc):
    from tests.live import free_port

    agency = await make_agency()
    rp = await oidc.register(
        agency, first_party=True, backchannel_logout_uri=f"http://127.0.0.1:{free_port()}/bc"
    )
    b = await oidc.signed_in_browser(agency)
    await oidc.tokens(rp, b)
    await portal_logout(b, agency)
    failed = await wait_audit(client, agency, "oauth2.backchannel_logout.failed")
    assert len(failed) == 1, failed
    assert failed[0]["data"]["attempts"] == 3 and failed[0]["data"]["error"].startswith("network")


# ---- tenancy ------------------------------------------------------------------------------------


async def test_an_app_of_another_agency_never_hears_of_this_sign_out(
    client, make_agency, oidc, receiver
):
    a, b_agency = await make_agency(), await make_agency()
    rp_a = await register(oidc, a, receiver, first_party=True)
    # agency B registers the very same logout URI as A's app, and its own
    rp_b_same = await oidc.register(
        b_agency, first_party=True, backchannel_logout_uri=receiver.uri(rp_a.extra["name"])
    )
    rp_b = await register(oidc, b_agency, receiver, first_party=True)
    browser_a = await oidc.signed_in_browser(a)
    browser_b = await oidc.signed_in_browser(b_agency)
    tokens_a = await oidc.tokens(rp_a, browser_a)
    tokens_b = await oidc.tokens(rp_b, browser_b)
    await oidc.tokens(rp_b_same, browser_b)

    await portal_logout(browser_a, a)
    posts = await wait_posts(receiver, rp_a.extra["name"])
    assert len(await wait_audit(client, a, "oauth2.backchannel_logout.delivered")) == 1
    assert len(receiver.posts(rp_a.extra["name"])) == 1
    only = claims_of(posts[0]["form"]["logout_token"][0])
    assert only["aud"] == rp_a.id and only["iss"].endswith(f"/a/{a.slug}")
    assert only["sid"] == claims_of(tokens_a["id_token"])["sid"]
    assert receiver.posts(rp_b.extra["name"]) == []
    assert (await oidc.refresh(rp_b, tokens_b["refresh_token"])).status_code == 200
    assert await audit(client, b_agency, "oauth2.backchannel_logout.delivered") == []
    # B's people are still signed in at B's portal
    assert (await browser_b.get(f"/a/{b_agency.slug}/account")).status_code == 200
