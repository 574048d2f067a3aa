"""The e-mail outbox in the console: what was sent, with recipients' secret links hidden."""

from __future__ import annotations

from tests.helpers import wait_for_jobs


async def test_outbox_lists_messages_and_hides_single_use_links(
    client, make_agency, owner_browser, mailbox
):
    agency = await make_agency(name="Outbox Co")
    email = f"staff+{agency.slug}@example.com"
    inv = await client.post(
        "/api/v1/invitations", headers=agency.headers, json={"email": email, "role": "agency_staff"}
    )
    token = inv.json()["url"].rsplit("/", 1)[1]
    await wait_for_jobs(lambda: bool(mailbox.to(email)))
    await wait_for_jobs(lambda: True)
    owner = await owner_browser(agency)
    page = await owner.get(f"/a/{agency.slug}/settings/outbox")
    assert page.status_code == 200
    assert email in page.text and "Outbox Co invited you to Switchboard" in page.text
    assert token not in page.text and "/invite/[link hidden]" in page.text


async def test_outbox_needs_agency_manage(make_agency, make_person, new_browser):
    agency = await make_agency()
    staff, _ = await make_person(agency, "agency_staff")
    assert (await staff.get(f"/a/{agency.slug}/settings/outbox")).status_code == 403
    nav = await staff.get(f"/a/{agency.slug}/clients")
    assert "E-mail outbox" not in nav.text
    anonymous = await new_browser().get(f"/a/{agency.slug}/settings/outbox")
    assert anonymous.status_code in (302, 303)
