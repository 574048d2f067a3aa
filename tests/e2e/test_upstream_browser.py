"""Upstream sign-in in a real browser: Chromium presses "Continue with Google" on the sign-in
page, picks an account on the upstream-IdP sandbox's page (served by uvicorn on its own local
port) and lands in the portal signed in; the same with Microsoft. Switchboard reaches the
sandbox over real HTTP here (no injected transport), through Authlib's client.

Screenshots: var/screenshots/upstream-login.png, upstream-idp-chooser.png,
upstream-signed-in.png, upstream-settings.png.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
from playwright.async_api import expect

from tests.live import free_port as _free_port
from tests.upstream_idp import Person, UpstreamIdP

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sandbox() -> UpstreamIdP:
    import uvicorn

    port = _free_port()
    idp = UpstreamIdP(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(
        uvicorn.Config(idp.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="upstream-idp", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the upstream-IdP sandbox did not start")
        time.sleep(0.05)
    yield idp
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def wired(sandbox, live_server, monkeypatch) -> UpstreamIdP:
    from services.identity import upstream_oidc
    from services.settings import get_settings

    settings = get_settings()
    monkeypatch.setattr(settings, "base_url", live_server)  # redirect URIs on the live server
    monkeypatch.setattr(settings, "upstream_google_discovery_url", sandbox.google_discovery_url)
    monkeypatch.setattr(settings, "upstream_microsoft_authority", sandbox.microsoft_authority)
    monkeypatch.setattr(upstream_oidc, "transport", None)  # real HTTP to the sandbox
    upstream_oidc.clear_caches()
    return sandbox


async def _configure(client, agency, idp, live_server, provider, **extra) -> None:
    callback = f"{live_server}/a/{agency.slug}/login/upstream/{provider}/callback"
    client_id, secret = idp.register(provider, callback)
    resp = await client.put(
        f"/api/v1/agency/sign-in-providers/{provider}",
        headers=agency.headers,
        json={"client_id": client_id, "client_secret": secret, **extra},
    )
    assert resp.status_code == 200, resp.text


async def test_continue_with_google_then_microsoft(
    client, make_agency, wired, live_server, new_page, screenshot
):
    idp = wired
    agency = await make_agency(name="Northwind Digital")
    slug = agency.slug
    await _configure(client, agency, idp, live_server, "google")
    await _configure(client, agency, idp, live_server, "microsoft", tenant="organizations")
    idp.sign_in_as("google", None)  # the sandbox shows its account chooser
    idp.add_person("google", Person(email="someone.else@gmail.example", name="Someone Else"))
    idp.add_person("google", Person(email=agency.owner_email, name="Olivia Owner"))

    page = await new_page(1200, 860)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"/a/{slug}/login")
    google = page.get_by_role("link", name="Continue with Google")
    microsoft = page.get_by_role("link", name="Continue with Microsoft")
    await expect(google).to_be_visible()
    await expect(microsoft).to_be_visible()
    logo = page.locator(".btn-upstream img").first
    assert await logo.evaluate("img => img.complete && img.naturalWidth > 0")
    await screenshot(page, "upstream-login")

    await google.click()
    await expect(page).to_have_url(re.compile(r"/google/o/oauth2/v2/auth\?"))
    await expect(page.get_by_role("heading", name="Choose an account")).to_be_visible()
    await screenshot(page, "upstream-idp-chooser")
    await page.get_by_role("button", name=re.compile("Continue as Olivia Owner")).click()
    await expect(page).to_have_url(re.compile(rf"/a/{slug}/clients"))
    await expect(page.get_by_role("link", name="Sign-in options")).to_be_visible()
    await screenshot(page, "upstream-signed-in")

    # The settings page, as the agency owner sees it.
    await page.get_by_role("link", name="Sign-in options").click()
    await expect(page.get_by_role("heading", name="Sign-in options", exact=True)).to_be_visible()
    await expect(page.locator("#google .badge")).to_have_text("On")
    await expect(page.locator("#microsoft-tenant")).to_have_value("organizations")
    await screenshot(page, "upstream-settings")
    assert not [e for e in errors if "Content Security Policy" in e], errors

    # Microsoft, in another browser: work account, the directory vouches for the e-mail.
    idp.sign_in_as("microsoft", Person(email=agency.owner_email, name="Olivia", xms_edov=True))
    other = await new_page(1200, 860)
    await other.goto(f"/a/{slug}/login")
    await other.get_by_role("link", name="Continue with Microsoft").click()
    await expect(other).to_have_url(re.compile(rf"/a/{slug}/clients"))

    # And a refusal reads as a page, not a sign-in: an address with no account here.
    idp.sign_in_as("google", Person(email="stranger@gmail.example"))
    third = await new_page(1200, 860)
    await third.goto(f"/a/{slug}/login")
    await third.get_by_role("link", name="Continue with Google").click()
    await expect(third.get_by_role("heading", name="You are not signed in")).to_be_visible()
    await expect(
        third.get_by_text("There is no account for stranger@gmail.example")
    ).to_be_visible()
    await screenshot(third, "upstream-refused")
