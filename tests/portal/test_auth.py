"""Portal sign-in, sessions, redirects, CSRF on the sign-in forms, error pages, headers."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest

from services.settings import get_settings
from tests.portal.conftest import csrf_of


def _set_cookie(resp, name: str) -> str:
    found = [
        v for k, v in resp.headers.multi_items() if k == "set-cookie" and v.startswith(name + "=")
    ]
    assert found, f"no {name} cookie set"
    return found[0]


async def test_sign_in_page_labels_and_security_headers(make_agency, new_browser):
    agency = await make_agency(name="Acme Growth")
    b = new_browser()
    resp = await b.get(f"/a/{agency.slug}/login")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert "Acme Growth" in html
    assert 'name="csrf_token"' in html
    csp = resp.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["referrer-policy"] == "same-origin"
    csrf_cookie = _set_cookie(resp, "sb_csrf").lower()
    assert "httponly" in csrf_cookie and "samesite=lax" in csrf_cookie
    assert f"path=/a/{agency.slug}/" in csrf_cookie
    assert "cdn" not in html.lower() and "https://" not in html.split("<body")[0]


async def test_sign_in_sets_a_hardened_session_cookie_and_lands_on_clients(
    make_agency, new_browser
):
    agency = await make_agency()
    b = new_browser()
    resp = await b.sign_in(agency.slug, agency.owner_email.upper(), agency.owner_password)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/a/{agency.slug}/clients"
    cookie = _set_cookie(resp, "sb_session")
    flags = [p.strip().lower() for p in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert f"path=/a/{agency.slug}/" in flags
    assert "secure" not in flags  # http:// base URL in tests
    assert not any(f.startswith("max-age") for f in flags)  # a browser-session cookie
    page = await b.get(f"/a/{agency.slug}/clients")
    assert page.status_code == 200 and "Clients" in page.text


async def test_session_cookie_is_secure_behind_https(make_agency, new_browser, monkeypatch):
    agency = await make_agency()
    monkeypatch.setattr(get_settings(), "base_url", "https://testserver")
    b = new_browser("https://testserver")
    resp = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert resp.status_code == 303
    flags = [p.strip().lower() for p in _set_cookie(resp, "sb_session").split(";")]
    assert "secure" in flags


async def test_failed_sign_in_does_not_tell_which_part_was_wrong(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    wrong_password = await b.sign_in(agency.slug, agency.owner_email, "not-the-password-1")
    unknown_email = await b.sign_in(agency.slug, "nobody@nowhere.example", "not-the-password-1")
    for resp in (wrong_password, unknown_email):
        assert resp.status_code == 401
        assert "do not match an account" in resp.text
        assert "sb_session=" not in resp.headers.get("set-cookie", "")
    assert f'value="{agency.owner_email}"' in wrong_password.text  # the e-mail is kept
    empty = await b.sign_in(agency.slug, "", "")
    assert empty.status_code == 401 and "Enter your e-mail address" in empty.text
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 303


async def test_unauthenticated_pages_redirect_to_sign_in_and_back(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    resp = await b.get(f"/a/{agency.slug}/clients?stage=active")
    assert resp.status_code == 303
    location = urlsplit(resp.headers["location"])
    assert location.path == f"/a/{agency.slug}/login"
    target = parse_qs(location.query)["next"][0]
    assert target == f"/a/{agency.slug}/clients?stage=active"
    login_page = await b.get(resp.headers["location"])
    assert f'name="next" value="{target}"' in login_page.text.replace("&amp;", "&")
    signed = await b.post(
        f"/a/{agency.slug}/login",
        {
            "email": agency.owner_email,
            "password": agency.owner_password,
            "next": target,
            "csrf_token": csrf_of(login_page.text),
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == target
    for path in ("", "/", "/team", "/settings/branding", "/clients/new"):
        anonymous = new_browser()
        assert (await anonymous.get(f"/a/{agency.slug}{path}")).status_code == 303


async def test_htmx_requests_are_sent_to_sign_in_with_hx_redirect(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    resp = await b.get(
        f"/a/{agency.slug}/clients?q=x",
        headers={
            "HX-Request": "true",
            "HX-Target": "results",
            "HX-Current-URL": f"http://testserver/a/{agency.slug}/clients?q=x",
        },
    )
    assert resp.status_code == 204
    assert resp.headers["hx-redirect"].startswith(f"/a/{agency.slug}/login?next=")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example/a/x/",
        "/\\evil.example",
        "javascript:alert(1)",
        "https://evil.example/a/{slug}/clients",
        "/a/other-agency/clients",
        "/a/{slug}/../../x",
        "http://testserver/a/{slug}/clients",
    ],
)
async def test_next_never_leaves_the_agency_portal(make_agency, new_browser, target):
    agency = await make_agency()
    target = target.replace("{slug}", agency.slug)
    b = new_browser()
    page = await b.get(f"/a/{agency.slug}/login", params={"next": target})
    assert page.status_code == 200
    assert 'name="next"' not in page.text
    resp = await b.post(
        f"/a/{agency.slug}/login",
        {
            "email": agency.owner_email,
            "password": agency.owner_password,
            "next": target,
            "csrf_token": csrf_of(page.text),
        },
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/a/{agency.slug}/clients"


async def test_sign_in_form_requires_its_csrf_token(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    await b.get(f"/a/{agency.slug}/login")  # has a CSRF cookie now
    creds = {"email": agency.owner_email, "password": agency.owner_password}
    missing = await b.post(f"/a/{agency.slug}/login", creds)
    other = new_browser()
    foreign_token = await other.csrf(f"/a/{agency.slug}/login")
    mismatched = await b.post(f"/a/{agency.slug}/login", {**creds, "csrf_token": foreign_token})
    forged = await b.post(f"/a/{agency.slug}/login", {**creds, "csrf_token": "0" * 64})
    token = await b.csrf(f"/a/{agency.slug}/login")
    cross_site = await b.post(
        f"/a/{agency.slug}/login",
        {**creds, "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    no_cookie = new_browser()
    cookieless = await no_cookie.post(f"/a/{agency.slug}/login", {**creds, "csrf_token": token})
    for resp in (missing, mismatched, forged, cross_site, cookieless):
        assert resp.status_code == 403
        assert resp.headers["content-type"].startswith("text/html")
        assert "This form has expired" in resp.text
        assert "sb_session=" not in resp.headers.get("set-cookie", "")
    ok = await b.post(
        f"/a/{agency.slug}/login",
        {**creds, "csrf_token": token},
        headers={"origin": "http://testserver"},
    )
    assert ok.status_code == 303


async def test_sign_out_needs_csrf_and_revokes_the_session(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    session_value = b.http.cookies.get("sb_session")
    assert session_value
    refused = await b.post(f"/a/{agency.slug}/logout", {"csrf_token": "nope"})
    assert refused.status_code == 403
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 200  # still signed in
    out = await b.submit(f"/a/{agency.slug}/clients", f"/a/{agency.slug}/logout", {})
    assert out.status_code == 303 and out.headers["location"] == f"/a/{agency.slug}/login"
    assert "sb_session=" in out.headers["set-cookie"]  # cleared
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 303
    login = await b.get(f"/a/{agency.slug}/login")
    assert "You are signed out" in login.text
    replay = new_browser()
    replay.http.cookies.set(
        "sb_session", session_value, domain="testserver", path=f"/a/{agency.slug}/"
    )
    assert (await replay.get(f"/a/{agency.slug}/clients")).status_code == 303


async def test_unknown_and_suspended_portals_are_404_pages(
    client, make_agency, new_browser, operator_headers
):
    b = new_browser()
    for path in (
        f"/a/no-such-{secrets.token_hex(3)}/login",
        "/a/UPPER/login",
        "/a/" + "x" * 80 + "/login",
    ):
        resp = await b.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("text/html")
        assert "Page not found" in resp.text
    agency = await make_agency()
    resp = await client.patch(
        f"/api/v1/agencies/{agency.public_id}",
        headers=operator_headers,
        json={"status": "suspended"},
    )
    assert resp.status_code == 200
    assert (await b.get(f"/a/{agency.slug}/login")).status_code == 404
    unrouted = await b.get(f"/a/{agency.slug}/no/such/page")
    assert unrouted.status_code == 404 and "Page not found" in unrouted.text
    api_style = await client.get("/a/whatever/no/such/page")
    assert api_style.headers["content-type"] == "application/problem+json"


async def test_a_client_user_signs_in_and_out(client, make_agency, make_client, make_person):
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Shop")
    browser, _ = await make_person(agency, "client_owner", client_id=shop["id"])
    assert (await browser.get(f"/a/{agency.slug}/clients/{shop['id']}")).status_code == 200
    token = await browser.csrf(f"/a/{agency.slug}/clients/{shop['id']}")
    out = await browser.post(f"/a/{agency.slug}/logout", {"csrf_token": token})
    assert out.status_code == 303
    assert (await browser.get(f"/a/{agency.slug}/clients")).status_code in (302, 303)
    events = (
        await client.get(
            "/api/v1/audit-events", headers=agency.headers, params={"action": "auth.logout"}
        )
    ).json()["items"]
    assert len(events) == 1


async def test_no_cross_site_get_signs_anyone_out(make_agency, owner_browser):
    """Sign-out is a POST with the form token; a link or an <img> on another site cannot
    end a session."""
    agency = await make_agency()
    b = await owner_browser(agency)
    base = f"/a/{agency.slug}"
    cross_site = {"referer": "https://evil.example/", "sec-fetch-site": "cross-site"}
    # the end of a "view as" with no view running: nothing to end, the session stays
    over = await b.get(f"{base}/impersonation/over", headers=cross_site)
    assert over.status_code == 303
    assert "sb_session" not in over.headers.get("set-cookie", "")
    assert (await b.get(f"{base}/clients")).status_code == 200
    # the sign-out routes take no GET
    for path in ("/logout", "/account/sessions/revoke", "/impersonation/end"):
        resp = await b.get(base + path, headers=cross_site)
        assert resp.status_code == 405, (path, resp.status_code)
        assert (await b.get(f"{base}/clients")).status_code == 200
    # ... and no POST without the form's token
    forged = await b.post(f"{base}/logout", {}, headers={"origin": "https://evil.example"})
    assert forged.status_code == 403
    assert (await b.get(f"{base}/clients")).status_code == 200
