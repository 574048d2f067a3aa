"""Refresh rotation and reuse detection, client credentials, revocation, introspection, and
the tokens userinfo must refuse (forged, expired, wrong audience, another agency's)."""

from __future__ import annotations

import asyncio
import time

from joserfc import jwt
from joserfc.jwk import RSAKey

from services.kit.db import session_factory
from services.oauth2 import keys
from tenants.context import TenantContext
from tenants.scoping import set_tenant


async def _sign(agency, claims: dict, header: dict | None = None) -> str:
    """Sign with the agency's real active key (as only the provider could)."""
    session = session_factory()()
    try:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        key = await session.run_sync(lambda s: keys.signing_key(s, agency.id))
        await session.commit()
    finally:
        await session.close()
    head = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **(header or {})}
    return jwt.encode(head, claims, key, algorithms=["RS256"])


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)
    second = await oidc.refresh(rp, first["refresh_token"])
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert (await oidc.userinfo(agency, second["access_token"])).status_code == 200

    reused = await oidc.refresh(rp, first["refresh_token"])  # a stolen, already-rotated token
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # the whole family is gone: the newest refresh token and every access token
    assert (await oidc.refresh(rp, second["refresh_token"])).status_code == 400
    assert (await oidc.userinfo(agency, second["access_token"])).status_code == 401
    assert (await oidc.userinfo(agency, first["access_token"])).status_code == 401
    events = (
        await client.get(
            "/api/v1/audit-events",
            headers=agency.headers,
            params={"action": "oauth2.refresh_token_reused"},
        )
    ).json()["items"]
    assert len(events) == 1 and events[0]["data"]["tokens_revoked"] >= 3


async def test_refresh_token_of_another_client_or_unknown_is_invalid_grant(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    other = await oidc.register(agency, name="Other")
    tokens = await oidc.tokens(rp)
    stolen = await oidc.refresh(other, tokens["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await oidc.refresh(rp, "nope")).json()["error"] == "invalid_grant"
    narrower = await oidc.api.post(
        f"/a/{agency.slug}/oauth2/token",
        headers=rp.auth,
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid email",
        },
    )
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid email"


async def test_client_credentials_for_machine_clients(oidc, make_agency):
    agency = await make_agency()
    machine = await oidc.register(
        agency,
        name="Sync worker",
        grant_types=["client_credentials"],
        redirect_uris=[],
        allowed_scopes=["reports:read", "openid"],
    )
    url = f"/a/{agency.slug}/oauth2/token"
    resp = await oidc.api.post(url, headers=machine.auth, data={"grant_type": "client_credentials"})
    assert resp.status_code == 200, resp.text
    token = resp.json()
    assert token["scope"] == "reports:read" and "refresh_token" not in token
    claims = jwt.decode(
        token["access_token"],
        RSAKey.import_key((await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()["keys"][0]),
    ).claims
    assert claims["sub"] == machine.id and claims["aud"] == machine.id
    for scope in ("openid", "admin"):
        bad = await oidc.api.post(
            url, headers=machine.auth, data={"grant_type": "client_credentials", "scope": scope}
        )
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_scope"
    # no person behind it: no userinfo
    assert (await oidc.userinfo(agency, token["access_token"])).status_code == 403
    # a sign-in client may not use the grant, and a wrong secret is refused
    web = await oidc.register(agency)
    denied = await oidc.api.post(url, headers=web.auth, data={"grant_type": "client_credentials"})
    assert denied.status_code == 400 and denied.json()["error"] == "unauthorized_client"
    wrong = await oidc.api.post(
        url, data={"grant_type": "client_credentials"}, auth=(machine.id, "wrong")
    )
    assert wrong.status_code == 401


async def test_userinfo_refuses_forged_expired_wrong_audience_and_foreign_tokens(oidc, make_agency):
    agency, other_agency = await make_agency(), await make_agency()
    rp = await oidc.register(agency)
    tokens = await oidc.tokens(rp)
    good = tokens["access_token"]
    assert (await oidc.userinfo(agency, good)).status_code == 200
    claims = jwt.decode(
        good,
        RSAKey.import_key((await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()["keys"][0]),
    ).claims
    header = jwt.decode(
        good,
        RSAKey.import_key((await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()["keys"][0]),
    ).header

    # forged: same kid and claims, signed with an attacker's key
    attacker = RSAKey.generate_key(2048, parameters={"kid": header["kid"]}, private=True)
    forged = jwt.encode(header, claims, attacker, algorithms=["RS256"])
    # tampered payload with the original signature
    h, _p, sig = good.split(".")
    tampered_payload = jwt.encode(header, {**claims, "sub": "usr_x"}, attacker).split(".")[1]
    tampered = f"{h}.{tampered_payload}.{sig}"
    # alg=none
    unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + good.split(".")[1] + "."
    now = int(time.time())
    expired = await _sign(agency, {**claims, "iat": now - 7200, "exp": now - 3600})
    wrong_aud = await _sign(agency, {**claims, "aud": "https://api.elsewhere.example"})
    wrong_iss = await _sign(agency, {**claims, "iss": "http://testserver/a/someone-else"})
    id_token = tokens["id_token"]  # not an access token
    unknown_jti = await _sign(agency, {**claims, "jti": "never-issued"})
    other_rp = await oidc.register(other_agency)
    foreign = (await oidc.tokens(other_rp))["access_token"]

    for name, token in {
        "forged": forged,
        "tampered": tampered,
        "unsigned": unsigned,
        "expired": expired,
        "wrong audience": wrong_aud,
        "wrong issuer": wrong_iss,
        "id token": id_token,
        "unknown jti": unknown_jti,
        "other agency": foreign,
        "garbage": "abc.def.ghi",
    }.items():
        resp = await oidc.userinfo(agency, token)
        assert resp.status_code == 401, (name, resp.status_code, resp.text)
        assert resp.headers["www-authenticate"].startswith("Bearer"), name
    assert (await oidc.userinfo(other_agency, foreign)).status_code == 200
    assert (await oidc.api.get(f"/a/{agency.slug}/oauth2/userinfo")).status_code == 401


async def test_tokens_of_one_agency_are_worthless_at_another(oidc, make_agency):
    a, b = await make_agency(), await make_agency()
    rp = await oidc.register(a)
    tokens = await oidc.tokens(rp)
    # a's client does not exist at b's token endpoint; a's refresh token means nothing there
    resp = await oidc.api.post(
        f"/a/{b.slug}/oauth2/token",
        headers=rp.auth,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    b_rp = await oidc.register(b)
    intro = await oidc.api.post(
        f"/a/{b.slug}/oauth2/introspect", headers=b_rp.auth, data={"token": tokens["access_token"]}
    )
    assert intro.json() == {"active": False}


async def test_revocation(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    url = f"/a/{agency.slug}/oauth2/revoke"
    tokens = await oidc.tokens(rp)
    # an access token alone
    resp = await oidc.api.post(url, headers=rp.auth, data={"token": tokens["access_token"]})
    assert resp.status_code == 200
    assert (await oidc.userinfo(agency, tokens["access_token"])).status_code == 401
    assert (await oidc.refresh(rp, tokens["refresh_token"])).status_code == 200

    # a refresh token takes its family with it
    tokens = await oidc.tokens(rp)
    resp = await oidc.api.post(
        url,
        headers=rp.auth,
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
    )
    assert resp.status_code == 200
    assert (await oidc.refresh(rp, tokens["refresh_token"])).status_code == 400
    assert (await oidc.userinfo(agency, tokens["access_token"])).status_code == 401

    # unknown tokens and other clients' tokens: 200, nothing happens
    assert (await oidc.api.post(url, headers=rp.auth, data={"token": "nope"})).status_code == 200
    other = await oidc.register(agency, name="Other")
    tokens = await oidc.tokens(rp)
    resp = await oidc.api.post(url, headers=other.auth, data={"token": tokens["access_token"]})
    assert resp.status_code == 200
    assert (await oidc.userinfo(agency, tokens["access_token"])).status_code == 200
    # public clients revoke with their client_id
    public = await oidc.register(agency, type="public", name="SPA")
    tokens = await oidc.tokens(public)
    resp = await oidc.api.post(url, data={"token": tokens["refresh_token"], "client_id": public.id})
    assert resp.status_code == 200
    assert (await oidc.refresh(public, tokens["refresh_token"])).status_code == 400
    # no client authentication at all
    assert (await oidc.api.post(url, data={"token": "x"})).status_code in (400, 401)


async def test_introspection(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    url = f"/a/{agency.slug}/oauth2/introspect"
    tokens = await oidc.tokens(rp)
    resp = await oidc.api.post(url, headers=rp.auth, data={"token": tokens["access_token"]})
    body = resp.json()
    assert resp.status_code == 200 and body["active"] is True
    assert body["client_id"] == rp.id and body["sub"] == agency.owner_user_id
    assert body["iss"] == f"http://testserver/a/{agency.slug}" and "openid" in body["scope"]
    refresh = (
        await oidc.api.post(
            url,
            headers=rp.auth,
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        )
    ).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"

    # another (third-party) client may not look at it; a first-party service may
    other = await oidc.register(agency, name="Other")
    assert (
        await oidc.api.post(url, headers=other.auth, data={"token": tokens["access_token"]})
    ).json() == {"active": False}
    resource = await oidc.register(agency, name="Resource server", first_party=True)
    assert (
        await oidc.api.post(url, headers=resource.auth, data={"token": tokens["access_token"]})
    ).json()["active"] is True

    await oidc.api.post(
        f"/a/{agency.slug}/oauth2/revoke", headers=rp.auth, data={"token": tokens["access_token"]}
    )
    assert (
        await oidc.api.post(url, headers=rp.auth, data={"token": tokens["access_token"]})
    ).json() == {"active": False}
    assert (await oidc.api.post(url, headers=rp.auth, data={"token": "x"})).json() == {
        "active": False
    }
    # public clients cannot introspect; unauthenticated callers neither
    public = await oidc.register(agency, type="public", name="SPA")
    assert (await oidc.api.post(url, data={"token": "x", "client_id": public.id})).status_code in (
        400,
        401,
    )


async def test_refresh_issues_a_fresh_id_token_for_the_same_sign_in(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)
    jwks = (await client.get(f"/a/{agency.slug}/jwks.json")).json()
    from joserfc.jwk import KeySet

    keyset = KeySet.import_key_set(jwks)
    original = jwt.decode(first["id_token"], keyset).claims
    await asyncio.sleep(1.1)  # so that iat moves on
    refreshed = await oidc.refresh(rp, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    token = jwt.decode(refreshed.json()["id_token"], keyset)
    claims = token.claims
    for same in ("iss", "sub", "aud", "auth_time", "email", "agency"):
        assert claims.get(same) == original.get(same), same
    assert claims["iat"] > original["iat"] and claims["exp"] > original["exp"]
    assert "nonce" not in claims  # only the sign-in's ID token answers a nonce
    assert token.header["kid"] == jwt.decode(first["id_token"], keyset).header["kid"]
