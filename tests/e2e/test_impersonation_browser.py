"""Audited impersonation in a real browser: an agency owner views a client's portal as one of
its people from the client record page, sees the banner everywhere, ends it and is back; the
client's owner then reads the access on their own record page."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.browser

REASON = "Maria asked why the booking widget shows no free tables on Friday"


async def _sign_in(page, slug: str, email: str, password: str) -> None:
    await page.goto(f"/a/{slug}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def _world(client, make_agency, make_client, new_browser):
    agency = await make_agency(name="Northwind Digital")
    resp = await client.patch(
        "/api/v1/agency",
        headers=agency.headers,
        json={"brand_primary_color": "#4f46e5", "brand_accent_color": "#111827"},
    )
    assert resp.status_code == 200, resp.text
    bella = await make_client(
        agency,
        legal_name="Bella Vista Bistro SARL",
        display_name="Bella Vista Bistro",
        email="hello@bellavista.example",
        city="Paris",
        country="FR",
        timezone="Europe/Paris",
        lifecycle_stage="active",
    )
    email = "maria@bellavista.example"
    inv = await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={
            "email": email,
            "name": "Maria Rossi",
            "role": "client_owner",
            "client_id": bella["id"],
        },
    )
    assert inv.status_code == 201, inv.text
    path = httpx.URL(inv.json()["url"]).path
    accepted = await new_browser().submit(
        path, path, {"name": "Maria Rossi", "password": PASSWORD, "password_confirm": PASSWORD}
    )
    assert accepted.status_code == 303
    return agency, bella, email


async def test_view_as_a_client_user_from_the_client_page_and_end_it(
    client, make_agency, make_client, new_browser, new_page, screenshot
):
    agency, bella, maria_email = await _world(client, make_agency, make_client, new_browser)
    slug = agency.slug
    page = await new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    await _sign_in(page, slug, agency.owner_email, agency.owner_password)
    await expect(page).to_have_url(re.compile(rf"/a/{slug}/clients$"))
    await page.goto(f"/a/{slug}/clients/{bella['id']}")
    await page.get_by_role("link", name="View as a client user").click()
    card = page.locator("#view-as")
    await expect(card).to_be_visible()
    await expect(card.get_by_label("Person")).to_contain_text("Maria Rossi")
    await expect(card.get_by_label("How long")).to_have_value("30")
    await screenshot(page, "imp-01-client-page-form")

    # a reason is required: the form comes back with the error, nothing started
    await card.get_by_role("button", name="Start viewing").click()
    await expect(page.locator("#reason-error")).to_be_visible()
    await expect(page.locator("[data-impersonation]")).to_have_count(0)
    await screenshot(page, "imp-02-reason-required")

    card = page.locator("#view-as")
    await card.get_by_label("Why you need to look").fill(REASON)
    await card.get_by_label("How long").select_option("15")
    await card.get_by_role("button", name="Start viewing").click()

    # Maria's portal, with the banner
    await expect(page).to_have_url(re.compile(rf"/a/{slug}/apps$"))
    banner = page.locator("[data-impersonation]")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("You are viewing Bella Vista Bistro as Maria Rossi")
    await expect(banner).to_contain_text(REASON)
    await expect(banner).to_contain_text(re.compile(r"ends at \d\d:\d\d UTC"))
    await expect(page.locator(".me-name")).to_have_text("Maria Rossi")
    await expect(page.get_by_role("link", name="Our business")).to_be_visible()
    await screenshot(page, "imp-03-banner-solutions")

    await page.get_by_role("link", name="Our business").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Bella Vista Bistro")
    await expect(banner).to_be_visible()
    await expect(page.locator("#view-as")).to_have_count(0)
    await screenshot(page, "imp-04-banner-client-record")
    # the banner stays in view while scrolling
    await page.mouse.wheel(0, 2000)
    await expect(banner).to_be_in_viewport()

    await page.get_by_role("link", name="Your account").click()
    await expect(page.get_by_role("status").first).to_contain_text("cannot be seen or changed")
    await expect(page.get_by_role("button", name="Sign out everywhere")).to_have_count(0)
    await screenshot(page, "imp-05-account-closed")

    await banner.get_by_role("button", name="End now").click()
    await expect(page).to_have_url(re.compile(rf"/a/{slug}/clients/{bella['id']}$"))
    await expect(page.locator("[data-impersonation]")).to_have_count(0)
    await expect(page.get_by_role("status").first).to_contain_text(
        "You stopped viewing as a client user"
    )
    await expect(page.locator(".me-name")).not_to_have_text("Maria Rossi")
    access = page.locator("#agency-access")
    await expect(access).to_contain_text("viewed as Maria Rossi")
    await expect(access).to_contain_text(REASON)
    await screenshot(page, "imp-06-ended-back-as-owner")

    # Maria, signed in herself, reads who looked, when and why
    maria = await new_page()
    await _sign_in(maria, slug, maria_email, PASSWORD)
    await expect(maria).to_have_url(re.compile(rf"/a/{slug}/apps$"))
    await maria.get_by_role("link", name="Our business").click()
    access = maria.locator("#agency-access")
    await expect(access).to_contain_text("Owner viewed as Maria Rossi")
    await expect(access).to_contain_text(REASON)
    await expect(access).to_contain_text("of 15")
    await access.scroll_into_view_if_needed()
    await screenshot(maria, "imp-07-client-owner-reads-access")
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def test_banner_on_a_phone(
    client, make_agency, make_client, new_browser, new_page, screenshot
):
    agency, bella, _ = await _world(client, make_agency, make_client, new_browser)
    slug = agency.slug
    page = await new_page(width=390, height=844)
    await _sign_in(page, slug, agency.owner_email, agency.owner_password)
    await page.goto(f"/a/{slug}/clients/{bella['id']}#view-as")
    await page.get_by_label("Why you need to look").fill(REASON)
    await page.get_by_role("button", name="Start viewing").click()
    banner = page.locator("[data-impersonation]")
    await expect(banner).to_be_visible()
    await expect(banner.get_by_role("button", name="End now")).to_be_visible()
    await screenshot(page, "imp-08-banner-phone", full_page=False)
