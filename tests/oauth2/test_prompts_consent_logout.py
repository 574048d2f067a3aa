"""prompt (none, login, consent), max_age, consent remembered or pre-approved, and
RP-initiated logout."""

from __future__ import annotations

from datetime import timedelta

from services.kit.types import utcnow
from services.oauth2 import service
from tests.oauth2.conftest import LOGOUT_REDIRECT, REDIRECT, query_of, resumed


async def test_consent_is_asked_once_and_remembered(oidc, make_agency, client):
    agency = await make_agency()
    rp = await oidc.register(agency, name="Review Booster")
    b = await oidc.signed_in_browser(agency)
    page = await oidc.authorize(b, rp, scope="openid email")
    assert page.status_code == 200
    assert "Allow Review Booster?" in page.text and "See your e-mail address" in page.text
    assert "https://rp.example" in page.headers["content-security-policy"]
    done = await oidc.consent(b, page)
    assert done.status_code == 303 and query_of(done.headers["location"])["code"]

    again = await oidc.authorize(b, rp, scope="openid email")
    assert again.status_code == 302 and "code" in query_of(again.headers["location"])
    more = await oidc.authorize(b, rp, scope="openid email profile")  # a new scope: ask again
    assert more.status_code == 200 and "See your name" in more.text
    consents = (
        await client.get(
            "/api/v1/audit-events",
            headers=agency.headers,
            params={"action": "oauth_consent.created"},
        )
    ).json()["items"]
    assert len(consents) == 1


async def test_consent_denied_tells_the_client(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    page = await oidc.authorize(b, rp, state="st")
    denied = await oidc.consent(b, page, decision="deny")
    q = query_of(denied.headers["location"])
    assert denied.headers["location"].startswith(REDIRECT)
    assert q["error"] == "access_denied" and q["state"] == "st" and "code" not in q


async def test_consent_form_needs_csrf_and_a_signed_in_person(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    params = oidc.params(rp)
    forged = await b.post(f"/a/{agency.slug}/oauth2/consent", data={**params, "decision": "allow"})
    assert forged.status_code == 403 and "location" not in forged.headers
    anonymous = oidc.browser()
    page = await anonymous.get(f"/a/{agency.slug}/login")
    from tests.oauth2.conftest import csrf_of

    resp = await anonymous.post(
        f"/a/{agency.slug}/oauth2/consent",
        data={**params, "decision": "allow", "csrf_token": csrf_of(page.text)},
    )
    assert resp.status_code == 303 and "/login" in resp.headers["location"]


async def test_first_party_solutions_are_pre_approved(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, first_party=True)
    b = await oidc.signed_in_browser(agency)
    resp = await oidc.authorize(b, rp)
    assert resp.status_code == 302 and "code" in query_of(resp.headers["location"])
    forced = await oidc.authorize(b, rp, prompt="consent")  # unless the app asks for it
    assert forced.status_code == 200 and "oauth2/consent" in forced.text


async def test_prompt_none(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    anonymous = oidc.browser()
    resp = await oidc.authorize(anonymous, rp, prompt="none", state="a")
    q = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(REDIRECT)
    assert q["error"] == "login_required" and q["state"] == "a"

    b = await oidc.signed_in_browser(agency)
    resp = await oidc.authorize(b, rp, prompt="none")
    assert query_of(resp.headers["location"])["error"] == "consent_required"
    await oidc.code(b, rp)  # consent once
    resp = await oidc.authorize(b, rp, prompt="none")
    assert "code" in query_of(resp.headers["location"])
    resp = await oidc.authorize(b, rp, prompt="none login")
    assert query_of(resp.headers["location"])["error"] == "invalid_request"


async def test_prompt_login_forces_a_fresh_sign_in(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, first_party=True)
    b = await oidc.signed_in_browser(agency)
    old_cookie = b.cookies.get("sb_session")
    resp = await oidc.authorize(b, rp, prompt="login")
    assert resp.status_code == 303 and resp.headers["location"].startswith(
        f"/a/{agency.slug}/login?next="
    )
    assert query_of(resp.headers["location"])["reauth"] == "1"
    # a link from anywhere can send a browser here: the session is NOT ended by it
    assert b.cookies.get("sb_session") == old_cookie
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 200
    next_url = query_of(resp.headers["location"])["next"]
    # going on without signing in again does not skip the fresh sign-in
    skipped = await b.get(next_url)
    assert skipped.status_code == 303 and "/login?" in skipped.headers["location"]
    assert query_of(skipped.headers["location"])["reauth"] == "1"
    form = await b.get(f"/a/{agency.slug}/login", params={"next": next_url, "reauth": "1"})
    assert form.status_code == 200 and "sign in again" in form.text

    # the new sign-in succeeds: it replaces the old session, which is dead server-side
    await oidc.sign_in(b, agency, next_url=next_url, reauth=True)
    assert b.cookies.get("sb_session") not in (None, old_cookie)
    stale = oidc.browser()
    stale.cookies.set("sb_session", old_cookie, path=f"/a/{agency.slug}/")
    assert (await stale.get(f"/a/{agency.slug}/clients")).status_code == 303
    back = await b.get(next_url)  # no second prompt=login loop
    assert "code" in query_of(resumed(back))


async def test_a_request_naming_an_old_reauth_time_skips_nothing(oidc, make_agency):
    """The resumed request's sign-in time can only ask for a sign-in, never skip one."""
    agency = await make_agency()
    rp = await oidc.register(agency, first_party=True)
    b = await oidc.signed_in_browser(agency)
    resp = await oidc.authorize(b, rp, sb_reauth_after="1")  # long before: nothing asked
    assert resp.status_code == 302 and "code" in query_of(resp.headers["location"])
    future = str(int((utcnow() + timedelta(days=1)).timestamp() * 1000))
    resp = await oidc.authorize(b, rp, sb_reauth_after=future)
    assert resp.status_code == 303 and "/login?" in resp.headers["location"]
    assert await _session_is_alive(oidc, b, agency)


async def test_max_age(oidc, make_agency, monkeypatch):
    agency = await make_agency()
    rp = await oidc.register(agency, first_party=True)
    b = await oidc.signed_in_browser(agency)
    fresh = await oidc.authorize(b, rp, max_age="3600")
    assert fresh.status_code == 302 and "code" in query_of(fresh.headers["location"])
    bad = await oidc.authorize(b, rp, max_age="soon")
    assert query_of(bad.headers["location"])["error"] == "invalid_request"

    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(service, "utcnow", lambda: later)
    silent = await oidc.authorize(b, rp, max_age="3600", prompt="none")
    assert query_of(silent.headers["location"])["error"] == "login_required"
    stale = await oidc.authorize(b, rp, max_age="3600")
    assert stale.status_code == 303 and "/login?next=" in stale.headers["location"]
    monkeypatch.undo()

    next_url = query_of(stale.headers["location"])["next"]
    await oidc.sign_in(b, agency, next_url=next_url, reauth=True)
    back = await b.get(next_url)
    code = query_of(resumed(back))["code"]
    tokens = (await oidc.exchange(rp, code)).json()
    from joserfc import jwt
    from joserfc.jwk import KeySet

    keyset = KeySet.import_key_set((await oidc.api.get(f"/a/{agency.slug}/jwks.json")).json())
    claims = jwt.decode(tokens["id_token"], keyset).claims
    assert abs(claims["auth_time"] - utcnow().timestamp()) < 30


async def _session_is_alive(oidc, b, agency) -> bool:
    return (await b.get(f"/a/{agency.slug}/clients")).status_code == 200


async def test_logout_with_id_token_hint(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    tokens = await oidc.tokens(rp, b)
    resp = await b.get(
        f"/a/{agency.slug}/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_REDIRECT,
            "state": "bye1",
        },
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == f"{LOGOUT_REDIRECT}?state=bye1"
    assert not await _session_is_alive(oidc, b, agency)
    # the tokens issued in that browser session end with it
    assert (await oidc.refresh(rp, tokens["refresh_token"])).status_code == 400
    assert (await oidc.userinfo(agency, tokens["access_token"])).status_code == 401


async def test_logout_without_hint_asks_first(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    page = await b.get(
        f"/a/{agency.slug}/oauth2/logout",
        params={"client_id": rp.id, "post_logout_redirect_uri": LOGOUT_REDIRECT, "state": "s"},
    )
    assert page.status_code == 200 and "Sign out?" in page.text
    assert await _session_is_alive(oidc, b, agency)
    from tests.oauth2.conftest import csrf_of

    fields = {
        "client_id": rp.id,
        "post_logout_redirect_uri": LOGOUT_REDIRECT,
        "state": "s",
        "csrf_token": csrf_of(page.text),
    }
    forged = await b.post(f"/a/{agency.slug}/oauth2/logout", data={**fields, "csrf_token": "x"})
    assert forged.status_code == 403 and await _session_is_alive(oidc, b, agency)
    done = await b.post(f"/a/{agency.slug}/oauth2/logout", data=fields)
    assert done.status_code == 303 and done.headers["location"] == f"{LOGOUT_REDIRECT}?state=s"
    assert not await _session_is_alive(oidc, b, agency)


async def test_logout_never_redirects_to_an_unregistered_address(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    tokens = await oidc.tokens(rp, b)
    resp = await b.get(
        f"/a/{agency.slug}/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )
    assert resp.status_code == 200 and "location" not in resp.headers
    assert "You are signed out" in resp.text
    bad = await b.get(
        f"/a/{agency.slug}/oauth2/logout",
        params={"id_token_hint": "not.a.token", "post_logout_redirect_uri": LOGOUT_REDIRECT},
    )
    assert bad.status_code == 400 and "location" not in bad.headers


async def test_logout_hint_from_another_agency_is_refused(oidc, make_agency):
    a, other = await make_agency(), await make_agency()
    rp_other = await oidc.register(other)
    foreign = await oidc.tokens(rp_other)
    b = await oidc.signed_in_browser(a)
    resp = await b.get(
        f"/a/{a.slug}/oauth2/logout",
        params={"id_token_hint": foreign["id_token"], "post_logout_redirect_uri": LOGOUT_REDIRECT},
    )
    assert resp.status_code == 400 and "location" not in resp.headers
    assert await _session_is_alive(oidc, b, a)


async def test_login_hint_for_someone_else_asks_to_sign_in_again(oidc, make_agency):
    agency = await make_agency()
    rp = await oidc.register(agency, first_party=True)
    b = await oidc.signed_in_browser(agency)
    # the hint names the signed-in person: straight through
    same = await oidc.authorize(b, rp, login_hint=agency.owner_email.upper())
    assert same.status_code == 302 and "code" in query_of(same.headers["location"])
    # prompt=none with someone else hinted: login_required, back to the app
    quiet = await oidc.authorize(b, rp, login_hint="maria@elsewhere.example", prompt="none")
    assert query_of(quiet.headers["location"])["error"] == "login_required"
    # otherwise: the sign-in page comes (the session lives until a new sign-in replaces it),
    # the hint not resumed
    before = b.cookies.get("sb_session")
    other = await oidc.authorize(b, rp, login_hint="maria@elsewhere.example")
    assert other.status_code == 303 and "/login?next=" in other.headers["location"]
    assert b.cookies.get("sb_session") == before and await _session_is_alive(oidc, b, agency)
    next_url = query_of(other.headers["location"])["next"]
    await oidc.sign_in(b, agency, next_url=next_url, reauth=True)
    assert b.cookies.get("sb_session") != before
    back = await b.get(next_url)  # the person chose to sign in as themselves: no loop
    assert "code" in query_of(resumed(back))


async def test_a_bare_cross_site_logout_request_signs_nobody_out(oidc, make_agency):
    """RP-initiated logout may come as a GET from anywhere: without a valid id_token_hint it
    only asks; the sign-out itself is the confirmation form (POST with its token)."""
    agency = await make_agency()
    rp = await oidc.register(agency)
    b = await oidc.signed_in_browser(agency)
    cross_site = {"referer": "https://evil.example/", "sec-fetch-site": "cross-site"}
    for params in ({}, {"client_id": rp.id}, {"post_logout_redirect_uri": LOGOUT_REDIRECT}):
        resp = await b.get(f"/a/{agency.slug}/oauth2/logout", params=params, headers=cross_site)
        assert resp.status_code == 200 and "Sign out?" in resp.text, (params, resp.status_code)
        assert "sb_session" not in resp.headers.get("set-cookie", "")
        assert await _session_is_alive(oidc, b, agency)
    no_token = await b.post(f"/a/{agency.slug}/oauth2/logout", data={"client_id": rp.id})
    assert no_token.status_code == 403 and await _session_is_alive(oidc, b, agency)
