"""One login, in a real browser: a client's person signs in with password and authenticator
code, opens a solution from the portal, lands in the solution's app signed in (no second
password prompt), and signs out of both."""

from __future__ import annotations

import re
import threading
import time

import pyotp
import pytest

from tests.live import free_port as _free_port
from tests.portal.conftest import PASSWORD
from tests.portal.test_mfa import SECRET

pytestmark = pytest.mark.browser


def _serve(app, port: int):
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-sample", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sample app did not start")
        time.sleep(0.05)
    return server, thread


async def test_password_and_code_then_open_a_solution_and_sign_out(
    client, make_agency, make_client, make_person, new_page, screenshot, live_server, monkeypatch
):
    from playwright.async_api import expect

    from services.sampleapp import create_sample_app
    from services.settings import get_settings

    # Issuer URLs must be the address the browser and the app really use.
    monkeypatch.setattr(get_settings(), "base_url", live_server)
    agency = await make_agency(name="Northwind Digital")
    bella = await make_client(agency, legal_name="Bella Vista Bistro SARL")
    port = _free_port()
    sample_url = f"http://127.0.0.1:{port}"
    made = await client.post(
        "/api/v1/oauth-clients",
        headers=agency.headers,
        json={
            "name": "Bella Bookings",
            "description": "Table reservations",
            "redirect_uris": [f"{sample_url}/callback"],
            "post_logout_redirect_uris": [f"{sample_url}/"],
            "initiate_login_uri": f"{sample_url}/login",
            "solution": True,
            "first_party": True,
        },
    )
    assert made.status_code == 201, made.text
    app = made.json()
    assert app["issuer"] == f"{live_server}/a/{agency.slug}"
    enabled = await client.put(
        f"/api/v1/clients/{bella['id']}/solutions/{app['id']}", headers=agency.headers
    )
    assert enabled.status_code == 204
    person, _ = await make_person(
        agency, "client_owner", client_id=bella["id"], email="maria@bellavista.example"
    )
    # Maria turns on two-step sign-in (the portal's own enrolment, as in the MFA tests).
    slug = agency.slug
    await person.submit(f"/a/{slug}/account", f"/a/{slug}/account/mfa/start", {})
    totp = pyotp.TOTP(SECRET.search((await person.get(f"/a/{slug}/account")).text).group(1))
    confirmed = await person.submit(
        f"/a/{slug}/account", f"/a/{slug}/account/mfa/confirm", {"code": totp.now()}
    )
    assert confirmed.status_code == 200

    server, thread = _serve(
        create_sample_app(
            app["issuer"], app["id"], app["client_secret"], sample_url, name="Bella Bookings"
        ),
        port,
    )
    try:
        page = await new_page()
        await page.goto(f"/a/{slug}/login")
        await page.get_by_label("Email").fill("maria@bellavista.example")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page).to_have_url(re.compile(r"/login/verify"))
        # the code of the next step: the enrolment above spent the current one
        await page.get_by_label(re.compile("code", re.I)).first.fill(totp.at(time.time() + 30))
        await page.get_by_role("button", name=re.compile("verify|continue|sign in", re.I)).click()
        await expect(page).to_have_url(re.compile(r"/apps$"))
        await expect(page.get_by_role("heading", name="Bella Bookings")).to_be_visible()
        await screenshot(page, "20-solutions-home")

        await page.get_by_role("link", name="Open Bella Bookings").click()
        await expect(page).to_have_url(f"{sample_url}/")
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            "Signed in as Client Owner (maria@bellavista.example)"
        )
        await expect(page.get_by_text("Bella Vista Bistro SARL").first).to_be_visible()
        await screenshot(page, "21-solution-signed-in")

        await page.get_by_role("button", name="Sign out").click()
        # the provider's logout, then back at the app signed out
        confirm = page.get_by_role("button", name=re.compile("sign out", re.I))
        if await confirm.count():
            await confirm.first.click()
        await expect(page).to_have_url(f"{sample_url}/")
        await expect(page.get_by_text(re.compile("Sign in with", re.I)).first).to_be_visible()
        await screenshot(page, "22-solution-signed-out")
        # and the portal session is over too
        await page.goto(f"{live_server}/a/{slug}/apps")
        await expect(page).to_have_url(re.compile(r"/login"))
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def test_signing_in_in_the_middle_of_an_apps_sign_in(
    client, make_agency, make_client, make_person, new_page, screenshot, live_server, monkeypatch
):
    """Starting at the app: its sign-in sends the browser to the portal's sign-in form, and
    submitting it must end in the app (the form's CSP `form-action` must allow that final
    redirect to the app's origin)."""
    from playwright.async_api import expect

    from services.sampleapp import create_sample_app
    from services.settings import get_settings

    monkeypatch.setattr(get_settings(), "base_url", live_server)
    agency = await make_agency(name="Northwind Digital")
    bella = await make_client(agency, legal_name="Bella Vista Bistro SARL")
    port = _free_port()
    sample_url = f"http://127.0.0.1:{port}"
    app = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=agency.headers,
            json={
                "name": "Bella Bookings",
                "redirect_uris": [f"{sample_url}/callback"],
                "post_logout_redirect_uris": [f"{sample_url}/"],
                "initiate_login_uri": f"{sample_url}/login",
                "solution": True,
                "first_party": True,
            },
        )
    ).json()
    await client.put(f"/api/v1/clients/{bella['id']}/solutions/{app['id']}", headers=agency.headers)
    await make_person(
        agency, "client_owner", client_id=bella["id"], email="maria@bellavista.example"
    )
    server, thread = _serve(
        create_sample_app(app["issuer"], app["id"], app["client_secret"], sample_url), port
    )
    try:
        page = await new_page()
        csp_errors: list[str] = []
        page.on(
            "console", lambda m: csp_errors.append(m.text) if "Content Security" in m.text else None
        )
        await page.goto(f"{sample_url}/")
        await page.get_by_role("link", name=re.compile("Sign in with")).click()
        await expect(page).to_have_url(
            re.compile(rf"{re.escape(live_server)}/a/{agency.slug}/login")
        )
        await page.get_by_label("Email").fill("maria@bellavista.example")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in", exact=True).click()
        await expect(page).to_have_url(f"{sample_url}/")
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            "maria@bellavista.example"
        )
        assert not csp_errors, csp_errors
        await screenshot(page, "23-solution-signed-in-from-the-app")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
