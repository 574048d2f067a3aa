"""Two-step sign-in with an authenticator app (TOTP) and recovery codes."""

from __future__ import annotations

import re
import time

import pyotp

SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')
CODES = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")


def _next_code(totp: pyotp.TOTP) -> str:
    """The next 30-second step's code (accepted for clock drift), not yet spent."""
    return totp.at(time.time() + 30)


async def _enrol(browser, slug) -> tuple[pyotp.TOTP, list[str]]:
    totp, codes, _ = await _enrol_page(browser, slug)
    return totp, codes


async def _enrol_page(browser, slug):  # type: ignore[no-untyped-def]
    started = await browser.submit(f"/a/{slug}/account", f"/a/{slug}/account/mfa/start", {})
    assert started.status_code == 303
    page = await browser.get(f"/a/{slug}/account")
    assert 'alt="QR code for your authenticator app"' in page.text
    totp = pyotp.TOTP(SECRET.search(page.text).group(1))
    wrong = await browser.submit(
        f"/a/{slug}/account",
        f"/a/{slug}/account/mfa/confirm",
        {"code": "000000" if totp.now() != "000000" else "111111"},
    )
    assert wrong.status_code == 422
    done = await browser.submit(
        f"/a/{slug}/account", f"/a/{slug}/account/mfa/confirm", {"code": totp.now()}
    )
    assert done.status_code == 200
    codes = CODES.findall(done.text)
    assert len(codes) == 10
    return totp, codes, done


async def test_enrol_then_sign_in_needs_the_code(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    totp, codes = await _enrol(owner, agency.slug)

    b = new_browser()
    first = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert first.status_code == 303 and first.headers["location"].endswith("/login/verify")
    # the password alone does not sign in
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code in (302, 303)
    bad = await b.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": "123456" if totp.now() != "123456" else "654321"},
    )
    assert bad.status_code == 401
    good = await b.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": _next_code(totp)},
    )
    assert good.status_code == 303
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 200

    # the same code cannot be used twice; a recovery code works once
    c = new_browser()
    await c.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    replay = await c.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": _next_code(totp)},
    )
    assert replay.status_code == 401
    rescue = await c.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": codes[0].upper()},
    )
    assert rescue.status_code == 303
    d = new_browser()
    await d.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    reused = await d.submit(
        f"/a/{agency.slug}/login/verify", f"/a/{agency.slug}/login/verify", {"code": codes[0]}
    )
    assert reused.status_code == 401


async def test_wrong_codes_are_throttled(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    totp, _ = await _enrol(owner, agency.slug)
    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    wrong = "000000" if totp.now() != "000000" else "111111"
    for _ in range(5):
        await b.submit(
            f"/a/{agency.slug}/login/verify", f"/a/{agency.slug}/login/verify", {"code": wrong}
        )
    locked = await b.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": _next_code(totp)},
    )
    assert locked.status_code == 429


async def test_a_reset_link_does_not_skip_the_second_factor(
    make_agency, owner_browser, new_browser, mailbox
):
    from tests.portal.test_password_reset import _request_link

    agency = await make_agency()
    owner = await owner_browser(agency)
    await _enrol(owner, agency.slug)
    b = new_browser()
    link = await _request_link(b, agency, agency.owner_email, mailbox)
    done = await b.submit(
        link, link, {"password": "after-reset-123", "password_confirm": "after-reset-123"}
    )
    assert done.status_code == 303 and "/login/verify" in done.headers["location"]
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code in (302, 303)


async def test_turn_off_and_sign_out_everywhere(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    _, codes = await _enrol(owner, agency.slug)
    off = await owner.submit(
        f"/a/{agency.slug}/account", f"/a/{agency.slug}/account/mfa/remove", {"code": codes[1]}
    )
    assert off.status_code == 303
    b = new_browser()
    assert (
        (await b.sign_in(agency.slug, agency.owner_email, agency.owner_password))
        .headers["location"]
        .endswith("/clients")
    )
    out = await owner.submit(
        f"/a/{agency.slug}/account", f"/a/{agency.slug}/account/sessions/revoke", {}
    )
    assert out.status_code == 303
    for browser in (owner, b):
        assert (await browser.get(f"/a/{agency.slug}/clients")).status_code in (302, 303)


async def test_the_secret_is_sealed_at_rest(make_agency, owner_browser):
    from sqlalchemy import select

    from services.identity.models import TotpCredential
    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency()
    owner = await owner_browser(agency)
    await owner.submit(f"/a/{agency.slug}/account", f"/a/{agency.slug}/account/mfa/start", {})
    secret = SECRET.search((await owner.get(f"/a/{agency.slug}/account")).text).group(1)
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        [row] = (await session.execute(select(TotpCredential))).scalars().all()
    assert secret not in row.secret_sealed and row.secret_sealed.startswith("v1:")


async def test_agency_policy_requires_everyone_to_set_it_up(
    client, make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    on = await client.patch("/api/v1/agency", headers=agency.headers, json={"mfa_required": True})
    assert on.status_code == 200 and on.json()["mfa_required"] is True
    b = new_browser()
    signed = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert signed.status_code == 303
    blocked = await b.get(f"/a/{agency.slug}/clients")
    assert blocked.status_code == 303 and blocked.headers["location"].endswith(
        "/account?required=1"
    )
    account = await b.get(f"/a/{agency.slug}/account?required=1")
    assert account.status_code == 200 and "requires two-step sign-in" in account.text
    held = b.http.cookies.get("sb_session")
    _, _, done = await _enrol_page(b, agency.slug)
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 200
    # the held session became a full one: a privilege change, so a new session id; the old
    # cookie is worth nothing, and the forms of the page that showed the codes work
    assert b.http.cookies.get("sb_session") not in (None, held)
    stale = new_browser()
    stale.http.cookies.set("sb_session", held, path=f"/a/{agency.slug}")
    assert (await stale.get(f"/a/{agency.slug}/clients")).status_code == 303
    token = re.search(r'name="csrf_token" value="([^"]+)"', done.text).group(1)
    out = await b.post(f"/a/{agency.slug}/logout", data={"csrf_token": token})
    assert out.status_code == 303, out.text[:300]
    # null is refused (the policy is never empty) and leaves it as it is; false turns it off
    refused = await client.patch(
        "/api/v1/agency", headers=agency.headers, json={"mfa_required": None}
    )
    assert refused.status_code == 422, refused.text
    kept = await client.get("/api/v1/agency", headers=agency.headers)
    assert kept.json()["mfa_required"] is True


async def test_policy_is_set_on_the_settings_page(make_agency, owner_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    page = await owner.get(f"/a/{agency.slug}/settings/branding")
    values = {
        "name": "Policy Co",
        "brand_primary_color": "#2563eb",
        "brand_accent_color": "#0f172a",
        "mfa_required": "on",
    }
    saved = await owner.submit(
        f"/a/{agency.slug}/settings/branding", f"/a/{agency.slug}/settings/branding", values
    )
    assert page.status_code == 200 and saved.status_code == 303
    assert (await owner.get(f"/a/{agency.slug}/clients")).status_code == 303  # now owed


def _session_of(browser, slug: str) -> str:
    return browser.http.cookies.get("sb_session", path=f"/a/{slug}/")


async def test_completing_the_second_factor_issues_a_new_session_id(
    make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    owner = await owner_browser(agency)
    totp, _ = await _enrol(owner, agency.slug)

    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    half_open = _session_of(b, agency.slug)
    good = await b.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": _next_code(totp)},
    )
    assert good.status_code == 303
    signed_in = _session_of(b, agency.slug)
    assert signed_in and signed_in != half_open  # the id changed with the privilege
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 200
    # the half-open id (e.g. planted by an attacker before the sign-in) is worth nothing now
    planted = new_browser()
    planted.http.cookies.set("sb_session", half_open, path=f"/a/{agency.slug}/")
    assert (await planted.get(f"/a/{agency.slug}/clients")).status_code == 303
    assert (
        (await planted.get(f"/a/{agency.slug}/login/verify")).headers["location"].endswith("/login")
    )
