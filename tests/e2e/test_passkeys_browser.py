"""Passkeys in a real browser: Chromium with a CDP virtual authenticator (CTAP2, built-in,
resident keys, user verification) adds a passkey on the account page, then uses it as the
second step after the password, then signs in with it alone.

WebAuthn needs a secure context and a relying-party id that is a domain (never an IP
address), so this test browses `http://localhost:<port>` and points SWITCHBOARD_BASE_URL
there for its duration (the server runs in this process and reads the same settings)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.portal.test_passkeys import _passkeys

pytestmark = pytest.mark.browser


@pytest.fixture
def localhost(live_server, monkeypatch) -> str:
    from services.settings import get_settings

    base = live_server.replace("://127.0.0.1:", "://localhost:")
    monkeypatch.setattr(get_settings(), "base_url", base)
    return base


async def _virtual_authenticator(page) -> tuple[object, str]:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


async def test_add_a_passkey_then_sign_in_with_it(chromium, localhost, make_agency, screenshot):
    agency = await make_agency(name="Northwind Digital")
    slug = agency.slug
    context = await chromium.new_context(
        base_url=localhost, viewport={"width": 1366, "height": 900}, locale="en-GB"
    )
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        cdp, authenticator = await _virtual_authenticator(page)

        # sign in with the password, add a passkey on the account page
        await page.goto(f"/a/{slug}/login")
        await page.get_by_label("Email").fill(agency.owner_email)
        await page.get_by_label("Password").fill(agency.owner_password)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page).to_have_url(re.compile(rf"/a/{slug}/clients$"))
        await page.goto(f"/a/{slug}/account")
        section = page.locator("#passkeys")
        await section.get_by_label("Name of the new passkey").fill("This laptop")
        await section.get_by_role("button", name="Add a passkey").click()
        await expect(page.get_by_role("status")).to_contain_text("passkey is added")
        await expect(section).to_contain_text("This laptop")
        await expect(section).to_contain_text("last used never")
        credentials = (
            await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        )["credentials"]
        assert len(credentials) == 1 and credentials[0]["isResidentCredential"]
        assert credentials[0]["rpId"] == "localhost"
        await screenshot(page, "passkeys-01-account", full_page=False)
        await section.screenshot(path=str(screenshot_dir() / "passkeys-01b-section.png"))
        await section.locator("summary").first.click()
        await expect(section.get_by_role("button", name="Remove this passkey")).to_be_visible()
        await section.screenshot(path=str(screenshot_dir() / "passkeys-01c-manage.png"))

        # the password alone now leads to the second step: the passkey
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await expect(page).to_have_url(re.compile(rf"/a/{slug}/login$"))
        await page.get_by_label("Email").fill(agency.owner_email)
        await page.get_by_label("Password").fill(agency.owner_password)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page).to_have_url(re.compile(rf"/a/{slug}/login/verify$"))
        await screenshot(page, "passkeys-02-verify")
        await page.get_by_role("button", name="Use a passkey").click()
        await expect(page).to_have_url(re.compile(rf"/a/{slug}/clients$"))
        await expect(page.get_by_role("heading", name="Clients", exact=True)).to_be_visible()

        # password-less: one button, nothing typed
        await page.get_by_role("button", name="Sign out", exact=True).click()
        await expect(page).to_have_url(re.compile(rf"/a/{slug}/login$"))
        passkey_button = page.get_by_role("button", name="Sign in with a passkey")
        await expect(passkey_button).to_be_visible()
        await screenshot(page, "passkeys-03-login")
        await passkey_button.click()
        await expect(page).to_have_url(re.compile(rf"/a/{slug}/clients$"))
        await expect(page.get_by_role("heading", name="Clients", exact=True)).to_be_visible()

        await page.goto(f"/a/{slug}/account")
        await expect(page.locator("#passkeys")).to_contain_text("last used just now")
        credentials = (
            await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        )["credentials"]
        [stored] = await _passkeys(agency)  # the server follows the authenticator's counter
        assert stored.sign_count == credentials[0]["signCount"] > 1
        assert stored.last_used_at is not None and stored.transports == ["internal"]

        # rename it, then remove it (the password proves it is still the owner)
        section = page.locator("#passkeys")
        await section.locator("summary").first.click()
        await section.get_by_label("Name", exact=True).fill("Work laptop")
        await section.get_by_role("button", name="Rename").click()
        await expect(page.get_by_role("status")).to_contain_text("renamed")
        await expect(section).to_contain_text("Work laptop")
        await section.locator("summary").first.click()
        await section.get_by_role("button", name="Remove this passkey").click()
        await expect(page.get_by_role("alert")).to_contain_text("not your password")
        await section.locator("summary").first.click()
        await section.get_by_label("Your password").fill(agency.owner_password)
        await section.get_by_role("button", name="Remove this passkey").click()
        await expect(page.get_by_role("status")).to_contain_text("removed")
        await expect(section).not_to_contain_text("Work laptop")
        assert await _passkeys(agency) == []
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        await context.close()


async def test_a_cancelled_prompt_says_so(chromium, localhost, make_agency):
    """No authenticator answers (the person closes the prompt): a message, no navigation."""
    agency = await make_agency()
    context = await chromium.new_context(base_url=localhost, locale="en-GB")
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("WebAuthn.enable", {"enableUI": False})
        added = await cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        # an authenticator with no passkey for this site: the request fails
        await cdp.send(
            "WebAuthn.setAutomaticPresenceSimulation",
            {"authenticatorId": added["authenticatorId"], "enabled": True},
        )
        await page.goto(f"/a/{agency.slug}/login")
        await page.get_by_role("button", name="Sign in with a passkey").click()
        await expect(page.get_by_role("alert")).to_be_visible(timeout=20_000)
        await expect(page).to_have_url(re.compile(rf"/a/{agency.slug}/login$"))
    finally:
        await context.close()


def screenshot_dir():
    from tests.e2e.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
