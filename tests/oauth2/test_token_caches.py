"""The token path's per-process caches (issuer agency, relying party, active signing key) and
its one-statement claims of codes and refresh tokens (issue 7 §6) change nothing anyone can
observe: every change takes effect on the very next request, and a request that fails after
claiming a code or refresh token leaves it usable (no false replay alarm)."""

from __future__ import annotations

import base64
import json

from tests.oauth2.conftest import basic

URL = "/api/v1/oauth-clients"


def _claims(jwt: str) -> tuple[dict, dict]:
    def part(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))

    head, payload, _ = jwt.split(".")
    return part(head), part(payload)


async def test_suspending_an_agency_stops_its_token_endpoint_at_once(
    oidc, make_agency, client, operator_headers
):
    agency = await make_agency()
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)
    ok = await oidc.refresh(rp, first["refresh_token"])  # the issuer is now cached
    assert ok.status_code == 200, ok.text
    resp = await client.patch(
        f"/api/v1/agencies/{agency.public_id}",
        headers=operator_headers,
        json={"status": "suspended"},
    )
    assert resp.status_code == 200, resp.text
    stopped = await oidc.refresh(rp, ok.json()["refresh_token"])
    assert stopped.status_code == 404, stopped.text
    disc = await client.get(f"/a/{agency.slug}/.well-known/openid-configuration")
    assert disc.status_code == 404
    resp = await client.patch(
        f"/api/v1/agencies/{agency.public_id}",
        headers=operator_headers,
        json={"status": "active"},
    )
    assert resp.status_code == 200, resp.text
    again = await oidc.refresh(rp, ok.json()["refresh_token"])  # it was never used
    assert again.status_code == 200, again.text


async def test_a_renamed_agency_is_named_in_the_next_id_token(oidc, make_agency, client):
    agency = await make_agency(name="Before Ltd")
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)
    assert _claims(first["id_token"])[1]["agency"]["name"] == "Before Ltd"
    resp = await client.patch("/api/v1/agency", headers=agency.headers, json={"name": "After"})
    assert resp.status_code == 200, resp.text
    refreshed = await oidc.refresh(rp, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert _claims(refreshed.json()["id_token"])[1]["agency"]["name"] == "After"


async def test_a_rotated_client_secret_stops_working_at_once(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)  # the relying party is now cached
    rotated = await client.post(f"{URL}/{rp.id}/secret", headers=agency.headers)
    assert rotated.status_code == 200, rotated.text
    old = await oidc.refresh(rp, first["refresh_token"])
    assert old.status_code == 401 and old.json()["error"] == "invalid_client", old.text
    rp.data["client_secret"] = rotated.json()["client_secret"]
    new = await oidc.refresh(rp, first["refresh_token"])  # the failed attempt used nothing
    assert new.status_code == 200, new.text


async def test_client_changes_and_deletion_take_effect_at_once(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)
    resp = await client.patch(
        f"{URL}/{rp.id}", headers=agency.headers, json={"grant_types": ["authorization_code"]}
    )
    assert resp.status_code == 200, resp.text
    refused = await oidc.refresh(rp, first["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    resp = await client.delete(f"{URL}/{rp.id}", headers=agency.headers)
    assert resp.status_code == 204, resp.text
    gone = await client.post(
        f"/a/{agency.slug}/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic(rp.id, rp.secret or ""),
    )
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_client"


async def test_the_next_token_after_a_key_rotation_is_signed_with_the_new_key(
    oidc, make_agency, client
):
    from services.oauth2 import service

    agency = await make_agency()
    rp = await oidc.register(agency)
    first = await oidc.tokens(rp)
    second = await oidc.refresh(rp, first["refresh_token"])  # the key is now cached
    old_kid = _claims(second.json()["access_token"])[0]["kid"]
    new_kid = await service.rotate_signing_key_for(agency.slug)
    assert new_kid != old_kid
    third = await oidc.refresh(rp, second.json()["refresh_token"])
    assert third.status_code == 200, third.text
    assert _claims(third.json()["access_token"])[0]["kid"] == new_kid
    assert _claims(third.json()["id_token"])[0]["kid"] == new_kid


async def test_a_refresh_that_fails_after_its_claim_leaves_the_token_usable(
    oidc, make_agency, client
):
    """The refresh token is claimed before the requested scope is checked: a request for a
    broader scope fails with invalid_scope and must not burn the token (its next use would
    otherwise look like a replay and revoke the family)."""
    agency = await make_agency()
    rp = await oidc.register(agency, allowed_scopes=["openid", "profile", "email"])
    first = await oidc.tokens(rp, scope="openid profile")
    wider = rp.token_form(
        grant_type="refresh_token", refresh_token=first["refresh_token"], scope="openid email"
    )
    resp = await client.post(f"/a/{agency.slug}/oauth2/token", data=wider, headers=rp.auth)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", resp.text
    ok = await oidc.refresh(rp, first["refresh_token"])
    assert ok.status_code == 200, ok.text
    events = (
        await client.get(
            "/api/v1/audit-events",
            headers=agency.headers,
            params={"action": "oauth2.refresh_token_reused"},
        )
    ).json()["items"]
    assert events == []


async def test_a_code_exchange_that_fails_after_its_claim_leaves_the_code_usable(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    code, _ = await oidc.code(b, rp)
    wrong = await oidc.exchange(rp, code, verifier="x" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    other_uri = await oidc.exchange(rp, code, redirect_uri="https://rp.example/other")
    assert other_uri.status_code == 400
    ok = await oidc.exchange(rp, code)
    assert ok.status_code == 200, ok.text
    again = await oidc.exchange(rp, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # the replay revoked what the code had issued
    assert (await oidc.refresh(rp, ok.json()["refresh_token"])).status_code == 400
