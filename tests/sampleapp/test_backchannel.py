"""Back-channel logout, end to end with the sample solution: a person signed in to the sample
app through the portal signs out of the portal, the agency POSTs a logout token to the app's
back-channel logout URI over real HTTP (the sample app served by uvicorn on 127.0.0.1; the
delivery job runs in-process, or in the real Celery worker in worker mode), and the app's
session is gone. Logout tokens that do not hold (§2.6) are refused with a 400 and end nothing.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.helpers import wait_for_jobs
from tests.live import served
from tests.oauth2.conftest import csrf_of
from tests.sampleapp.test_sampleapp import SAMPLE, Browser, World, claims_of

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
async def bc_world(app, client, make_agency):
    """A World whose sample app also listens on a real port, registered as the RP's
    back-channel logout URI."""
    agency = await make_agency(name="Northwind Digital")
    body = {
        "name": "Review Booster",
        "redirect_uris": [f"{SAMPLE}/callback"],
        "post_logout_redirect_uris": [f"{SAMPLE}/"],
        "first_party": True,
    }
    resp = await client.post("/api/v1/oauth-clients", headers=agency.headers, json=body)
    assert resp.status_code == 201, resp.text
    w = World(app, client, agency, resp.json())
    with served(w.sample) as url:
        patched = await client.patch(
            f"/api/v1/oauth-clients/{w.rp['id']}",
            headers=agency.headers,
            json={
                "backchannel_logout_uri": f"{url}/backchannel-logout",
                "backchannel_logout_session_required": True,
            },
        )
        assert patched.status_code == 200, patched.text
        yield w
        for b in w.browsers:
            await b.http.aclose()


async def portal_logout(w: World, b: Browser) -> None:
    page = await b.get(f"/a/{w.agency.slug}/account")
    out = await b.post(f"/a/{w.agency.slug}/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303


async def signed_in_to_sample(b: Browser) -> bool:
    page = await b.get(f"{SAMPLE}/")
    assert page.status_code == 200
    return "Signed in as" in page.text


async def test_signing_out_of_the_portal_ends_the_sample_app_session(bc_world):
    w = bc_world
    b, other = w.browser(), w.browser()
    for browser in (b, other):  # the same person in two browsers: two portal sessions
        await w.sign_in_at_portal(browser)
        await w.signed_in(browser)
    assert await signed_in_to_sample(b) and await signed_in_to_sample(other)
    sid = claims_of(w.backchannel.token_answers[0]["id_token"])["sid"]

    await portal_logout(w, b)
    app = w.sample.state.sample
    await wait_for_jobs(lambda: sid in app.logouts._sids, timeout=30)

    home = await b.get(f"{SAMPLE}/")
    assert home.status_code == 200 and "Sign in with" in home.text
    assert "Signed in as" not in home.text
    assert any(
        "sample_session_" in c and "Max-Age=0" in c for c in home.headers.get_list("set-cookie")
    )
    # the other browser's portal session did not end: neither did its session in the app
    assert await signed_in_to_sample(other)
    # the app verified the token with the agency's keys (the JWKS over its back channel)
    assert f"/a/{w.agency.slug}/jwks.json" in w.backchannel.paths()


# ---- invalid logout tokens -------------------------------------------------------------------


async def agency_key(agency_id: uuid.UUID):
    from services.kit.db import unit_of_work
    from services.oauth2 import keys
    from tenants.context import TenantContext
    from tenants.principal import Principal
    from tenants.scoping import set_tenant

    async with unit_of_work() as s:
        await set_tenant(
            s, TenantContext.for_agency(agency_id), Principal.system(agency_id, label="test key")
        )
        return await s.run_sync(lambda sync: keys.signing_key(sync, agency_id, "RS256"))


def good_claims(w: World, sid: str, sub: str) -> dict:
    now = int(time.time())
    return {
        "iss": w.issuer,
        "aud": w.rp["id"],
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": sub,
        "sid": sid,
        "events": {LOGOUT_EVENT: {}},
    }


ATTACKER = RSAKey.generate_key(2048)


def b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _without(claims: dict, *names: str) -> dict:
    return {k: v for k, v in claims.items() if k not in names}


# (name, how the header changes, how the claims change, which key signs: agency | attacker)
FORGERIES = [
    ("typ missing", lambda h: _without(h, "typ"), None, "agency"),
    ("typ of an ID token", lambda h: {**h, "typ": "JWT"}, None, "agency"),
    ("another issuer", None, lambda c: {**c, "iss": "http://testserver/a/other"}, "agency"),
    ("another audience", None, lambda c: {**c, "aud": "oac_someone_else"}, "agency"),
    ("expired", None, lambda c: {**c, "iat": c["iat"] - 7200, "exp": c["iat"] - 3600}, "agency"),
    ("issued in the future", None, lambda c: {**c, "iat": c["iat"] + 3600}, "agency"),
    ("no events", None, lambda c: _without(c, "events"), "agency"),
    ("another event", None, lambda c: {**c, "events": {"urn:other": {}}}, "agency"),
    ("event not an object", None, lambda c: {**c, "events": {LOGOUT_EVENT: "yes"}}, "agency"),
    ("a nonce", None, lambda c: {**c, "nonce": "n-1"}, "agency"),
    ("neither sub nor sid", None, lambda c: _without(c, "sub", "sid"), "agency"),
    ("no jti", None, lambda c: _without(c, "jti"), "agency"),
    ("signed by someone else", None, None, "attacker"),
    ("someone else, the agency's kid", None, None, "attacker-kid"),
]


@pytest.mark.parametrize(("name", "header_fn", "claims_fn", "signer"), FORGERIES)
async def test_invalid_logout_tokens_are_refused(bc_world, name, header_fn, claims_fn, signer):
    w = bc_world
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    id_claims = claims_of(w.backchannel.token_answers[-1]["id_token"])
    key = await agency_key(w.agency.id)
    header = {"alg": "RS256", "kid": str(key.kid), "typ": "logout+jwt"}
    claims = good_claims(w, id_claims["sid"], id_claims["sub"])
    if header_fn:
        header = header_fn(header)
    if claims_fn:
        claims = claims_fn(claims)
    signing = key
    if signer == "attacker":
        header["kid"] = "attacker-key"
        signing = ATTACKER
    elif signer == "attacker-kid":
        signing = ATTACKER
    raw = jwt.encode(header, claims, signing, algorithms=["RS256"])

    refused = await b.post(f"{SAMPLE}/backchannel-logout", data={"logout_token": raw})
    assert refused.status_code == 400, (name, refused.text)
    assert refused.json()["error"] == "invalid_request"
    assert refused.headers["cache-control"] == "no-store"
    assert await signed_in_to_sample(b), name  # nothing ended


async def test_a_valid_token_works_once_and_malformed_requests_are_refused(bc_world):
    w = bc_world
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    id_token = w.backchannel.token_answers[-1]["id_token"]
    id_claims = claims_of(id_token)
    url = f"{SAMPLE}/backchannel-logout"

    # not a form, no token, two tokens, an ID token, alg none
    assert (await b.post(url, json={"logout_token": "x"})).status_code == 400
    assert (await b.post(url, data={})).status_code == 400
    assert (await b.post(url, data={"logout_token": ["a.b.c", "d.e.f"]})).status_code == 400
    assert (await b.post(url, data={"logout_token": id_token})).status_code == 400
    unsigned = ".".join(
        [
            b64({"alg": "none", "typ": "logout+jwt"}),
            b64(good_claims(w, id_claims["sid"], id_claims["sub"])),
            "",
        ]
    )
    assert (await b.post(url, data={"logout_token": unsigned})).status_code == 400
    assert await signed_in_to_sample(b)

    key = await agency_key(w.agency.id)
    header = {"alg": "RS256", "kid": str(key.kid), "typ": "logout+jwt"}
    raw = jwt.encode(header, good_claims(w, id_claims["sid"], id_claims["sub"]), key)
    ok = await b.post(url, data={"logout_token": raw})
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    assert not await signed_in_to_sample(b)
    replay = await b.post(url, data={"logout_token": raw})
    assert replay.status_code == 400 and "jti" in replay.json()["error_description"]


async def test_a_sub_only_token_ends_every_earlier_session_of_that_person(bc_world):
    w = bc_world
    b = w.browser()
    await w.sign_in_at_portal(b)
    await w.signed_in(b)
    id_claims = claims_of(w.backchannel.token_answers[-1]["id_token"])
    key = await agency_key(w.agency.id)
    claims = _without(good_claims(w, id_claims["sid"], id_claims["sub"]), "sid")
    raw = jwt.encode({"alg": "RS256", "kid": str(key.kid), "typ": "logout+jwt"}, claims, key)
    ok = await b.post(f"{SAMPLE}/backchannel-logout", data={"logout_token": raw})
    assert ok.status_code == 200
    assert not await signed_in_to_sample(b)
