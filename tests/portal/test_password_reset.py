"""Password reset by single-use, expiring e-mail link."""

from __future__ import annotations

import re

from tests.helpers import wait_for_jobs

LINK = re.compile(r"http://testserver(/a/[^/]+/reset/[A-Za-z0-9]+)")


async def _request_link(browser, agency, email, mailbox) -> str:
    before = len(mailbox.to(email))
    resp = await browser.submit(
        f"/a/{agency.slug}/forgot", f"/a/{agency.slug}/forgot", {"email": email}
    )
    assert resp.status_code == 200 and "is on its way" in resp.text
    await wait_for_jobs(lambda: len(mailbox.to(email)) > before)
    message = mailbox.to(email)[-1]
    assert message["subject"].startswith("Reset your")
    found = LINK.search(message["body"])
    assert found, message["body"]
    return found.group(1)


async def test_reset_flow_signs_other_devices_out(make_agency, new_browser, owner_browser, mailbox):
    agency = await make_agency()
    elsewhere = await owner_browser(agency)  # already signed in on another device
    assert (await elsewhere.get(f"/a/{agency.slug}/clients")).status_code == 200
    b = new_browser()
    link = await _request_link(b, agency, agency.owner_email, mailbox)

    page = await b.get(link)
    assert page.status_code == 200 and agency.owner_email in page.text
    mismatch = await b.submit(
        link, link, {"password": "new-password-123", "password_confirm": "other-password-123"}
    )
    assert mismatch.status_code == 422 and "not the same" in mismatch.text
    short = await b.submit(link, link, {"password": "short", "password_confirm": "short"})
    assert short.status_code == 422 and "10 characters" in short.text
    done = await b.submit(
        link, link, {"password": "new-password-123", "password_confirm": "new-password-123"}
    )
    assert done.status_code == 303
    assert (await b.get(f"/a/{agency.slug}/clients")).status_code == 200  # signed in

    gone = await elsewhere.get(f"/a/{agency.slug}/clients")
    assert gone.status_code in (302, 303)  # the other device was signed out
    assert (await b.get(link)).status_code in (404, 410)  # single use
    old = await new_browser().sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert old.status_code == 401
    new = await new_browser().sign_in(agency.slug, agency.owner_email, "new-password-123")
    assert new.status_code == 303


async def test_unknown_email_gets_the_same_answer_and_no_mail(make_agency, new_browser, mailbox):
    agency = await make_agency()
    b = new_browser()
    ghost = f"ghost@{agency.slug}.example"
    resp = await b.submit(f"/a/{agency.slug}/forgot", f"/a/{agency.slug}/forgot", {"email": ghost})
    assert resp.status_code == 200 and "is on its way" in resp.text
    await wait_for_jobs(lambda: True)
    assert mailbox.to(ghost) == []


async def test_reset_lifts_a_lockout_and_links_are_rate_limited(make_agency, new_browser, mailbox):
    agency = await make_agency()
    attacker = new_browser()
    for _ in range(6):
        await attacker.sign_in(agency.slug, agency.owner_email, "guess-guess-1")
    b = new_browser()
    assert (
        await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    ).status_code == 429
    link = await _request_link(b, agency, agency.owner_email, mailbox)
    await _request_link(b, agency, agency.owner_email, mailbox)
    newest = await _request_link(b, agency, agency.owner_email, mailbox)
    # a fourth request within the hour sends nothing more
    count = len(mailbox.to(agency.owner_email))
    await b.submit(
        f"/a/{agency.slug}/forgot", f"/a/{agency.slug}/forgot", {"email": agency.owner_email}
    )
    await wait_for_jobs(lambda: True)
    assert len(mailbox.to(agency.owner_email)) == count
    done = await b.submit(
        newest, newest, {"password": "fresh-password-9", "password_confirm": "fresh-password-9"}
    )
    assert done.status_code == 303
    assert (await b.get(link)).status_code in (404, 410)  # older links died with it
    again = await new_browser().sign_in(agency.slug, agency.owner_email, "fresh-password-9")
    assert again.status_code == 303  # the lockout is lifted


async def test_forgot_does_the_same_work_for_known_and_unknown_addresses(
    make_agency, new_browser, mailbox
):
    """No account oracle in the timing either: the request runs the very same statements and
    queues the same job whether or not the address has an account (the lookup, and the mail,
    happen in the job)."""
    from sqlalchemy import event, select

    from services.kit.db import get_engine, unit_of_work
    from services.kit.jobs import JobOutbox
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    agency = await make_agency()
    b = new_browser()
    url = f"/a/{agency.slug}/forgot"
    token = await b.csrf(url)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    async def work_for(email: str) -> list[str]:
        statements.clear()
        engine = get_engine().sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            resp = await b.post(url, {"email": email, "csrf_token": token})
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert resp.status_code == 200 and "is on its way" in resp.text
        return list(statements)

    known = await work_for(agency.owner_email)
    unknown = await work_for(f"ghost@{agency.slug}.example")
    assert known and known == unknown
    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        queued = (await session.execute(select(JobOutbox.task))).scalars().all()
    # one request job per address (a worker may already have run the known one's and queued
    # its delivery)
    assert queued.count("identity.password_reset.request") == 2
    await wait_for_jobs(lambda: len(mailbox.to(agency.owner_email)) == 1)
    assert mailbox.to(f"ghost@{agency.slug}.example") == []
