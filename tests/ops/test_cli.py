"""The `switchboard` command line against the test database."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from tests.conftest import ROOT


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_agency_and_apikey_create(client):
    slug = f"cli-{secrets.token_hex(4)}"
    made = _cli(
        "agency",
        "create",
        "--slug",
        slug,
        "--name",
        "CLI Agency",
        "--admin-email",
        f"boss@{slug}.example",
        "--admin-password",
        "long-enough-pw",
        "--json",
    )
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    assert set(out) == {"agency_id", "slug", "api_key"} and out["slug"] == slug
    me = await client.get("/api/v1/agency", headers={"Authorization": f"Bearer {out['api_key']}"})
    assert me.status_code == 200 and me.json()["name"] == "CLI Agency"

    again = _cli("agency", "create", "--slug", slug, "--name", "x", "--admin-email", "a@b.example")
    assert again.returncode == 2 and "taken" in again.stderr
    bad = _cli(
        "agency", "create", "--slug", "Not A Slug", "--name", "x", "--admin-email", "a@b.example"
    )
    assert bad.returncode == 2 and "slug" in bad.stderr

    key = _cli("apikey", "create", "--agency", slug, "--json")
    assert key.returncode == 0, key.stderr
    raw = json.loads(key.stdout)["api_key"]
    listed = await client.get("/api/v1/clients", headers={"Authorization": f"Bearer {raw}"})
    assert listed.status_code == 200
    missing = _cli("apikey", "create", "--agency", "no-such-agency")
    assert missing.returncode == 2 and "no agency" in missing.stderr


def test_db_upgrade_is_idempotent():
    out = _cli("db", "upgrade")
    assert out.returncode == 0, out.stderr
    assert "database at head" in out.stdout


async def test_outbox_lists_what_was_sent(client, make_agency):
    from tests.helpers import wait_for_jobs

    agency = await make_agency(name="Outbox CLI Co")
    email = f"cli+{agency.slug}@example.com"
    inv = await client.post(
        "/api/v1/invitations", headers=agency.headers, json={"email": email, "role": "agency_staff"}
    )
    await wait_for_jobs(lambda: True)
    for _ in range(50):
        out = _cli("outbox", "list", "--agency", agency.slug, "--json")
        assert out.returncode == 0, out.stderr
        messages = json.loads(out.stdout)
        if messages:
            break
        import asyncio

        await asyncio.sleep(0.2)
    [message] = messages
    assert message["to"] == email and inv.json()["url"] in message["body"]
    text = _cli("outbox", "list", "--agency", agency.slug, "--full")
    assert email in text.stdout and "/invite/" in text.stdout
    assert _cli("outbox", "list", "--agency", "no-such-agency").returncode == 2
