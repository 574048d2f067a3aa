"""SCIM tokens: issued per agency, shown once, stored as a hash, revocable; the SCIM service
answers 401 to a missing, wrong, revoked or other agency's token, in SCIM's error format."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from sqlalchemy import select

from services.kit.crypto import sha256_hex
from services.kit.db import unit_of_work
from services.scim.models import ScimToken
from tenants.context import TenantContext
from tenants.scoping import set_tenant
from tests.conftest import ROOT
from tests.scim.conftest import assert_scim_error, issue_token


async def test_token_is_shown_once_and_stored_as_a_hash(client, make_agency):
    agency = await make_agency()
    issued = await issue_token(client, agency, "Entra ID")
    assert issued["token"].startswith("sbs_")
    assert issued["base_url"] == f"http://testserver/a/{agency.slug}/scim/v2"
    assert issued["prefix"].endswith(issued["token"][-6:])
    listed = (await client.get("/api/v1/scim-tokens", headers=agency.headers)).json()
    assert [t["id"] for t in listed] == [issued["id"]]
    assert "token" not in listed[0] and listed[0]["last_used_at"] is None
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        row = (await session.execute(select(ScimToken))).scalar_one()
    assert row.token_hash == sha256_hex(issued["token"])
    assert issued["token"] not in json.dumps(row.model_dump(), default=str)


async def test_token_use_is_recorded(client, make_scim):
    scim = await make_scim()
    assert (await scim.get("/Users")).status_code == 200
    listed = (await client.get("/api/v1/scim-tokens", headers=scim.agency.headers)).json()
    assert listed[0]["last_used_at"] is not None


async def test_tokens_need_the_scim_permission(client, make_agency, make_client):
    agency = await make_agency()
    shop = await make_client(agency)
    for role, client_id in (("agency_staff", None), ("client_owner", shop["id"])):
        body = {"name": role, "role": role, **({"client_id": client_id} if client_id else {})}
        key = (await client.post("/api/v1/api-keys", headers=agency.headers, json=body)).json()
        headers = {"Authorization": f"Bearer {key['key']}"}
        resp = await client.post("/api/v1/scim-tokens", headers=headers, json={"name": "x"})
        assert resp.status_code == 403, resp.text
        assert (await client.get("/api/v1/scim-tokens", headers=headers)).status_code == 403
    assert (await client.post("/api/v1/scim-tokens", json={"name": "x"})).status_code == 401


async def test_missing_malformed_and_wrong_tokens_are_401(make_scim):
    scim = await make_scim()
    wrong = scim.token[:-4] + ("aaaa" if not scim.token.endswith("aaaa") else "bbbb")
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {wrong}"},
        {"Authorization": f"Bearer {scim.agency.api_key}"},  # an API key is not a SCIM token
    ):
        for path in ("/Users", "/Groups", "/ServiceProviderConfig", "/Schemas"):
            resp = await scim.client.get(scim.base + path, headers=headers)
            assert_scim_error(resp, 401)
            assert resp.headers["www-authenticate"].startswith("Bearer")


async def test_revoked_token_is_401(client, make_scim):
    scim = await make_scim()
    assert (await scim.get("/Users")).status_code == 200
    resp = await client.delete(f"/api/v1/scim-tokens/{scim.token_id}", headers=scim.agency.headers)
    assert resp.status_code == 204
    assert_scim_error(await scim.get("/Users"), 401)
    listed = (await client.get("/api/v1/scim-tokens", headers=scim.agency.headers)).json()
    assert listed[0]["revoked_at"] is not None
    # Revoking twice, or an unknown id, is harmless / not found.
    again = await client.delete(f"/api/v1/scim-tokens/{scim.token_id}", headers=scim.agency.headers)
    assert again.status_code == 204
    missing = await client.delete("/api/v1/scim-tokens/sct_1", headers=scim.agency.headers)
    assert missing.status_code == 404


async def test_another_agencys_token_is_401(make_scim):
    a, b = await make_scim(), await make_scim()
    resp = await a.client.get(b.base + "/Users", headers=a.headers)
    assert_scim_error(resp, 401)
    # ...even with a token that names agency B but was never issued by it.
    forged = "sbs_" + b.token.split("_")[1] + "_" + a.token.split("_")[2]
    resp = await a.client.get(b.base + "/Users", headers={"Authorization": f"Bearer {forged}"})
    assert_scim_error(resp, 401)


async def test_unknown_agency_is_404(make_scim):
    scim = await make_scim()
    resp = await scim.client.get("/a/no-such-agency-xyz/scim/v2/Users", headers=scim.headers)
    assert_scim_error(resp, 404)


async def test_cli_creates_a_token(make_agency, client):
    agency = await make_agency()
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "services.cli",
            "scim-token",
            "create",
            "--agency",
            agency.slug,
            "--name",
            "Okta",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["slug"] == agency.slug and data["token"].startswith("sbs_")
    assert data["base_url"].endswith(f"/a/{agency.slug}/scim/v2")
    resp = await client.get(
        f"/a/{agency.slug}/scim/v2/Users", headers={"Authorization": f"Bearer {data['token']}"}
    )
    assert resp.status_code == 200, resp.text
    listed = (await client.get("/api/v1/scim-tokens", headers=agency.headers)).json()
    assert [t["name"] for t in listed] == ["Okta"]
    bad = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "scim-token", "create", "--agency", "nope-nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no agency" in bad.stderr
