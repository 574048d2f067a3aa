"""Completing the second-factor set-up an agency requires is a privilege change: the session
that was held to the account page is replaced by a new one (a new id), as when a second
factor is accepted at sign-in (`sessions.rotate_session`)."""

from __future__ import annotations

import pyotp

from services.identity import mfa, signin
from services.identity import repository as repo
from services.kit.db import unit_of_work
from tenants.context import TenantContext
from tenants.models import Agency
from tenants.scoping import set_tenant


async def _agency_row(session, agency) -> Agency:
    await set_tenant(session, TenantContext.for_agency(agency.id))
    row = await session.get(Agency, agency.id)
    assert row is not None
    return row


async def _signed_in(agency) -> str:
    async with unit_of_work() as session:
        row = await _agency_row(session, agency)
        _, token = await signin.sign_in(
            session,
            row,
            email=agency.owner_email,
            password=agency.owner_password,
            ip="203.0.113.7",
            user_agent="test",
        )
    return token


async def _principal(agency, token):
    async with unit_of_work() as session:
        return await signin.resolve_browser_session(
            session, await _agency_row(session, agency), token
        )


async def _enrol_and_finish(agency, token) -> str | None:
    """In one unit of work, as the portal's request does: resolve the cookie, set up an
    authenticator app, then finish the set-up."""
    async with unit_of_work() as session:
        row = await _agency_row(session, agency)
        principal = await signin.resolve_browser_session(session, row, token)
        assert principal is not None
        user = await repo.user(session, principal.user_id)
        assert user is not None
        enrolment = await mfa.start_enrolment(session, row, user)
        await mfa.confirm_enrolment(session, row, user, pyotp.TOTP(enrolment.secret).now())
        return await signin.finish_second_factor_setup(session, row, principal)


async def test_completing_a_forced_set_up_rotates_the_session(client, make_agency):
    agency = await make_agency()
    on = await client.patch("/api/v1/agency", headers=agency.headers, json={"mfa_required": True})
    assert on.status_code == 200
    token = await _signed_in(agency)
    held = await _principal(agency, token)
    assert held is not None and held.extra.get("second_factor") == "setup_required"

    fresh = await _enrol_and_finish(agency, token)

    assert fresh is not None and fresh != token
    assert await _principal(agency, token) is None  # the old id no longer works
    full = await _principal(agency, fresh)
    assert full is not None and full.user_id == held.user_id
    assert full.session_id != held.session_id and "second_factor" not in full.extra


async def test_a_set_up_nobody_required_keeps_the_session(make_agency):
    agency = await make_agency()  # the agency does not require a second factor
    token = await _signed_in(agency)
    assert await _enrol_and_finish(agency, token) is None
    assert await _principal(agency, token) is not None


async def test_nothing_changes_before_a_second_factor_exists(client, make_agency):
    agency = await make_agency()
    on = await client.patch("/api/v1/agency", headers=agency.headers, json={"mfa_required": True})
    assert on.status_code == 200
    token = await _signed_in(agency)
    async with unit_of_work() as session:
        row = await _agency_row(session, agency)
        principal = await signin.resolve_browser_session(session, row, token)
        assert principal is not None
        assert await signin.finish_second_factor_setup(session, row, principal) is None
    assert (await _principal(agency, token)).extra.get("second_factor") == "setup_required"
