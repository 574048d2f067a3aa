"""Discovery document, JWKS content, signing keys encrypted at rest, and rotation that keeps
old keys published until the tokens they signed have expired."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from joserfc import jwt
from sqlalchemy import select

from services.kit.db import session_factory
from services.kit.types import utcnow
from services.oauth2 import keys, service
from services.oauth2.models import SigningKey
from tenants.context import TenantContext
from tenants.scoping import set_tenant


async def test_discovery_document(oidc, make_agency):
    agency = await make_agency()
    resp = await oidc.api.get(f"/a/{agency.slug}/.well-known/openid-configuration")
    assert resp.status_code == 200
    doc = resp.json()
    issuer = f"http://testserver/a/{agency.slug}"
    assert doc["issuer"] == issuer
    assert doc["authorization_endpoint"] == f"{issuer}/oauth2/authorize"
    assert doc["token_endpoint"] == f"{issuer}/oauth2/token"
    assert doc["userinfo_endpoint"] == f"{issuer}/oauth2/userinfo"
    assert doc["revocation_endpoint"] == f"{issuer}/oauth2/revoke"
    assert doc["introspection_endpoint"] == f"{issuer}/oauth2/introspect"
    assert doc["end_session_endpoint"] == f"{issuer}/oauth2/logout"
    assert doc["jwks_uri"] == f"{issuer}/jwks.json"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert "RS256" in doc["id_token_signing_alg_values_supported"]
    assert {"openid", "profile", "email", "switchboard:memberships"} <= set(doc["scopes_supported"])
    for path in (doc["authorization_endpoint"], doc["jwks_uri"]):
        assert (await oidc.api.get(path.replace("http://testserver", ""))).status_code != 404


async def test_jwks_publishes_public_keys_only(oidc, make_agency):
    agency, other = await make_agency(), await make_agency()
    body = (await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()
    assert len(body["keys"]) == 1
    key = body["keys"][0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()
    again = (await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()
    assert again == body  # stable, not a new key per request
    theirs = (await oidc.api.get(f"/a/{other.slug}/jwks.json")).json()
    assert theirs["keys"][0]["kid"] != key["kid"]


async def _key_rows(agency) -> list[SigningKey]:
    session = session_factory()()
    try:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        return list((await session.execute(select(SigningKey))).scalars().all())
    finally:
        await session.close()


async def test_private_keys_are_encrypted_at_rest(oidc, make_agency):
    agency = await make_agency()
    await oidc.api.get(f"/a/{agency.slug}/jwks.json")
    (row,) = await _key_rows(agency)
    assert row.private_key_encrypted.startswith("v1:")
    assert "PRIVATE" not in row.private_key_encrypted
    assert b"PRIVATE KEY" in keys.decrypt_private_key(
        row.private_key_encrypted, row.agency_id, row.kid
    )
    with pytest.raises(InvalidTag):  # bound to its agency and kid
        keys.decrypt_private_key(row.private_key_encrypted, row.agency_id, "another-kid")


async def test_rotation_keeps_old_keys_until_their_tokens_expire(oidc, make_agency, monkeypatch):
    agency = await make_agency()
    rp = await oidc.register(agency)
    before = await oidc.tokens(rp)
    old_kid = jwt.decode(
        before["access_token"],
        _keyset_of((await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()),
    ).header["kid"]

    new_kid = await service.rotate_signing_key_for(agency.slug)
    assert new_kid != old_kid
    published = [
        k["kid"] for k in (await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()["keys"]
    ]
    assert set(published) == {old_kid, new_kid}
    after = await oidc.tokens(rp)
    jwks = (await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()
    assert jwt.decode(after["id_token"], _keyset_of(jwks)).header["kid"] == new_kid
    assert jwt.decode(after["access_token"], _keyset_of(jwks)).header["kid"] == new_kid
    # tokens signed by the retired key still work while they live
    assert (await oidc.userinfo(agency, before["access_token"])).status_code == 200

    # once every token the old key signed has expired, it leaves the JWKS
    later = utcnow() + keys.max_token_lifetime() + timedelta(minutes=6)
    monkeypatch.setattr(keys, "utcnow", lambda: later)
    published = [
        k["kid"] for k in (await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()["keys"]
    ]
    assert published == [new_kid]


async def test_es256_clients_get_es256_id_tokens(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, id_token_signed_response_alg="ES256")
    tokens = await oidc.tokens(rp)
    jwks = (await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json()
    assert {k["alg"] for k in jwks["keys"]} == {"RS256", "ES256"}
    decoded = jwt.decode(tokens["id_token"], _keyset_of(jwks), algorithms=["ES256"])
    assert decoded.header["alg"] == "ES256" and decoded.claims["aud"] == rp.id


def _keyset_of(jwks: dict):
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(jwks)


async def test_cli_rotates_a_signing_key(client, make_agency):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    agency = await make_agency()
    before = (await client.get(f"/a/{agency.slug}/jwks.json")).json()["keys"]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "oauth2", "rotate-key", "--agency", agency.slug],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    after = (await client.get(f"/a/{agency.slug}/jwks.json")).json()["keys"]
    assert len(after) == len(before) + 1 and out.stdout.split()[3] in {k["kid"] for k in after}
    missing = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "oauth2", "rotate-key", "--agency", "nope-x"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
