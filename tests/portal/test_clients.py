"""The client pages: list (search, filter, pagination, counts), create and edit forms with
inline validation, the detail page, lifecycle moves; CSRF on every form."""

from __future__ import annotations

import re

from tests.portal.conftest import csrf_of


async def _api_clients(client, agency) -> list[dict]:
    resp = await client.get("/api/v1/clients", headers=agency.headers, params={"limit": 200})
    return resp.json()["items"]


def _rows(html: str) -> list[str]:
    return re.findall(r'class="row-link" href="[^"]+">([^<]+)</a>', html)


async def test_list_search_filter_counts_and_cursor_pagination(
    client, make_agency, make_client, owner_browser
):
    agency = await make_agency()
    for i in range(28):
        await make_client(
            agency,
            legal_name=f"Shop {i:02d}",
            city="Lyon" if i % 2 else "Nice",
            lifecycle_stage="active" if i < 3 else "prospect",
        )
    b = await owner_browser(agency)
    base = f"/a/{agency.slug}/clients"
    first = await b.get(base)
    assert first.status_code == 200
    names = _rows(first.text)
    assert names == [f"Shop {i:02d}" for i in range(25)]
    assert "28 clients in your portfolio" in first.text
    assert re.search(r'Active <span class="count">3</span>', first.text)
    assert re.search(r'Prospect <span class="count">25</span>', first.text)
    next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert next_link
    second = await b.get(next_link.group(1).replace("&amp;", "&"))
    assert _rows(second.text) == ["Shop 25", "Shop 26", "Shop 27"]
    assert 'rel="next"' not in second.text and "First page" in second.text

    lyon = await b.get(base, params={"q": "lYoN"})
    assert len(_rows(lyon.text)) == 14
    active = await b.get(base, params={"stage": "active"})
    assert _rows(active.text) == ["Shop 00", "Shop 01", "Shop 02"]
    newest = await b.get(base, params={"sort": "newest"})
    assert _rows(newest.text)[0] == "Shop 27"
    nothing = await b.get(base, params={"q": "no such shop"})
    assert "No clients match" in nothing.text
    for params in ({"cursor": "!!!"}, {"stage": "zombie"}, {"sort": "DROP TABLE"}):
        assert (await b.get(base, params=params)).status_code == 200
    assert (await b.get(base, params={"q": "x" * 500})).status_code == 400


async def test_live_search_answers_htmx_with_the_results_fragment(
    make_agency, make_client, owner_browser
):
    agency = await make_agency()
    await make_client(agency, legal_name="Bella Vista Bistro")
    await make_client(agency, legal_name="Harbor Lane Florist")
    b = await owner_browser(agency)
    resp = await b.get(
        f"/a/{agency.slug}/clients",
        params={"q": "harbor"},
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    assert resp.status_code == 200
    assert "<html" not in resp.text and 'id="results"' in resp.text
    assert _rows(resp.text) == ["Harbor Lane Florist"]
    assert "HX-Request" in resp.headers["vary"]
    full = await b.get(f"/a/{agency.slug}/clients", params={"q": "harbor"})
    assert "<html" in full.text and 'hx-get="/a/' in full.text


async def test_create_client_through_the_form(client, make_agency, owner_browser):
    agency = await make_agency()
    b = await owner_browser(agency)
    resp = await b.submit(
        f"/a/{agency.slug}/clients/new",
        f"/a/{agency.slug}/clients",
        {
            "legal_name": "Bella Vista Bistro SARL",
            "display_name": "Bella Vista",
            "email": "Hello@BellaVista.example",
            "phone": "01 42 68 53 00",
            "country": "fr",
            "website": "bellavista.example",
            "city": "Paris",
            "timezone": "Europe/Paris",
            "categories": "restaurant, italian",
            "hours_tue": "12:00-14:30, 19:00-23:00",
            "lifecycle_stage": "onboarding",
            "notes": "VIP",
        },
    )
    assert resp.status_code == 303, resp.text[:2000]
    detail = await b.get(resp.headers["location"])
    assert detail.status_code == 200
    html = detail.text
    for text in (
        "Bella Vista",
        "Bella Vista Bistro SARL",
        "+33 1 42 68 53 00",
        "https://bellavista.example/",
        "Europe/Paris",
        "restaurant",
        "italian",
        "12:00-14:30, 19:00-23:00",
        "The client record was created.",
        "Onboarding",
        "Client record created",
    ):
        assert text in html, text
    [made] = await _api_clients(client, agency)
    assert made["phone"] == "+33142685300" and made["hours"] == {
        "tue": ["12:00-14:30", "19:00-23:00"]
    }
    again = await b.get(resp.headers["location"])
    assert "The client record was created." not in again.text  # the flash shows once


async def test_create_with_bad_input_keeps_values_and_shows_errors(
    client, make_agency, owner_browser
):
    agency = await make_agency()
    b = await owner_browser(agency)
    typed = {
        "legal_name": "Keep Me Ltd",
        "display_name": "Keep <Me>",
        "email": "not-an-email",
        "timezone": "Mars/Olympus",
        "country": "France",
        "hours_mon": "nine to five",
        "city": "Springfield",
        "categories": "a, b",
        "website": "https://ok.example",
    }
    resp = await b.submit(f"/a/{agency.slug}/clients/new", f"/a/{agency.slug}/clients", typed)
    assert resp.status_code == 422
    html = resp.text
    for name in ("email", "timezone", "country", "hours"):
        assert f'id="{name}-error"' in html, name
    for name in ("legal_name", "email", "timezone", "country", "city", "website"):
        assert f'name="{name}" type' in html
        assert f'value="{typed[name]}"' in html, name
    assert 'value="Keep &lt;Me&gt;"' in html  # kept, and escaped
    assert 'value="nine to five"' in html and 'value="a, b"' in html
    assert 'aria-invalid="true"' in html
    phone = await b.submit(
        f"/a/{agency.slug}/clients/new",
        f"/a/{agency.slug}/clients",
        {"legal_name": "Phone Co", "phone": "12"},
    )
    assert phone.status_code == 422 and 'id="phone-error"' in phone.text
    assert 'value="12"' in phone.text
    staff = await b.submit(
        f"/a/{agency.slug}/clients/new",
        f"/a/{agency.slug}/clients",
        {"legal_name": "Staff Co", "assigned_staff": "usr_nope"},
    )
    assert staff.status_code == 422 and 'id="assigned_staff-error"' in staff.text
    empty = await b.submit(
        f"/a/{agency.slug}/clients/new", f"/a/{agency.slug}/clients", {"legal_name": ""}
    )
    assert empty.status_code == 422 and "This field is required" in empty.text
    assert await _api_clients(client, agency) == []  # nothing half-created


async def test_edit_client_and_bad_edits_change_nothing(
    client, make_agency, make_client, owner_browser
):
    agency = await make_agency()
    made = await make_client(agency, legal_name="Old Name Ltd", city="Paris", country="FR")
    b = await owner_browser(agency)
    edit_url = f"/a/{agency.slug}/clients/{made['id']}/edit"
    form = await b.get(edit_url)
    assert form.status_code == 200 and 'value="Old Name Ltd"' in form.text
    bad = await b.submit(
        edit_url,
        edit_url,
        {
            "legal_name": "New Name Ltd",
            "display_name": "",
            "city": "Lyon",
            "country": "FR",
            "phone": "12",
            "timezone": "UTC",
        },
    )
    assert bad.status_code == 422 and 'id="phone-error"' in bad.text
    assert 'value="New Name Ltd"' in bad.text and 'value="Lyon"' in bad.text
    [unchanged] = await _api_clients(client, agency)
    assert unchanged["legal_name"] == "Old Name Ltd" and unchanged["city"] == "Paris"
    good = await b.submit(
        edit_url,
        edit_url,
        {
            "legal_name": "New Name Ltd",
            "display_name": "",
            "city": "Lyon",
            "country": "FR",
            "timezone": "Europe/Paris",
            "categories": "bakery",
            "hours_sat": "08:00-13:00",
        },
    )
    assert good.status_code == 303
    assert good.headers["location"] == f"/a/{agency.slug}/clients/{made['id']}"
    [changed] = await _api_clients(client, agency)
    assert changed["legal_name"] == changed["display_name"] == "New Name Ltd"
    assert changed["city"] == "Lyon" and changed["categories"] == ["bakery"]
    assert changed["hours"] == {"sat": ["08:00-13:00"]}
    detail = await b.get(good.headers["location"])
    assert "Your changes were saved." in detail.text
    assert "Updated" in detail.text  # the activity feed names the change


async def test_lifecycle_buttons_follow_the_allowed_transitions(
    client, make_agency, make_client, owner_browser
):
    agency = await make_agency()
    made = await make_client(agency)
    b = await owner_browser(agency)
    url = f"/a/{agency.slug}/clients/{made['id']}"
    page = await b.get(url)
    offered = re.findall(r'name="stage" value="(\w+)"', page.text)
    assert sorted(offered) == ["churned", "onboarding"]
    moved = await b.submit(url, f"{url}/lifecycle", {"stage": "onboarding", "reason": "signed"})
    assert moved.status_code == 303
    page = await b.get(url)
    assert "The lifecycle stage was updated." in page.text
    assert "Moved from Prospect to Onboarding" in page.text and "signed" in page.text
    assert sorted(re.findall(r'name="stage" value="(\w+)"', page.text)) == [
        "active",
        "churned",
        "prospect",
    ]
    bad = await b.submit(url, f"{url}/lifecycle", {"stage": "paused"})
    assert bad.status_code == 409 and "cannot move from onboarding to paused" in bad.text
    bogus = await b.submit(url, f"{url}/lifecycle", {"stage": "zombie"})
    assert bogus.status_code == 422
    current = (await client.get(f"/api/v1/clients/{made['id']}", headers=agency.headers)).json()
    assert current["lifecycle_stage"] == "onboarding"


async def test_every_client_form_rejects_missing_or_foreign_csrf_tokens(
    client, make_agency, make_client, owner_browser, new_browser
):
    agency = await make_agency()
    made = await make_client(agency, legal_name="Untouched Ltd")
    b = await owner_browser(agency)
    other = await owner_browser(agency)  # same agency, another browser: its token is not ours
    foreign = await other.csrf(f"/a/{agency.slug}/clients/new")
    base = f"/a/{agency.slug}/clients"
    posts = [
        (base, {"legal_name": "Sneaky Ltd"}),
        (f"{base}/{made['id']}/edit", {"legal_name": "Pwned Ltd", "timezone": "UTC"}),
        (f"{base}/{made['id']}/lifecycle", {"stage": "onboarding"}),
    ]
    for url, data in posts:
        for token in (None, foreign, ""):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            resp = await b.post(url, body)
            assert resp.status_code == 403, (url, token)
            assert "This form has expired" in resp.text
    [only] = await _api_clients(client, agency)
    assert only["legal_name"] == "Untouched Ltd" and only["lifecycle_stage"] == "prospect"


async def test_client_users_cannot_create_clients(make_agency, make_client, make_person):
    agency = await make_agency()
    made = await make_client(agency)
    member, _ = await make_person(agency, "client_member", client_id=made["id"])
    assert (await member.get(f"/a/{agency.slug}/clients/new")).status_code == 403
    page = await member.get(f"/a/{agency.slug}/clients/{made['id']}")
    assert page.status_code == 200
    assert "New client" not in page.text and "Edit details" not in page.text
    assert 'name="stage"' not in page.text and "Recent activity" not in page.text
    token = csrf_of(page.text)
    refused = await member.post(
        f"/a/{agency.slug}/clients", {"legal_name": "Nope", "csrf_token": token}
    )
    assert refused.status_code == 403 and "Not allowed" in refused.text
