"""Recovery codes for people whose second factor is a passkey: without them, losing the
passkey would lock them out for good."""

from __future__ import annotations

import re

from tests.portal.test_passkeys import SoftAuthenticator, register

CODES = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")


async def test_a_passkey_only_person_gets_codes_and_signs_in_with_one(
    make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    slug = agency.slug
    owner = await owner_browser(agency)
    # no second factor yet: nothing to recover, no codes offered
    refused = await owner.submit(f"/a/{slug}/account", f"/a/{slug}/account/recovery-codes", {})
    assert refused.status_code == 422 and "authenticator app or a passkey first" in refused.text
    added, _ = await register(owner, slug, SoftAuthenticator())
    assert added.status_code == 200, added.text
    account = await owner.get(f"/a/{slug}/account")
    assert "You have no recovery codes left" in account.text  # the warning
    issued = await owner.submit(f"/a/{slug}/account", f"/a/{slug}/account/recovery-codes", {})
    assert issued.status_code == 200
    codes = CODES.findall(issued.text)
    assert len(codes) == 10
    assert "You have 10 unused recovery codes" in (await owner.get(f"/a/{slug}/account")).text

    # the passkey is lost: password, then a recovery code at the second step
    lost = new_browser()
    first = await lost.sign_in(slug, agency.owner_email, agency.owner_password)
    assert first.status_code == 303 and first.headers["location"].endswith("/login/verify")
    verify = await lost.get(f"/a/{slug}/login/verify")
    assert "Recovery code" in verify.text and "Use a passkey" in verify.text
    done = await lost.submit(
        f"/a/{slug}/login/verify", f"/a/{slug}/login/verify", {"code": codes[0]}
    )
    assert done.status_code == 303 and "/login" not in done.headers["location"]
    assert (await lost.get(f"/a/{slug}/clients")).status_code == 200
    # single use
    again = new_browser()
    await again.sign_in(slug, agency.owner_email, agency.owner_password)
    reused = await again.submit(
        f"/a/{slug}/login/verify", f"/a/{slug}/login/verify", {"code": codes[0]}
    )
    assert reused.status_code == 401 and "not right" in reused.text
    # new codes replace the old ones
    fresh = await owner.submit(f"/a/{slug}/account", f"/a/{slug}/account/recovery-codes", {})
    assert set(CODES.findall(fresh.text)).isdisjoint(codes)
    old = await again.submit(
        f"/a/{slug}/login/verify", f"/a/{slug}/login/verify", {"code": codes[1]}
    )
    assert old.status_code in (401, 429)
