"""The apps console in a real browser: an agency owner registers a solution, copies its
secret, enables it for a client, and the client's portal lists it."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


async def test_owner_registers_a_solution_and_enables_it(
    client, make_agency, make_client, new_page, screenshot
):
    from playwright.async_api import expect

    agency = await make_agency(name="Northwind Digital")
    await make_client(agency, legal_name="Bella Vista Bistro SARL", display_name="Bella Vista")
    await make_client(agency, legal_name="Harbor Lane Florist LLC")
    page = await new_page()
    await page.goto(f"/a/{agency.slug}/login")
    await page.get_by_label("Email").fill(agency.owner_email)
    await page.get_by_label("Password").fill(agency.owner_password)
    await page.get_by_role("button", name="Sign in", exact=True).click()

    await page.get_by_role("link", name="Apps").click()
    await expect(page.get_by_role("heading", name="No apps yet")).to_be_visible()
    await page.get_by_role("link", name="Register an app").first.click()
    await page.locator("#f-name").fill("Bella Bookings")
    await page.get_by_label("Description", exact=True).fill("Table reservations and guest list")
    await page.get_by_label("Redirect URIs").fill("https://bookings.example/callback")
    await page.get_by_label("Sign-in address (initiate login URI)").fill(
        "https://bookings.example/login"
    )
    await screenshot(page, "30-apps-register")
    await page.get_by_role("button", name="Register the app").click()
    secret = page.locator("#client-secret")
    await expect(secret).to_be_visible()
    assert len(await secret.inner_text()) >= 30
    await page.get_by_label("Bella Vista").check()
    await screenshot(page, "31-apps-created")
    await page.get_by_role("button", name="Save clients").click()
    await expect(page.get_by_role("status").or_(page.locator(".alert-success"))).to_contain_text(
        "updated"
    )
    await expect(page.locator("#client-secret")).to_have_count(0)  # shown once only
    await page.get_by_label("Main").get_by_role("link", name="Apps").click()
    await expect(page.get_by_role("cell", name=re.compile("Bella Bookings"))).to_be_visible()
    await screenshot(page, "32-apps-list")
