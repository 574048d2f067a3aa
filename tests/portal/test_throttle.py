"""Sign-in throttling: repeated failures slow an attacker down without locking anyone out for
good, and an unknown e-mail is indistinguishable from a wrong password."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import update


async def _unlock(agency_id) -> None:
    """Fast-forward past every lock of an agency (instead of sleeping in a test)."""
    from services.identity.models import AuthThrottle
    from services.kit.db import unit_of_work
    from services.kit.types import utcnow
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency_id))
        await session.execute(update(AuthThrottle).values(locked_until=utcnow()))


async def test_five_failures_lock_the_account_from_that_address(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    for _ in range(5):
        resp = await b.sign_in(agency.slug, agency.owner_email, "wrong-password-x")
        assert resp.status_code == 401
    locked = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert locked.status_code == 429  # even the right password waits
    assert "Too many failed sign-ins" in locked.text and "30 seconds" in locked.text
    await _unlock(agency.id)
    ok = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert ok.status_code == 303
    # success cleared the person's counters: one new failure does not lock again
    b2 = new_browser()
    assert (await b2.sign_in(agency.slug, agency.owner_email, "nope-nope-1")).status_code == 401
    assert (
        await b2.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    ).status_code == 303


async def test_locks_grow_but_stay_bounded(make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    texts = []
    for _ in range(6):
        for _ in range(5):
            await b.sign_in(agency.slug, agency.owner_email, "wrong-password-x")
        resp = await b.sign_in(agency.slug, agency.owner_email, "wrong-password-x")
        texts.append(resp.text)
        await _unlock(agency.id)
    assert "30 seconds" in texts[0] and "1 minutes" not in texts[0]
    assert "2 minutes" in texts[2] and "8 minutes" in texts[4]
    assert "15 minutes" in texts[5]  # capped: never longer


async def test_an_attacker_elsewhere_does_not_lock_the_owner_out(app, make_agency, new_browser):
    agency = await make_agency()
    attacker = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 4000)),
        base_url="http://testserver",
    )
    from tests.portal.conftest import csrf_of

    try:
        for _ in range(8):
            page = await attacker.get(f"/a/{agency.slug}/login")
            await attacker.post(
                f"/a/{agency.slug}/login",
                data={
                    "email": agency.owner_email,
                    "password": "guess-guess-1",
                    "csrf_token": csrf_of(page.text),
                },
            )
    finally:
        await attacker.aclose()
    owner = new_browser()  # from the owner's usual address
    resp = await owner.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert resp.status_code == 303


async def test_unknown_email_and_wrong_password_look_and_cost_the_same(
    make_agency, new_browser, monkeypatch
):
    from services.kit import crypto

    calls: list[str] = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def verify(self, hash_, password):
            calls.append("verify")
            return self.inner.verify(hash_, password)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(crypto, "_hasher", Counting(crypto._hasher))
    agency = await make_agency()
    b = new_browser()
    wrong = await b.sign_in(agency.slug, agency.owner_email, "wrong-password-x")
    n_wrong = len(calls)
    unknown = await b.sign_in(agency.slug, f"nobody@{agency.slug}.example", "wrong-password-x")
    n_unknown = len(calls) - n_wrong
    assert n_wrong == n_unknown == 1  # one argon2 verification either way
    assert wrong.status_code == unknown.status_code == 401

    def normalized(text: str) -> str:  # the e-mail echoed back and per-response tokens differ
        text = text.replace(agency.owner_email, "").replace(f"nobody@{agency.slug}.example", "")
        return re.sub(r'(value|nonce)="[^"]*"', "", text)

    assert normalized(wrong.text) == normalized(unknown.text)
    for _ in range(4):
        await b.sign_in(agency.slug, f"nobody@{agency.slug}.example", "x-x-x-x-x-x")
    locked = await b.sign_in(agency.slug, f"nobody@{agency.slug}.example", "x-x-x-x-x-x")
    assert locked.status_code == 429  # unknown e-mails are throttled too: no oracle


# ---- known devices (OWASP "Slow Down Online Guessing Attacks with Device Cookies") ------------


async def _fail_from(app, agency, address: str, times: int, email: str | None = None) -> None:
    from tests.portal.conftest import csrf_of

    attacker = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 4000)),
        base_url="http://testserver",
    )
    try:
        page = await attacker.get(f"/a/{agency.slug}/login")
        for _ in range(times):
            resp = await attacker.post(
                f"/a/{agency.slug}/login",
                data={
                    "email": email or agency.owner_email,
                    "password": "guess-guess-1",
                    "csrf_token": csrf_of(page.text),
                },
            )
            assert resp.status_code in (401, 429)
    finally:
        await attacker.aclose()


async def _lock_account(agency) -> None:
    """The state 50 failures from 10 addresses leave: the account key locked (written
    directly, the attack itself is in the test above)."""
    from datetime import timedelta

    from services.identity.models import AuthThrottle
    from services.kit.db import unit_of_work
    from services.kit.types import utcnow
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        session.add(
            AuthThrottle(
                agency_id=agency.id,
                key=f"acct:{agency.owner_email}",
                lock_count=1,
                locked_until=utcnow() + timedelta(minutes=5),
            )
        )


async def test_a_distributed_attack_does_not_lock_out_a_known_browser(
    app, make_agency, new_browser
):
    agency = await make_agency()
    victim = new_browser()
    first = await victim.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert first.status_code == 303
    device = first.headers.get("set-cookie", "")
    assert "sb_device=" in device, device
    cookie = next(c for c in first.headers.get_list("set-cookie") if c.startswith("sb_device="))
    attrs = cookie.lower()
    assert "httponly" in attrs and "samesite=lax" in attrs and f"path=/a/{agency.slug}/" in attrs
    assert "max-age=" in attrs and int(attrs.split("max-age=")[1].split(";")[0]) >= 30 * 86400
    await victim.submit(f"/a/{agency.slug}/account", f"/a/{agency.slug}/logout", {})

    # 50 failures spread over 10 addresses lock the account for every unknown browser ...
    for n in range(10):
        await _fail_from(app, agency, f"198.51.100.{n + 1}", 5)
    stranger = new_browser()
    refused = await stranger.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert refused.status_code == 429
    # ... but the browser the owner signed in with before is judged by its own failures only
    back = await victim.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert back.status_code == 303, back.text[:300]
    assert (await victim.get(f"/a/{agency.slug}/clients")).status_code == 200


async def test_a_known_browser_is_locked_by_its_own_failures(app, make_agency, new_browser):
    agency = await make_agency()
    b = new_browser()
    assert (
        await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    ).status_code == 303
    await b.submit(f"/a/{agency.slug}/account", f"/a/{agency.slug}/logout", {})
    for _ in range(5):
        assert (
            await b.sign_in(agency.slug, agency.owner_email, "wrong-wrong-1")
        ).status_code == 401
    locked = await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert locked.status_code == 429
    # only that device: the account itself is not locked for another browser
    other = new_browser()
    assert (
        await other.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    ).status_code == 303
    await _unlock(agency.id)
    assert (
        await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    ).status_code == 303


async def test_a_device_cookie_only_vouches_for_its_own_person_and_cannot_be_forged(
    app, make_agency, new_browser, make_person
):
    agency = await make_agency()
    staff, _ = await make_person(agency, "agency_staff")  # signed in: holds a device cookie
    staff_device = staff.http.cookies.get("sb_device", path=f"/a/{agency.slug}/")
    assert staff_device
    await _lock_account(agency)
    # the staff member's device cookie does not vouch for the owner
    borrowed = new_browser()
    borrowed.http.cookies.set("sb_device", staff_device, path=f"/a/{agency.slug}/")
    refused = await borrowed.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert refused.status_code == 429
    forged = new_browser()
    forged.http.cookies.set("sb_device", staff_device[:-4] + "AAAA", path=f"/a/{agency.slug}/")
    refused = await forged.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert refused.status_code == 429
