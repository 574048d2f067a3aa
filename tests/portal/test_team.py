"""Team page, invitations by e-mail (the real SMTP catcher), accepting them, revoking them,
and the agency branding page."""

from __future__ import annotations

import re
import secrets

import httpx

from tests.helpers import wait_for_jobs
from tests.portal.conftest import PASSWORD

LINK_RE = re.compile(r"(https?://\S+/invite/[1-9A-HJ-NP-Za-km-z]+)")


async def _mail_link(mailbox, email: str) -> str:
    await wait_for_jobs(lambda: mailbox.to(email), timeout=20)
    [message] = mailbox.to(email)
    found = LINK_RE.search(message["body"])
    assert found, message["body"]
    return httpx.URL(found.group(1)).path


async def test_invitation_by_email_to_signed_in(
    client, make_agency, owner_browser, new_browser, mailbox
):
    agency = await make_agency(name="Northwind Digital")
    owner = await owner_browser(agency)
    email = f"sam-{secrets.token_hex(3)}@northwind.example"
    team_url = f"/a/{agency.slug}/team"
    sent = await owner.submit(
        team_url,
        f"{team_url}/invitations",
        {"email": email, "name": "Sam Staff", "role": "agency_staff"},
    )
    assert sent.status_code == 303, sent.text[:2000]
    team = await owner.get(team_url)
    assert "The invitation is on its way." in team.text and email in team.text

    path = await _mail_link(mailbox, email)
    assert path.startswith(f"/a/{agency.slug}/invite/")
    [message] = mailbox.to(email)
    assert "Northwind Digital" in message["subject"]

    sam = new_browser()
    page = await sam.get(path)
    assert page.status_code == 200
    assert email in page.text and "Agency staff" in page.text.replace(
        "agency staff", "Agency staff"
    )
    mismatch = await sam.submit(
        path, path, {"name": "Sam Staff", "password": PASSWORD, "password_confirm": PASSWORD + "x"}
    )
    assert mismatch.status_code == 422 and 'id="password_confirm-error"' in mismatch.text
    short = await sam.submit(
        path, path, {"name": "Sam Staff", "password": "short", "password_confirm": "short"}
    )
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert 'value="Sam Staff"' in short.text
    done = await sam.submit(
        path, path, {"name": "Sam Staff", "password": PASSWORD, "password_confirm": PASSWORD}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/a/{agency.slug}/clients"
    assert "sb_session=" in done.headers["set-cookie"]
    welcome = await sam.get(done.headers["location"])
    assert welcome.status_code == 200 and "Welcome! Your account is ready." in welcome.text

    reused = await new_browser().get(path)
    assert reused.status_code == 404 and "not valid any more" in reused.text
    fresh = new_browser()
    signed = await fresh.sign_in(agency.slug, email, PASSWORD)
    assert signed.status_code == 303
    members = await owner.get(team_url)
    assert "Sam Staff" in members.text and "Agency staff" in members.text


async def test_client_invitation_lands_on_the_clients_home(
    client, make_agency, make_client, owner_browser, new_browser, mailbox
):
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Bella Vista Bistro")
    owner = await owner_browser(agency)
    email = f"maria-{secrets.token_hex(3)}@bellavista.example"
    team_url = f"/a/{agency.slug}/team"
    no_client = await owner.submit(
        team_url, f"{team_url}/invitations", {"email": email, "role": "client_owner"}
    )
    assert no_client.status_code == 422 and 'id="client_id-error"' in no_client.text
    assert f'value="{email}"' in no_client.text
    bad_email = await owner.submit(
        team_url,
        f"{team_url}/invitations",
        {"email": "not-an-email", "role": "client_owner", "client_id": shop["id"]},
    )
    assert bad_email.status_code == 422 and 'id="email-error"' in bad_email.text
    sent = await owner.submit(
        team_url,
        f"{team_url}/invitations",
        {"email": email, "role": "client_owner", "client_id": shop["id"]},
    )
    assert sent.status_code == 303
    path = await _mail_link(mailbox, email)
    maria = new_browser()
    page = await maria.get(path)
    assert "Bella Vista Bistro" in page.text
    done = await maria.submit(
        path, path, {"name": "Maria Rossi", "password": PASSWORD, "password_confirm": PASSWORD}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/a/{agency.slug}/apps"  # a client's home
    home = await maria.get(done.headers["location"])
    assert f'href="/a/{agency.slug}/clients/{shop["id"]}"' in home.text  # "Our business"
    record = await maria.get(f"/a/{agency.slug}/clients/{shop['id']}")
    assert record.status_code == 200 and "Bella Vista Bistro" in record.text
    people = await maria.get(team_url)
    assert people.status_code == 200 and "Maria Rossi" in people.text


ALL_ROLES = ("agency_owner", "agency_admin", "agency_staff", "client_owner", "client_member")
ROLE_OPTION = re.compile(r'<option value="((?:agency|client)_\w+)"')


def _offered_roles(team_page: httpx.Response) -> set[str]:
    if team_page.status_code != 200 or 'id="f-role"' not in team_page.text:
        return set()
    select = team_page.text.split('id="f-role"', 1)[1].split("</select>", 1)[0]
    return set(ROLE_OPTION.findall(select))


async def test_the_invite_form_offers_exactly_the_roles_an_invitation_may_grant(
    client, make_agency, make_client, owner_browser, make_person
):
    """The roles the team page offers come from the one rule of who may grant what
    (`identity.access`): each offered role is accepted when invited, every other one is
    refused, for every kind of person."""
    agency = await make_agency()
    shop = await make_client(agency, legal_name="Bella Vista Bistro")
    staff, staff_id = await make_person(agency, "agency_staff")
    assigned = await client.patch(
        f"/api/v1/clients/{shop['id']}", headers=agency.headers, json={"assigned_staff": [staff_id]}
    )
    assert assigned.status_code == 200
    people = {
        "agency_owner": await owner_browser(agency),
        "agency_admin": (await make_person(agency, "agency_admin"))[0],
        "agency_staff": staff,
        "client_owner": (await make_person(agency, "client_owner", client_id=shop["id"]))[0],
        "client_member": (await make_person(agency, "client_member", client_id=shop["id"]))[0],
    }
    client_roles = {"client_owner", "client_member"}
    expected = {
        "agency_owner": {"agency_owner", "agency_admin", "agency_staff"} | client_roles,
        "agency_admin": {"agency_admin", "agency_staff"} | client_roles,
        "agency_staff": client_roles,  # assigned to the shop: client-scoped
        "client_owner": client_roles,
        "client_member": set(),  # may not invite
    }
    team_url = f"/a/{agency.slug}/team"
    for who, browser in people.items():
        offered = _offered_roles(await browser.get(team_url))
        assert offered == expected[who], (who, offered)
        token = await browser.csrf(f"/a/{agency.slug}/clients/{shop['id']}")
        for role in ALL_ROLES:
            body = {
                "email": f"{who}-{role}-{secrets.token_hex(2)}@people.example",
                "role": role,
                "csrf_token": token,
            }
            if role in client_roles:
                body["client_id"] = shop["id"]
            sent = await browser.post(f"{team_url}/invitations", body)
            assert (sent.status_code == 303) == (role in offered), (who, role, sent.status_code)


async def test_revoking_an_invitation_kills_its_link(
    client, make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    owner = await owner_browser(agency)
    resp = await client.post(
        "/api/v1/invitations",
        headers=agency.headers,
        json={"email": "late@people.example", "role": "agency_admin"},
    )
    invitation = resp.json()
    path = httpx.URL(invitation["url"]).path
    team_url = f"/a/{agency.slug}/team"
    page = await owner.get(team_url)
    assert f"/team/invitations/{invitation['id']}/revoke" in page.text
    revoked = await owner.submit(team_url, f"{team_url}/invitations/{invitation['id']}/revoke", {})
    assert revoked.status_code == 303
    after = await owner.get(team_url)
    assert "late@people.example" not in after.text and "The invitation was revoked." in after.text
    assert (await new_browser().get(path)).status_code == 404
    again = await owner.submit(team_url, f"{team_url}/invitations/inv_111/revoke", {})
    assert again.status_code == 404


async def test_team_forms_reject_bad_csrf_and_change_nothing(
    client, make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    owner = await owner_browser(agency)
    pending = (
        await client.post(
            "/api/v1/invitations",
            headers=agency.headers,
            json={"email": "keep@people.example", "role": "agency_staff"},
        )
    ).json()
    path = httpx.URL(pending["url"]).path
    team_url = f"/a/{agency.slug}/team"
    stranger = new_browser()
    foreign = await stranger.csrf(path)
    for url, data in [
        (f"{team_url}/invitations", {"email": "sneaky@people.example", "role": "agency_admin"}),
        (f"{team_url}/invitations/{pending['id']}/revoke", {}),
    ]:
        for token in (None, foreign):
            body = data if token is None else {**data, "csrf_token": token}
            assert (await owner.post(url, body)).status_code == 403
    invitee = new_browser()
    await invitee.get(path)
    accept = {"name": "Keep", "password": PASSWORD, "password_confirm": PASSWORD}
    assert (await invitee.post(path, accept)).status_code == 403
    assert (await invitee.post(path, {**accept, "csrf_token": foreign})).status_code == 403
    listed = (await client.get("/api/v1/invitations", headers=agency.headers)).json()
    assert [(i["email"], i["status"]) for i in listed] == [("keep@people.example", "pending")]


async def test_branding_page_updates_the_white_label(
    client, make_agency, owner_browser, make_person, new_browser
):
    agency = await make_agency(name="Old Agency Name")
    owner = await owner_browser(agency)
    url = f"/a/{agency.slug}/settings/branding"
    page = await owner.get(url)
    assert page.status_code == 200 and 'value="Old Agency Name"' in page.text
    bad = await owner.submit(
        url,
        url,
        {
            "name": "Bright Local",
            "brand_logo_url": "not a url",
            "brand_primary_color": "red",
            "brand_accent_color": "#112233",
            "support_email": "help@",
        },
    )
    assert bad.status_code == 422
    for name in ("brand_logo_url", "brand_primary_color", "support_email"):
        assert f'id="{name}-error"' in bad.text, name
    assert 'value="Bright Local"' in bad.text and 'value="not a url"' in bad.text
    assert (await client.get("/api/v1/agency", headers=agency.headers)).json()[
        "name"
    ] == "Old Agency Name"
    forged = await owner.post(url, {"name": "Pwned", "csrf_token": "x"})
    assert forged.status_code == 403
    saved = await owner.submit(
        url,
        url,
        {
            "name": "Bright Local",
            "brand_logo_url": "https://cdn.bright.example/logo.png",
            "brand_primary_color": "#FF5500",
            "brand_accent_color": "#112233",
            "support_email": "help@bright.example",
        },
    )
    assert saved.status_code == 303
    login = await new_browser().get(f"/a/{agency.slug}/login")
    html = login.text
    assert "Bright Local" in html and "--brand:#ff5500" in html and "--accent:#112233" in html
    assert 'src="https://cdn.bright.example/logo.png"' in html
    assert "help@bright.example" in html
    cleared = await owner.submit(
        url,
        url,
        {
            "name": "Bright Local",
            "brand_logo_url": "",
            "brand_primary_color": "#ff5500",
            "brand_accent_color": "#112233",
            "support_email": "",
        },
    )
    assert cleared.status_code == 303
    agency_now = (await client.get("/api/v1/agency", headers=agency.headers)).json()
    assert agency_now["brand_logo_url"] is None and agency_now["support_email"] is None
    assert 'class="logo-badge' in (await new_browser().get(f"/a/{agency.slug}/login")).text

    staff, _ = await make_person(agency, "agency_staff")
    assert (await staff.get(url)).status_code == 403
    staff_token = await staff.csrf(f"/a/{agency.slug}/clients")
    refused = await staff.post(url, {"name": "Staff Rename", "csrf_token": staff_token})
    assert refused.status_code == 403
    assert "Branding" not in (await staff.get(f"/a/{agency.slug}/clients")).text
    assert (await client.get("/api/v1/agency", headers=agency.headers)).json()[
        "name"
    ] == "Bright Local"
