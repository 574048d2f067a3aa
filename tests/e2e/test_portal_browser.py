"""The portal in a real browser: an agency owner's day, and a client user's view."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.browser


async def _branded_agency(client, make_agency, make_client):
    agency = await make_agency(name="Northwind Digital")
    resp = await client.patch(
        "/api/v1/agency",
        headers=agency.headers,
        json={
            "name": "Northwind Digital",
            "brand_primary_color": "#4f46e5",
            "brand_accent_color": "#111827",
            "support_email": "support@northwind.example",
        },
    )
    assert resp.status_code == 200, resp.text
    seeded = [
        dict(
            legal_name="Bella Vista Bistro SARL",
            display_name="Bella Vista Bistro",
            email="hello@bellavista.example",
            phone="+33 1 42 68 53 00",
            city="Paris",
            country="FR",
            timezone="Europe/Paris",
            categories=["restaurant", "italian"],
            lifecycle_stage="active",
            hours={"tue": ["12:00-14:30", "19:00-23:00"]},
        ),
        dict(
            legal_name="Harbor Lane Florist LLC",
            display_name="Harbor Lane Florist",
            email="orders@harborlane.example",
            phone="+1 207 555 0134",
            city="Portland",
            region="ME",
            country="US",
            timezone="America/New_York",
            lifecycle_stage="active",
        ),
        dict(
            legal_name="Summit Physio Ltd",
            display_name="Summit Physiotherapy",
            city="London",
            country="GB",
            timezone="Europe/London",
            lifecycle_stage="onboarding",
        ),
        dict(
            legal_name="Copper Kettle Coffee Co.",
            display_name="Copper Kettle Coffee",
            city="Austin",
            region="TX",
            country="US",
            lifecycle_stage="prospect",
        ),
        dict(
            legal_name="Nordlys Yoga AS",
            display_name="Nordlys Yoga",
            city="Oslo",
            country="NO",
            lifecycle_stage="paused",
        ),
    ]
    made = [await make_client(agency, **fields) for fields in seeded]
    return agency, made


async def _sign_in(page, slug: str, email: str, password: str) -> None:
    await page.goto(f"/a/{slug}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def test_agency_owner_works_a_client_through_the_portal(
    client, make_agency, make_client, new_page, screenshot
):
    agency, _ = await _branded_agency(client, make_agency, make_client)
    page = await new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    await page.goto(f"/a/{agency.slug}/clients")  # not signed in: off to the sign-in page
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await screenshot(page, "01-login")
    await page.get_by_label("Email").fill(agency.owner_email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("do not match")
    await page.get_by_label("Password").fill(agency.owner_password)
    await page.get_by_role("button", name="Sign in", exact=True).click()

    await expect(page).to_have_url(re.compile(rf"/a/{agency.slug}/clients$"))
    await expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    await expect(page.locator("#results tbody tr")).to_have_count(5)
    await screenshot(page, "02-clients-list")

    await page.get_by_label("Search clients").fill("harbor")  # htmx live search
    await expect(page.locator("#results tbody tr")).to_have_count(1)
    await expect(page.locator("#results")).to_contain_text("Harbor Lane Florist")
    await expect(page).to_have_url(re.compile(r"q=harbor"))
    await screenshot(page, "03-clients-search")
    await page.get_by_label("Search clients").fill("")
    await expect(page.locator("#results tbody tr")).to_have_count(5)

    await page.get_by_role("link", name="New client").click()
    await page.get_by_label("Legal name").fill("Lumen Dental Care GmbH")
    await page.get_by_label("E-mail").fill("not-an-email")
    await page.get_by_role("button", name="Create client").click()
    await expect(page.locator("#email-error")).to_be_visible()
    await expect(page.get_by_label("Legal name")).to_have_value("Lumen Dental Care GmbH")
    await screenshot(page, "04-client-form-errors")
    await page.get_by_label("Display name").fill("Lumen Dental")
    await page.get_by_label("E-mail").fill("praxis@lumen-dental.example")
    await page.get_by_label("Phone", exact=True).fill("+49 30 1234567")
    await page.get_by_label("City").fill("Berlin")
    await page.get_by_label("Country code").fill("DE")
    await page.get_by_label("Time zone").fill("Europe/Berlin")
    await page.get_by_label("Categories").fill("dentist, health")
    await page.get_by_label("Monday").fill("08:00-12:00, 14:00-18:00")
    await page.get_by_role("button", name="Create client").click()

    await expect(page.get_by_role("heading", level=1)).to_contain_text("Lumen Dental")
    await expect(page.get_by_role("status")).to_contain_text("created")
    await expect(page.locator(".page-head .badge")).to_have_text("Prospect")
    await page.get_by_label("Reason").fill("Signed the growth bundle")
    await page.get_by_role("button", name="Start onboarding").click()
    await expect(page.locator(".page-head .badge")).to_have_text("Onboarding")
    await expect(page.locator(".timeline")).to_contain_text("Moved from Prospect to Onboarding")
    await screenshot(page, "05-client-detail")

    await page.get_by_role("link", name="Team").click()
    await expect(page.get_by_role("heading", name="Team", exact=True)).to_be_visible()
    await screenshot(page, "06-team")
    await page.get_by_role("link", name="Branding").click()
    await expect(page.get_by_label("Agency name")).to_have_value("Northwind Digital")
    await screenshot(page, "07-branding")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.get_by_role("link", name="Clients").click()
    await screenshot(page, "08-clients-mobile")
    await page.set_viewport_size({"width": 1366, "height": 900})

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(rf"/a/{agency.slug}/login$"))
    await expect(page.get_by_role("status")).to_contain_text("signed out")
    await page.goto(f"/a/{agency.slug}/clients")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def test_client_user_sees_only_their_own_client(
    client, make_agency, make_client, make_person, new_page, screenshot
):
    agency, made = await _branded_agency(client, make_agency, make_client)
    bella, florist = made[0], made[1]
    _, _ = await make_person(
        agency, "client_owner", client_id=bella["id"], email="maria@bellavista.example"
    )
    page = await new_page()
    await _sign_in(page, agency.slug, "maria@bellavista.example", PASSWORD)
    await expect(page).to_have_url(re.compile(r"/apps$"))  # a client's home: its solutions
    await page.get_by_role("link", name="Our business").click()
    await expect(page).to_have_url(re.compile(rf"/clients/{bella['id']}$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Bella Vista Bistro")
    await expect(page.get_by_role("button", name="Start onboarding")).to_have_count(0)
    await screenshot(page, "09-client-portal")

    await page.goto(f"/a/{agency.slug}/clients")
    await expect(page.locator("#results tbody tr")).to_have_count(1)
    response = await page.goto(f"/a/{agency.slug}/clients/{florist['id']}")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    await screenshot(page, "10-not-found")
