"""Authorization code + PKCE: the happy path, its claims, and every attack on the code."""

from __future__ import annotations

from datetime import timedelta

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from services.kit.types import utcnow
from services.oauth2 import server as provider
from tests.helpers import grant_as_owner
from tests.oauth2.conftest import REDIRECT, csrf_of, pkce, query_of, resumed


async def _keyset(oidc, agency) -> KeySet:
    resp = await oidc.api.get(f"/a/{agency.slug}/jwks.json")
    return KeySet.import_key_set(resp.json())


async def test_code_flow_issues_signed_tokens_with_the_promised_claims(
    oidc, make_agency, make_client, client
):
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Bakery SARL", display_name="Bakery")
    # (an admin key may not give the owner a role: the owner's own act)
    await grant_as_owner(agency, agency.owner_user_id, "client_owner", shop["id"])
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    code, params = await oidc.code(b, rp)
    resp = await oidc.exchange(rp, code)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    tokens = resp.json()
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= tokens.keys()

    issuer = f"http://testserver/a/{agency.slug}"
    id_token = jwt.decode(tokens["id_token"], await _keyset(oidc, agency), algorithms=["RS256"])
    claims = id_token.claims
    assert id_token.header["kid"]
    assert claims["iss"] == issuer and claims["aud"] == rp.id
    assert claims["sub"] == agency.owner_user_id
    assert claims["nonce"] == params["nonce"]
    assert claims["email"] == agency.owner_email and claims["email_verified"] is False
    assert claims["name"] == "Owner"
    assert claims["agency"]["slug"] == agency.slug and claims["agency"]["id"] == agency.public_id
    assert claims["roles"] == ["agency_owner", "client_owner"]
    assert {"role": "client_owner", "client_id": shop["id"], "client_name": "Bakery"} in claims[
        "memberships"
    ]
    assert abs(claims["auth_time"] - utcnow().timestamp()) < 60
    assert claims["at_hash"]

    access = jwt.decode(tokens["access_token"], await _keyset(oidc, agency), algorithms=["RS256"])
    assert access.header["typ"] == "at+jwt"
    assert access.claims["aud"] == rp.id and access.claims["iss"] == issuer
    assert access.claims["jti"] and access.claims["exp"] > access.claims["iat"]

    info = await oidc.userinfo(agency, tokens["access_token"])
    assert info.status_code == 200
    assert info.json()["sub"] == agency.owner_user_id
    assert info.json()["memberships"] == claims["memberships"]


async def test_scopes_limit_the_claims(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    tokens = await oidc.tokens(rp, scope="openid")
    info = (await oidc.userinfo(agency, tokens["access_token"])).json()
    assert set(info) == {"sub", "agency"}


async def test_unregistered_redirect_uri_is_an_error_page_never_a_redirect(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    for bad in (
        "https://evil.example/cb",
        REDIRECT + "/more",
        REDIRECT + "?x=1",
        "http://rp.example/cb",
        'https://evil.example/"><script>',
    ):
        resp = await oidc.authorize(b, rp, redirect_uri=bad)
        assert resp.status_code == 400, (bad, resp.status_code)
        assert "location" not in resp.headers
        assert "text/html" in resp.headers["content-type"]
        assert "not valid" in resp.text
        assert "<script>" not in resp.text
    missing = await oidc.authorize(b, rp, redirect_uri=None)
    assert missing.status_code == 400 and "location" not in missing.headers
    unknown = await oidc.authorize(b, rp, client_id="oac_2ZmPaQz6uDgXfDeLuHbTSq")
    assert unknown.status_code == 400 and "location" not in unknown.headers


async def test_errors_after_a_valid_redirect_uri_go_back_to_the_client(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    resp = await oidc.authorize(b, rp, scope="openid admin:everything", state="s1")
    assert resp.status_code == 302
    q = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(REDIRECT)
    assert q["error"] == "invalid_scope" and q["state"] == "s1"
    resp = await oidc.authorize(b, rp, response_type="token")
    assert query_of(resp.headers["location"])["error"] == "unsupported_response_type"


async def test_pkce_is_s256_only_and_mandatory_for_public_clients(oidc, make_agency):
    agency = await make_agency()
    public = await oidc.register(agency, type="public")
    assert public.secret is None
    b = await oidc.signed_in_browser(agency)
    no_pkce = await oidc.authorize(b, public, code_challenge=None, code_challenge_method=None)
    assert query_of(no_pkce.headers["location"])["error"] == "invalid_request"
    _, challenge = pkce()
    plain = await oidc.authorize(b, public, code_challenge=challenge, code_challenge_method="plain")
    assert query_of(plain.headers["location"])["error"] == "invalid_request"
    implicit_plain = await oidc.authorize(
        b, public, code_challenge=challenge, code_challenge_method=None
    )
    assert query_of(implicit_plain.headers["location"])["error"] == "invalid_request"
    tokens = await oidc.tokens(public, b)  # with S256 it works, no secret needed
    assert tokens["id_token"]


async def test_wrong_pkce_verifier_is_invalid_grant(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, type="public")
    b = await oidc.signed_in_browser(agency)
    code, _ = await oidc.code(b, rp)
    wrong, _ = pkce()
    resp = await oidc.exchange(rp, code, verifier=wrong)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    missing = await oidc.api.post(
        f"/a/{agency.slug}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": rp.id,
        },
    )
    assert missing.status_code == 400


async def test_reused_code_is_invalid_grant_and_revokes_what_it_issued(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    code, _ = await oidc.code(b, rp)
    first = await oidc.exchange(rp, code)
    assert first.status_code == 200
    tokens = first.json()
    assert (await oidc.userinfo(agency, tokens["access_token"])).status_code == 200

    again = await oidc.exchange(rp, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert (await oidc.userinfo(agency, tokens["access_token"])).status_code == 401
    refreshed = await oidc.refresh(rp, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    events = (
        await client.get(
            "/api/v1/audit-events", headers=agency.headers, params={"action": "oauth2.code_reused"}
        )
    ).json()["items"]
    assert len(events) == 1 and events[0]["data"]["tokens_revoked"] == 2


async def test_expired_code_is_invalid_grant(oidc, make_agency, monkeypatch):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    code, _ = await oidc.code(b, rp)
    later = utcnow() + timedelta(seconds=61)
    monkeypatch.setattr(provider, "utcnow", lambda: later)
    resp = await oidc.exchange(rp, code)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


async def test_code_of_another_client_is_invalid_grant(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    other = await oidc.register(agency, name="Other app")
    b = await oidc.signed_in_browser(agency)
    code, _ = await oidc.code(b, rp)
    other.verifier = rp.verifier
    resp = await oidc.exchange(other, code)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert (await oidc.exchange(rp, code)).status_code == 200  # the rightful client still can


async def test_wrong_redirect_uri_or_secret_at_the_token_endpoint(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, redirect_uris=[REDIRECT, "https://rp.example/other"])
    b = await oidc.signed_in_browser(agency)
    code, _ = await oidc.code(b, rp)
    resp = await oidc.exchange(rp, code, redirect_uri="https://rp.example/other")
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    code, _ = await oidc.code(b, rp)
    bad = await oidc.api.post(
        f"/a/{agency.slug}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": rp.verifier,
        },
        auth=(rp.id, "not-the-secret"),
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


async def test_not_signed_in_goes_to_the_portal_login_and_comes_back(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, first_party=True)
    b = oidc.browser()
    params = oidc.params(rp)
    resp = await b.get(f"/a/{agency.slug}/oauth2/authorize", params=params)
    assert resp.status_code == 303
    login = resp.headers["location"]
    assert login.startswith(f"/a/{agency.slug}/login?next=")
    next_url = query_of(login)["next"]
    assert next_url == f"/a/{agency.slug}/oauth2/resume"
    signed = await oidc.sign_in(b, agency, next_url=next_url)
    assert signed.headers["location"] == next_url  # the portal's safe_next accepted it
    back = await b.get(next_url)
    q = query_of(resumed(back))
    assert q["state"] == params["state"] and q["code"]
    assert (await oidc.exchange(rp, q["code"])).status_code == 200
    assert (await b.get(next_url)).status_code == 400  # the pending request is used up


async def test_unknown_agency_issuer_is_404(oidc):
    resp = await oidc.api.get("/a/no-such-agency-x/.well-known/openid-configuration")
    assert resp.status_code == 404
    resp = await oidc.api.post("/a/no-such-agency-x/oauth2/token", data={"grant_type": "x"})
    assert resp.status_code == 404


async def test_a_client_user_launches_a_solution(oidc, make_agency, make_client, client):
    """A client-scoped person (narrowest tenant scope, its own database role on PostgreSQL)
    opens solutions: no password prompt, their business in the claims, consent and sign-out
    work for them too."""
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Florist SAS", display_name="Florist")
    invited = await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={
            "email": "flo@florist.example",
            "role": "client_member",
            "client_id": shop["id"],
            "name": "Flo",
        },
    )
    assert invited.status_code == 201, invited.text
    path = httpx.URL(invited.json()["url"]).path
    b = oidc.browser()
    page = await b.get(path)
    password = "florist-pass-123"
    accepted = await b.post(
        path,
        data={
            "name": "Flo",
            "password": password,
            "password_confirm": password,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert accepted.status_code == 303, accepted.text[:300]
    rp = await oidc.register(agency, name="Shop sync", first_party=True)
    tokens = await oidc.tokens(rp, b)
    third_party = await oidc.register(agency, name="Reviews")
    assert (await oidc.tokens(third_party, b))["id_token"]  # through the consent screen
    info = (await oidc.userinfo(agency, tokens["access_token"])).json()
    assert info["email"] == "flo@florist.example"
    assert info["roles"] == ["client_member"]
    assert info["memberships"] == [
        {"role": "client_member", "client_id": shop["id"], "client_name": "Florist"}
    ]
    refreshed = await oidc.refresh(rp, tokens["refresh_token"])
    assert refreshed.status_code == 200
    logout = await b.get(
        f"/a/{agency.slug}/oauth2/logout", params={"id_token_hint": tokens["id_token"]}
    )
    assert logout.status_code == 200 and "You are signed out" in logout.text
