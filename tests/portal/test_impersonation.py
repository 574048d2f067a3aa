"""Audited impersonation ("View as a client user"): who may start it, what the view can and
cannot do, how it ends (End now, time limit, sign-out, lost permission), and who can read the
audit entries it leaves."""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlencode

import httpx
import pytest

from services.identity.models import Impersonation, UserSession
from services.kit import ids
from services.kit.types import utcnow
from services.portal.auth import SignedIn
from services.portal.routing import PortalRoute
from tenants.roles import ROLE_PERMISSIONS, Permission, Role
from tests.oauth2.conftest import pkce
from tests.portal.conftest import PASSWORD

REASON = "Maria asked why the booking widget shows no free tables"


# ---- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def person(client, new_browser):
    """Invite a named person and accept in a fresh browser: `(browser, user_id)`."""

    async def make(agency, role: str, name: str, client_id: str | None = None):
        email = f"{name.split()[0].lower()}-{secrets.token_hex(3)}@people.example"
        body = {"email": email, "role": role, "name": name}
        if client_id:
            body["client_id"] = client_id
        resp = await client.post("/api/v1/invitations", headers=agency.headers, json=body)
        assert resp.status_code == 201, resp.text
        path = httpx.URL(resp.json()["url"]).path
        b = new_browser()
        accepted = await b.submit(
            path, path, {"name": name, "password": PASSWORD, "password_confirm": PASSWORD}
        )
        assert accepted.status_code == 303, accepted.text[:800]
        users = (
            await client.get("/api/v1/users", headers=agency.headers, params={"limit": 200})
        ).json()["items"]
        return b, next(u["id"] for u in users if u["email"] == email), email

    return make


@pytest.fixture
async def world(client, make_agency, make_client, owner_browser, person):
    """An agency with Bella Vista Bistro (Maria Rossi owns it, Luca works there), another
    client (Hugo owns it), and Sam, staff assigned to Bella Vista only."""
    agency = await make_agency(name="Northwind Digital")
    bella = await make_client(
        agency, legal_name="Bella Vista Bistro SARL", display_name="Bella Vista Bistro"
    )
    other = await make_client(agency, legal_name="Harbor Lane Florist")
    maria, maria_id, maria_email = await person(agency, "client_owner", "Maria Rossi", bella["id"])
    luca, luca_id, _ = await person(agency, "client_member", "Luca Bianchi", bella["id"])
    hugo, hugo_id, _ = await person(agency, "client_owner", "Hugo Hart", other["id"])
    sam, sam_id, sam_email = await person(agency, "agency_staff", "Sam Staff")
    assigned = await client.patch(
        f"/api/v1/clients/{bella['id']}", headers=agency.headers, json={"assigned_staff": [sam_id]}
    )
    assert assigned.status_code == 200, assigned.text
    owner = await owner_browser(agency)
    return {
        "agency": agency,
        "base": f"/a/{agency.slug}",
        "bella": bella,
        "other": other,
        "owner": owner,
        "maria": maria,
        "maria_id": maria_id,
        "maria_email": maria_email,
        "luca": luca,
        "luca_id": luca_id,
        "hugo": hugo,
        "hugo_id": hugo_id,
        "sam": sam,
        "sam_id": sam_id,
        "sam_email": sam_email,
    }


async def _start(browser, w, *, user_id=None, reason=REASON, minutes="30", token_page=None):
    page = f"{w['base']}/clients/{w['bella']['id']}"
    return await browser.submit(
        token_page or page,
        f"{page}/impersonate",
        {"user_id": user_id or w["maria_id"], "reason": reason, "minutes": minutes},
    )


def _session_cookie(browser) -> str | None:
    return browser.http.cookies.get("sb_session")


async def _events(client, agency, action: str, headers=None) -> list[dict]:
    resp = await client.get(
        "/api/v1/audit-events", headers=headers or agency.headers, params={"action": action}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def _edit(agency, model, row_id, **values) -> None:
    """Change a row directly (moving the clock)."""
    from sqlalchemy import select

    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        row = (await session.execute(select(model).where(model.id == row_id))).scalar_one()
        for key, value in values.items():
            setattr(row, key, value)


def _imp_id(event: dict):
    return ids.decode("imp", event["target_id"])


# ---- the permission ---------------------------------------------------------------------------


def test_the_permission_is_agency_only():
    for role in (Role.AGENCY_OWNER, Role.AGENCY_ADMIN, Role.AGENCY_STAFF):
        assert Permission.CLIENTS_IMPERSONATE in ROLE_PERMISSIONS[role]
    for role in (Role.CLIENT_OWNER, Role.CLIENT_MEMBER):
        assert Permission.CLIENTS_IMPERSONATE not in ROLE_PERMISSIONS[role]


# ---- start --------------------------------------------------------------------------------------


async def test_staff_sees_the_clients_portal_as_the_person_with_a_banner(client, world):
    w = world
    sam, base = w["sam"], w["base"]
    page = await sam.get(f"{base}/clients/{w['bella']['id']}")
    assert "View as a client user" in page.text
    assert "Maria Rossi · Client owner" in page.text and "Luca Bianchi" in page.text
    assert "Hugo Hart" not in page.text and "Sam Staff ·" not in page.text
    own_token = _session_cookie(sam)

    started = await _start(sam, w)
    assert started.status_code == 303, started.text[:800]
    assert started.headers["location"] == f"{base}/apps"
    assert _session_cookie(sam) != own_token  # a new session; the staff one is kept sealed
    assert sam.http.cookies.get("sb_imp_return")
    assert own_token not in sam.http.cookies.get("sb_imp_return")

    home = await sam.get(f"{base}/apps")
    assert home.status_code == 200
    assert (
        "You are viewing <strong>Bella Vista Bistro</strong> as <strong>Maria Rossi</strong>"
        in (home.text)
    )
    assert REASON in home.text and "ends at" in home.text and "End now" in home.text
    # exactly Maria's view: her one client, her role, nothing of the agency
    record = await sam.get(f"{base}/clients/{w['bella']['id']}")
    assert record.status_code == 200 and "You are viewing" in record.text
    assert "View as a client user" not in record.text  # never nested
    assert (await sam.get(f"{base}/clients/{w['other']['id']}")).status_code == 404
    assert (await sam.get(f"{base}/clients/new")).status_code == 403
    assert (await sam.get(f"{base}/settings/branding")).status_code == 403
    team = await sam.get(f"{base}/team")
    assert "Luca Bianchi" in team.text and "Hugo Hart" not in team.text
    # the banner is on every page of the shell, error pages included
    assert "You are viewing" in (await sam.get(f"{base}/clients/new")).text

    [event] = await _events(client, w["agency"], "impersonation.started")
    assert event["actor_label"] == w["sam_email"] and event["actor_type"] == "user"
    assert event["client_id"] == w["bella"]["id"]
    assert event["target_id"].startswith("imp_")
    data = event["data"]
    assert data["user_id"] == w["maria_id"] and data["user_name"] == "Maria Rossi"
    assert data["reason"] == REASON and data["minutes"] == 30 and data["role"] == "client_owner"
    assert data["expires_at"]


async def test_the_view_never_has_more_than_the_staff_members_own_permissions(world):
    w = world
    base, bella = w["base"], w["bella"]["id"]
    # Maria herself (client owner) reads her client's activity and the agency's access ...
    own = await w["maria"].get(f"{base}/clients/{bella}")
    assert "Recent activity" in own.text and "Access by your agency" in own.text
    # ... staff, who may not read the audit trail, do not get it by viewing as her.
    assert (await _start(w["sam"], w)).status_code == 303
    as_maria = await w["sam"].get(f"{base}/clients/{bella}")
    assert as_maria.status_code == 200 and "You are viewing" in as_maria.text
    assert "Recent activity" not in as_maria.text and "Access by your agency" not in as_maria.text
    # the agency owner, who may, does
    assert (await _start(w["owner"], w)).status_code == 303
    owner_as_maria = await w["owner"].get(f"{base}/clients/{bella}")
    assert "Access by your agency" in owner_as_maria.text


async def test_a_reason_is_required_and_the_duration_is_capped(client, world):
    w = world
    for values, field, message in (
        ({"reason": ""}, "reason", "at least 5 characters"),
        ({"reason": "   hi  "}, "reason", "at least 5 characters"),
        ({"reason": "x" * 501}, "reason", "under 500 characters"),
        ({"minutes": "120"}, "minutes", "choose 15, 30 or 60 minutes"),
        ({"minutes": "45"}, "minutes", "choose 15, 30 or 60 minutes"),
        ({"minutes": "sixty"}, "minutes", "choose 15, 30 or 60 minutes"),
    ):
        resp = await _start(w["owner"], w, **values)
        assert resp.status_code == 422, (values, resp.status_code)
        assert message.capitalize() in resp.text or message in resp.text, values
        assert f'id="{field}-error"' in resp.text, values
        assert "You are viewing" not in resp.text
    assert await _events(client, w["agency"], "impersonation.started") == []

    assert (await _start(w["owner"], w, minutes="60", reason="x" * 500)).status_code == 303
    [event] = await _events(client, w["agency"], "impersonation.started")
    from datetime import datetime

    expires = datetime.fromisoformat(event["data"]["expires_at"])
    assert (
        timedelta(minutes=59)
        < expires - datetime.fromisoformat(event["occurred_at"])
        <= (timedelta(minutes=60))
    )


async def test_who_may_not_start(client, world, make_agency, owner_browser, person):
    w = world
    agency, base, bella = w["agency"], w["base"], w["bella"]["id"]
    # staff of another agency: the client does not exist for them, at their address or ours
    other_agency = await make_agency()
    intruder = await owner_browser(other_agency)
    there = await intruder.submit(
        f"/a/{other_agency.slug}/clients",
        f"/a/{other_agency.slug}/clients/{bella}/impersonate",
        {"user_id": w["maria_id"], "reason": REASON, "minutes": "30"},
    )
    assert there.status_code == 404
    here = await intruder.post(
        f"{base}/clients/{bella}/impersonate", {"user_id": w["maria_id"], "reason": REASON}
    )
    assert here.status_code in (303, 403)
    # staff not assigned to the client: 404, and no form on a page they cannot see anyway
    unassigned, _, _ = await person(agency, "agency_staff", "Una Signed")
    assert (await _start(unassigned, w, token_page=f"{base}/clients")).status_code == 404
    # the client's own people: no such permission at all
    for browser in (w["maria"], w["luca"]):
        page = await browser.get(f"{base}/clients/{bella}")
        assert "View as a client user" not in page.text
        token = await browser.csrf(f"{base}/clients/{bella}")
        resp = await browser.post(
            f"{base}/clients/{bella}/impersonate",
            {"user_id": w["luca_id"], "reason": REASON, "csrf_token": token},
        )
        assert resp.status_code == 403
    # nobody but the client's people: another client's, the agency's, oneself, made-up ids
    owner_id = agency.owner_user_id
    for user_id in (w["hugo_id"], w["sam_id"], owner_id, "usr_nope", ""):
        resp = await _start(w["owner"], w, user_id=user_id or "-")
        assert resp.status_code == 422, user_id
        assert "Choose one of this client&#39;s people" in resp.text
    assert (await _start(w["sam"], w, user_id=w["sam_id"])).status_code == 422
    # without a CSRF token nothing happens
    bare = await w["owner"].post(
        f"{base}/clients/{bella}/impersonate", {"user_id": w["maria_id"], "reason": REASON}
    )
    assert bare.status_code == 403
    assert await _events(client, agency, "impersonation.started") == []


async def test_a_person_who_also_holds_an_agency_role_is_never_viewed_as(client, world):
    w = world
    # Luca becomes agency staff as well (and stays a member of Bella Vista)
    made = await client.post(
        "/api/v1/memberships",
        headers=w["agency"].headers,
        json={"user_id": w["luca_id"], "role": "agency_staff"},
    )
    assert made.status_code == 201, made.text
    # Sam's client scope hides agency memberships: the check runs agency-wide anyway
    refused = await _start(w["sam"], w, user_id=w["luca_id"])
    assert refused.status_code == 422
    assert (await _start(w["owner"], w, user_id=w["luca_id"])).status_code == 422


async def test_staff_may_not_view_as_someone_who_also_works_for_another_client(client, world):
    """Who may act on whom is `identity.access`'s one rule: assigned staff act only on people
    whose every role lies on their own clients, and viewing as someone is acting as them."""
    w = world
    # Luca also owns Harbor Lane, which is not Sam's
    made = await client.post(
        "/api/v1/memberships",
        headers=w["agency"].headers,
        json={"user_id": w["luca_id"], "role": "client_owner", "client_id": w["other"]["id"]},
    )
    assert made.status_code == 201, made.text
    refused = await _start(w["sam"], w, user_id=w["luca_id"])
    assert refused.status_code == 403
    assert "works outside your clients" in refused.text
    assert await _events(client, w["agency"], "impersonation.started") == []
    # the agency's owner is not limited to some clients
    assert (await _start(w["owner"], w, user_id=w["luca_id"])).status_code == 303


async def test_the_view_ends_when_the_person_starts_working_for_another_client(client, world):
    w = world
    sam, base = w["sam"], w["base"]
    assert (await _start(sam, w)).status_code == 303
    made = await client.post(
        "/api/v1/memberships",
        headers=w["agency"].headers,
        json={"user_id": w["maria_id"], "role": "client_member", "client_id": w["other"]["id"]},
    )
    assert made.status_code == 201, made.text
    resp = await sam.get(f"{base}/apps")
    assert resp.headers["location"] == f"{base}/impersonation/over"
    await sam.get(f"{base}/impersonation/over")
    [event] = await _events(client, w["agency"], "impersonation.ended")
    assert event["data"]["how"] == "revoked"


# ---- while viewing ----------------------------------------------------------------------------


async def test_sensitive_actions_are_refused_with_a_clear_message(client, world):
    w = world
    base = w["base"]
    # Maria has begun setting up an authenticator app: its secret is hers alone
    maria_account = await w["maria"].submit(f"{base}/account", f"{base}/account/mfa/start", {})
    assert maria_account.status_code == 303
    secret_page = await w["maria"].get(f"{base}/account")
    assert 'class="secret"' in secret_page.text
    app = (
        await client.post(
            "/api/v1/oauth-clients",
            headers=w["agency"].headers,
            json={
                "name": "Table Bookings",
                "redirect_uris": ["https://bookings.example/cb"],
                "solution": True,
                "first_party": True,
                "initiate_login_uri": "https://bookings.example/login",
            },
        )
    ).json()
    enabled = await client.put(
        f"/api/v1/clients/{w['bella']['id']}/solutions/{app['id']}", headers=w["agency"].headers
    )
    assert enabled.status_code == 204
    inv = (
        await client.post(
            "/api/v1/invitations",
            headers=w["agency"].headers,
            json={
                "email": "new@people.example",
                "role": "client_member",
                "client_id": w["bella"]["id"],
            },
        )
    ).json()
    invite_path = httpx.URL(inv["url"]).path

    sam = w["sam"]
    assert (await _start(sam, w)).status_code == 303
    account = await sam.get(f"{base}/account")
    assert account.status_code == 200 and "You are viewing" in account.text
    assert "cannot be seen or changed while you view the portal as them" in account.text
    assert 'class="secret"' not in account.text and "QR code" not in account.text
    assert "Sign out everywhere" not in account.text and "Add a passkey" not in account.text

    token = await sam.csrf(f"{base}/account")
    for path, body in (
        ("/account/mfa/start", {}),
        ("/account/mfa/confirm", {"code": "123456"}),
        ("/account/mfa/remove", {"code": "123456"}),
        ("/account/sessions/revoke", {}),
        ("/account/passkeys/pk_1/rename", {"name": "mine"}),
        ("/account/passkeys/pk_1/remove", {"password": PASSWORD}),
    ):
        resp = await sam.post(f"{base}{path}", {**body, "csrf_token": token})
        assert resp.status_code == 403, (path, resp.status_code)
        assert "not possible while you view the portal as someone else" in resp.text, path
    for path in ("/account/passkeys/options", "/account/passkeys"):
        resp = await sam.post(
            f"{base}{path}",
            content=b"{}",
            headers={"content-type": "application/json", "x-csrf-token": token},
        )
        assert resp.status_code == 403, path
    # accepting an invitation, or setting a password from a reset link, in this browser
    invite_token = await sam.csrf(invite_path)
    accept = await sam.post(
        invite_path,
        {
            "name": "X",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "csrf_token": invite_token,
        },
    )
    assert accept.status_code == 403 and "not possible while you view" in accept.text
    reset_token = await sam.csrf(f"{base}/forgot")
    reset = await sam.post(
        f"{base}/reset/{'a' * 40}",
        {"password": PASSWORD + "x", "password_confirm": PASSWORD + "x", "csrf_token": reset_token},
    )
    assert reset.status_code == 403
    # solutions: listed, but not opened; the provider refuses to sign anyone in from here
    apps = await sam.get(f"{base}/apps")
    assert "Solutions cannot be opened while you view the portal as Maria Rossi" in apps.text
    assert f"/apps/{app['id']}/open" not in apps.text
    opened = await sam.get(f"{base}/apps/{app['id']}/open")
    assert opened.status_code == 403 and "Solutions cannot be opened" in opened.text
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": app["id"],
        "redirect_uri": "https://bookings.example/cb",
        "scope": "openid",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    authorize = await sam.get(f"{base}/oauth2/authorize?{urlencode(params)}")
    assert authorize.status_code == 403 and "location" not in authorize.headers
    assert "Solutions cannot be opened" in authorize.text

    # nothing changed for Maria: still signed in, her pending set-up and the invitation intact
    still = await w["maria"].get(f"{base}/account")
    assert still.status_code == 200 and 'class="secret"' in still.text
    pending = (
        await client.get(f"/api/v1/invitations/{inv['id']}", headers=w["agency"].headers)
    ).json()
    assert pending["status"] == "pending"


async def test_writes_while_viewing_name_the_real_actor(client, world):
    w = world
    base, bella = w["base"], w["bella"]["id"]
    assert (await _start(w["owner"], w)).status_code == 303
    saved = await w["owner"].submit(
        f"{base}/clients/{bella}/edit",
        f"{base}/clients/{bella}/edit",
        {
            "legal_name": "Bella Vista Bistro SARL",
            "display_name": "Bella Vista Bistro",
            "phone": "+33 1 42 68 53 00",
            "timezone": "Europe/Paris",
        },
    )
    assert saved.status_code == 303, saved.text[:800]
    [updated] = await _events(client, w["agency"], "client.updated")
    owner_email = w["agency"].owner_email
    assert updated["actor_label"] == f"{owner_email} (as {w['maria_email']})"
    assert updated["data"]["impersonating"]["user_id"] == w["maria_id"]
    assert updated["data"]["impersonating"]["impersonation_id"].startswith("imp_")
    assert "phone" in updated["data"]
    # the activity feed tells what changed, and who really did it
    page = await w["maria"].get(f"{base}/clients/{bella}")
    assert "Updated phone" in page.text and "Updated phone, impersonating" not in page.text
    assert f"{owner_email} (as {w['maria_email']})" in page.text


# ---- how it ends ------------------------------------------------------------------------------


async def test_end_now_restores_the_staff_session(client, world, new_browser):
    w = world
    sam, base, bella = w["sam"], w["base"], w["bella"]["id"]
    own_token = _session_cookie(sam)
    assert (await _start(sam, w)).status_code == 303
    viewing_token = _session_cookie(sam)
    ended = await sam.submit(f"{base}/apps", f"{base}/impersonation/end", {})
    assert ended.status_code == 303
    assert ended.headers["location"] == f"{base}/clients/{bella}"
    assert _session_cookie(sam) == own_token
    assert not sam.http.cookies.get("sb_imp_return")
    back = await sam.get(ended.headers["location"])
    assert back.status_code == 200 and "You are viewing" not in back.text
    assert "You stopped viewing as a client user" in back.text
    assert "View as a client user" in back.text  # Sam, with Sam's permissions
    # the viewing session is dead
    thief = new_browser()
    thief.http.cookies.set("sb_session", viewing_token, path=f"{base}/")
    gone = await thief.get(f"{base}/apps")
    assert gone.status_code == 303
    [event] = await _events(client, w["agency"], "impersonation.ended")
    assert event["data"]["how"] == "ended" and event["client_id"] == bella
    assert event["actor_label"] == f"{w['sam_email']} (as {w['maria_email']})"


async def test_the_time_limit_ends_it_and_gives_the_staff_member_back(client, world):
    w = world
    sam, base, bella = w["sam"], w["base"], w["bella"]["id"]
    own_token = _session_cookie(sam)
    assert (await _start(sam, w, minutes="15")).status_code == 303
    assert (await sam.get(f"{base}/apps")).status_code == 200
    [started] = await _events(client, w["agency"], "impersonation.started")
    await _edit(w["agency"], Impersonation, _imp_id(started), expires_at=utcnow())

    resp = await sam.get(f"{base}/apps")
    assert resp.status_code == 303 and resp.headers["location"] == f"{base}/impersonation/over"
    over = await sam.get(resp.headers["location"])
    assert over.status_code == 303 and over.headers["location"] == f"{base}/clients/{bella}"
    assert _session_cookie(sam) == own_token
    back = await sam.get(over.headers["location"])
    assert "reached its time limit" in back.text and "You are viewing" not in back.text
    [event] = await _events(client, w["agency"], "impersonation.ended")
    assert event["data"]["how"] == "expired" and event["actor_type"] == "system"
    # noticed once only
    assert (await sam.get(f"{base}/impersonation/over")).status_code == 303
    assert len(await _events(client, w["agency"], "impersonation.ended")) == 1


async def test_htmx_requests_after_the_time_limit_are_redirected_too(client, world):
    w = world
    sam, base = w["sam"], w["base"]
    assert (await _start(sam, w)).status_code == 303
    [started] = await _events(client, w["agency"], "impersonation.started")
    await _edit(w["agency"], Impersonation, _imp_id(started), expires_at=utcnow())
    resp = await sam.get(f"{base}/clients", headers={"HX-Request": "true"})
    assert resp.status_code == 204 and resp.headers["hx-redirect"] == f"{base}/impersonation/over"


async def test_without_the_staff_session_the_end_goes_to_sign_in(client, world):
    w = world
    sam, base = w["sam"], w["base"]
    assert (await _start(sam, w)).status_code == 303
    # Sam's own session was signed out elsewhere meanwhile
    [started] = await _events(client, w["agency"], "impersonation.started")
    await _edit(w["agency"], Impersonation, _imp_id(started), expires_at=utcnow())
    sam.http.cookies.set("sb_imp_return", "v1:tampered", path=f"{base}/")
    over = await sam.get(f"{base}/impersonation/over")
    assert over.status_code == 303 and over.headers["location"] == f"{base}/login"
    assert not _session_cookie(sam)
    login = await sam.get(f"{base}/login")
    assert "Sign in again to continue as yourself" in login.text


async def test_losing_the_assignment_ends_the_view(client, world):
    w = world
    sam, base = w["sam"], w["base"]
    own_token = _session_cookie(sam)
    assert (await _start(sam, w)).status_code == 303
    unassigned = await client.patch(
        f"/api/v1/clients/{w['bella']['id']}",
        headers=w["agency"].headers,
        json={"assigned_staff": []},
    )
    assert unassigned.status_code == 200
    resp = await sam.get(f"{base}/apps")
    assert resp.headers["location"] == f"{base}/impersonation/over"
    over = await sam.get(f"{base}/impersonation/over")
    assert over.headers["location"] == f"{base}/clients"  # Bella Vista is not Sam's any more
    assert _session_cookie(sam) == own_token
    [event] = await _events(client, w["agency"], "impersonation.ended")
    assert event["data"]["how"] == "revoked"


async def test_signing_out_while_viewing_signs_out_both(client, world, new_browser):
    w = world
    sam, base = w["sam"], w["base"]
    own_token = _session_cookie(sam)
    assert (await _start(sam, w)).status_code == 303
    token = await sam.csrf(f"{base}/apps")
    out = await sam.post(f"{base}/logout", {"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == f"{base}/login"
    assert not _session_cookie(sam) and not sam.http.cookies.get("sb_imp_return")
    again = new_browser()
    again.http.cookies.set("sb_session", own_token, path=f"{base}/")
    assert (await again.get(f"{base}/clients")).status_code == 303  # Sam's session ended too
    [event] = await _events(client, w["agency"], "impersonation.ended")
    assert event["data"]["how"] == "signed_out"


async def test_the_person_signing_out_everywhere_ends_the_view(client, world):
    w = world
    sam, base = w["sam"], w["base"]
    assert (await _start(sam, w)).status_code == 303
    out = await w["maria"].submit(f"{base}/account", f"{base}/account/sessions/revoke", {})
    assert out.status_code == 303
    resp = await sam.get(f"{base}/apps")
    assert resp.headers["location"] == f"{base}/impersonation/over"
    over = await sam.get(f"{base}/impersonation/over")
    assert over.status_code == 303 and "/clients/" in over.headers["location"]
    [event] = await _events(client, w["agency"], "impersonation.ended")
    assert event["data"]["how"] == "revoked"


# ---- who reads the audit entries ---------------------------------------------------------


async def test_the_client_owner_reads_the_entries_and_another_client_does_not(client, world):
    w = world
    agency, base, bella = w["agency"], w["base"], w["bella"]["id"]
    assert (await _start(w["sam"], w, minutes="15")).status_code == 303
    assert (await w["sam"].submit(f"{base}/apps", f"{base}/impersonation/end", {})).status_code == (
        303
    )

    async def scoped_key(client_id: str) -> dict[str, str]:
        made = await client.post(
            "/api/v1/api-keys",
            headers=agency.headers,
            json={"name": "owner", "client_id": client_id, "role": "client_owner"},
        )
        assert made.status_code == 201, made.text
        return {"Authorization": f"Bearer {made.json()['key']}"}

    mine = await scoped_key(bella)
    started = await _events(client, agency, "impersonation.started", headers=mine)
    ended = await _events(client, agency, "impersonation.ended", headers=mine)
    assert [e["data"]["reason"] for e in started] == [REASON]
    assert started[0]["actor_label"] == w["sam_email"]
    assert started[0]["data"]["staff_name"] == "Sam Staff"
    assert [e["data"]["how"] for e in ended] == ["ended"]
    theirs = await scoped_key(w["other"]["id"])
    assert await _events(client, agency, "impersonation.started", headers=theirs) == []
    everything = await client.get("/api/v1/audit-events", headers=theirs, params={"limit": 200})
    assert REASON not in everything.text

    # the portal: Maria's record page lists the access; Hugo's does not, and cannot reach hers
    page = await w["maria"].get(f"{base}/clients/{bella}")
    assert "Access by your agency" in page.text
    assert "Sam Staff viewed as Maria Rossi" in page.text and REASON in page.text
    assert "of 15" in page.text
    hugo = w["hugo"]
    own = await hugo.get(f"{base}/clients/{w['other']['id']}")
    assert "Access by your agency" in own.text and REASON not in own.text
    assert "Nobody at Northwind Digital has viewed this portal" in own.text
    assert (await hugo.get(f"{base}/clients/{bella}")).status_code == 404
    # staff cannot read the audit trail, so no list for them
    assert "Access by your agency" not in (await w["sam"].get(f"{base}/clients/{bella}")).text


async def test_the_session_row_is_bound_to_the_impersonation(client, world):
    """A session row claiming an impersonation it does not belong to resolves to nothing."""
    w = world
    sam, base = w["sam"], w["base"]
    assert (await _start(sam, w)).status_code == 303
    [started] = await _events(client, w["agency"], "impersonation.started")
    imp_id = _imp_id(started)
    # another session of Maria's (her own browser) pointed at Sam's impersonation
    from sqlalchemy import select

    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(w["agency"].id))
        rows = (
            (
                await session.execute(
                    select(UserSession).where(
                        UserSession.user_id == ids.decode("usr", w["maria_id"]),
                        UserSession.impersonation_id.is_(None),
                    )
                )
            )
            .scalars()
            .all()
        )
        for row in rows:
            row.impersonation_id = imp_id
    resp = await w["maria"].get(f"{base}/apps")
    assert resp.status_code == 303  # not a principal with Sam as the actor
    # and a session whose impersonation has expired stops at once, whatever its own expiry
    await _edit(w["agency"], Impersonation, imp_id, expires_at=utcnow() - timedelta(seconds=1))
    assert (await sam.get(f"{base}/apps")).status_code == 303


async def test_anything_added_under_account_later_is_refused_too(app, world):
    """The portal refuses every /account/... route while viewing, not only the listed ones."""

    async def added_later(principal: SignedIn) -> dict[str, str]:
        return {"done": "yes"}

    path = "/a/{slug}/account/added-later"
    app.router.add_api_route(
        path, added_later, methods=["GET", "POST"], route_class_override=PortalRoute
    )
    try:
        w = world
        base = w["base"]
        assert (await w["maria"].get(f"{base}/account/added-later")).status_code == 200
        assert (await _start(w["sam"], w)).status_code == 303
        refused = await w["sam"].get(f"{base}/account/added-later")
        assert refused.status_code == 403 and "You are viewing" in refused.text
        assert "not possible while you view the portal as someone else" in refused.text
    finally:
        app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", "") != path]
