"""Passkeys (WebAuthn) over HTTP, with a software authenticator written here: an EC P-256 key,
'none' attestation (CBOR attestation object), assertions signed over authenticatorData and the
SHA-256 of clientDataJSON. Registration, second factor, password-less sign-in, and the attacks:
replayed challenges, other people's and other agencies' passkeys, a counter going backwards,
a wrong origin or relying party, removal without re-authentication."""

from __future__ import annotations

import hashlib
import json
import os
import re

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.portal.conftest import PASSWORD, csrf_of

ORIGIN = "http://testserver"  # SWITCHBOARD_BASE_URL in the test settings
RP_ID = "testserver"

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(value: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


class SoftAuthenticator:
    """A platform authenticator in software: one discoverable credential."""

    AAGUID = bytes.fromhex("00112233445566778899aabbccddeeff")

    def __init__(self, *, counter: bool = True, uv: bool = True, synced: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.counter = counter
        self.uv = uv
        self.synced = synced
        self.sign_count = 0
        self.user_handle: bytes | None = None

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: x, -3: y})  # EC2, ES256, P-256

    def _flags(self, extra: int = 0) -> int:
        flags = UP | extra
        if self.uv:
            flags |= UV
        if self.synced:
            flags |= BE | BS
        return flags

    def create(self, options: dict, *, origin: str = ORIGIN, rp_id: str = RP_ID) -> dict:
        excluded = {d["id"] for d in options.get("excludeCredentials", [])}
        assert b64url(self.credential_id) not in excluded, "the browser would refuse"
        self.user_handle = unb64url(options["user"]["id"])
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags(AT)])
            + self.sign_count.to_bytes(4, "big")
            + self.AAGUID
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
        }

    def get(self, options: dict, *, origin: str = ORIGIN, rp_id: str = RP_ID) -> dict:
        allowed = [d["id"] for d in options.get("allowCredentials", [])]
        if allowed:  # the browser only offers allowed credentials
            assert b64url(self.credential_id) in allowed
        if self.counter:
            self.sign_count += 1
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([self._flags()])
            + self.sign_count.to_bytes(4, "big")
        )
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": response,
        }


# ---- driving the portal like passkeys.js does -------------------------------------------------


async def _json(browser, url: str, token: str, body: dict | None = None):
    return await browser.http.post(
        url,
        json=body or {},
        headers={"X-CSRF-Token": token, "accept": "application/json"},
    )


async def _token(browser, page_url: str) -> str:
    page = await browser.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code)
    return csrf_of(page.text)


async def register(browser, slug: str, auth: SoftAuthenticator, name: str = "Laptop", **kw):
    token = await _token(browser, f"/a/{slug}/account")
    options = await _json(browser, f"/a/{slug}/account/passkeys/options", token)
    assert options.status_code == 200, options.text
    public_key = options.json()["publicKey"]
    credential = auth.create(public_key, **kw)
    return await _json(
        browser, f"/a/{slug}/account/passkeys", token, {"name": name, "credential": credential}
    ), public_key


async def second_factor(browser, slug: str, auth: SoftAuthenticator, **kw):
    token = await _token(browser, f"/a/{slug}/login/verify")
    options = await _json(browser, f"/a/{slug}/login/verify/passkey/options", token)
    assert options.status_code == 200, options.text
    assertion = auth.get(options.json()["publicKey"], **kw)
    return await _json(
        browser, f"/a/{slug}/login/verify/passkey", token, {"credential": assertion}
    ), assertion


async def passwordless(browser, slug: str, auth: SoftAuthenticator, next_url: str = "", **kw):
    token = await _token(browser, f"/a/{slug}/login")
    options = await _json(browser, f"/a/{slug}/login/passkey/options", token)
    assert options.status_code == 200, options.text
    public_key = options.json()["publicKey"]
    assertion = auth.get(public_key, **kw)
    body = {"credential": assertion, "next": next_url}
    return await _json(browser, f"/a/{slug}/login/passkey", token, body), assertion, public_key


def _cookie(browser, name: str):
    return next((c for c in browser.http.cookies.jar if c.name == name), None)


async def _rows(agency, model):
    from sqlalchemy import select

    from services.kit.db import unit_of_work
    from tenants.context import TenantContext
    from tenants.scoping import set_tenant

    async with unit_of_work() as session:
        await set_tenant(session, TenantContext.for_agency(agency.id))
        return list((await session.execute(select(model))).scalars().all())


async def _actions(agency) -> list[str]:
    from tenants.models import AuditEvent

    return [e.action for e in await _rows(agency, AuditEvent)]


async def _refusals(agency) -> list[str]:
    """Why passkey sign-ins were refused, oldest first (the `auth.passkey_failed` reasons)."""
    from tenants.models import AuditEvent

    events = sorted(await _rows(agency, AuditEvent), key=lambda e: e.occurred_at)
    return [e.data["reason"] for e in events if e.action == "auth.passkey_failed"]


async def _passkeys(agency):
    from services.identity.models import Passkey

    return await _rows(agency, Passkey)


async def _signed_in(browser, slug: str) -> bool:
    return (await browser.get(f"/a/{slug}/clients")).status_code == 200


# ---- the flows ---------------------------------------------------------------------------------


async def test_register_then_second_factor_then_passwordless(
    make_agency, owner_browser, new_browser
):
    agency = await make_agency(name="Northwind Digital")
    slug = agency.slug
    owner = await owner_browser(agency)
    auth = SoftAuthenticator(synced=True)

    added, options = await register(owner, slug, auth, name="  MacBook   Touch ID ")
    assert added.status_code == 200, added.text
    assert added.json()["redirect"] == f"/a/{slug}/account#passkeys"
    assert _cookie(owner, "sb_webauthn") is None  # the challenge is gone with the answer
    # the options: this host, the agency's name, a stable opaque handle, preferences
    assert options["rp"] == {"name": "Northwind Digital", "id": RP_ID}
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["excludeCredentials"] == []
    assert agency.owner_email in options["user"]["name"]
    account = await owner.get(f"/a/{slug}/account")
    assert "MacBook Touch ID" in account.text and "last used never" in account.text

    [row] = await _passkeys(agency)
    assert row.credential_id == b64url(auth.credential_id)
    assert row.name == "MacBook Touch ID"
    assert row.transports == ["internal", "hybrid"]
    assert row.aaguid == "00112233-4455-6677-8899-aabbccddeeff"
    assert row.backup_eligible and row.backed_up and row.sign_count == 0
    assert row.last_used_at is None and "public_key" not in str(await _actions(agency))

    # the same handle next time, and the passkey is excluded from a second registration
    again = await _json(
        owner,
        f"/a/{slug}/account/passkeys/options",
        await _token(owner, f"/a/{slug}/account"),
    )
    assert again.json()["publicKey"]["user"]["id"] == options["user"]["id"]
    [excluded] = again.json()["publicKey"]["excludeCredentials"]
    assert excluded == {
        "id": b64url(auth.credential_id),
        "type": "public-key",
        "transports": ["internal", "hybrid"],
    }

    # second factor: the password alone leaves the session half-open
    b = new_browser()
    first = await b.sign_in(slug, agency.owner_email, agency.owner_password)
    assert first.status_code == 303 and first.headers["location"].endswith("/login/verify")
    assert not await _signed_in(b, slug)
    verify_page = await b.get(f"/a/{slug}/login/verify")
    assert "Use a passkey" in verify_page.text and 'name="code"' not in verify_page.text
    done, _ = await second_factor(b, slug, auth)
    assert done.status_code == 200, done.text
    assert done.json()["redirect"] == f"/a/{slug}/clients"
    assert await _signed_in(b, slug)
    [row] = await _passkeys(agency)
    assert row.sign_count == 1 and row.last_used_at is not None

    # password-less: no e-mail, no password, straight in (and to `next`)
    c = new_browser()
    signed, _, public_key = await passwordless(c, slug, auth, next_url=f"/a/{slug}/account")
    assert signed.status_code == 200, signed.text
    assert signed.json()["redirect"] == f"/a/{slug}/account"
    assert public_key["allowCredentials"] == []
    assert public_key["userVerification"] == "required"
    assert await _signed_in(c, slug)
    actions = await _actions(agency)
    assert "auth.passkey_added" in actions and "auth.mfa_verified" in actions
    assert actions.count("auth.login") >= 3


async def test_passkey_and_authenticator_app_side_by_side(make_agency, owner_browser, new_browser):
    from tests.portal.test_mfa import _enrol, _next_code

    agency = await make_agency()
    owner = await owner_browser(agency)
    totp, _ = await _enrol(owner, agency.slug)
    added, _ = await register(owner, agency.slug, SoftAuthenticator())
    assert added.status_code == 200
    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    page = await b.get(f"/a/{agency.slug}/login/verify")
    assert "Use a passkey" in page.text and 'name="code"' in page.text
    code = await b.submit(
        f"/a/{agency.slug}/login/verify",
        f"/a/{agency.slug}/login/verify",
        {"code": _next_code(totp)},
    )
    assert code.status_code == 303 and await _signed_in(b, agency.slug)


async def test_rename(make_agency, owner_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    await register(owner, agency.slug, SoftAuthenticator(), name="Old name")
    [row] = await _passkeys(agency)
    from services.kit import ids

    pid = ids.encode("pk", row.id)
    url = f"/a/{agency.slug}/account/passkeys/{pid}/rename"
    empty = await owner.submit(f"/a/{agency.slug}/account", url, {"name": "  "})
    assert empty.status_code == 422
    done = await owner.submit(f"/a/{agency.slug}/account", url, {"name": "Work YubiKey"})
    assert done.status_code == 303
    assert "Work YubiKey" in (await owner.get(f"/a/{agency.slug}/account")).text


async def test_a_name_is_required(make_agency, owner_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    refused, _ = await register(owner, agency.slug, SoftAuthenticator(), name="")
    assert refused.status_code == 422 and "name" in refused.json()["error"]
    assert await _passkeys(agency) == []


# ---- replays -------------------------------------------------------------------------------------


async def test_a_challenge_works_once(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    slug = agency.slug
    owner = await owner_browser(agency)
    auth = SoftAuthenticator(counter=False)  # like many synced passkeys: no counter at all
    token = await _token(owner, f"/a/{slug}/account")
    options = await _json(owner, f"/a/{slug}/account/passkeys/options", token)
    state = _cookie(owner, "sb_webauthn")
    credential = auth.create(options.json()["publicKey"])
    body = {"name": "Phone", "credential": credential}
    assert (await _json(owner, f"/a/{slug}/account/passkeys", token, body)).status_code == 200
    # the same registration again, cookie put back: refused
    owner.http.cookies.jar.set_cookie(state)
    again = await _json(owner, f"/a/{slug}/account/passkeys", token, body)
    assert again.status_code in (400, 409) and len(await _passkeys(agency)) == 1
    # a new credential on the spent challenge: refused too
    other = SoftAuthenticator().create(options.json()["publicKey"])
    owner.http.cookies.jar.set_cookie(state)
    spent = await _json(
        owner, f"/a/{slug}/account/passkeys", token, {"name": "Other", "credential": other}
    )
    assert spent.status_code == 400 and len(await _passkeys(agency)) == 1

    # password-less: the same assertion, with the same challenge cookie, does not sign in twice
    b = new_browser()
    token = await _token(b, f"/a/{slug}/login")
    options = await _json(b, f"/a/{slug}/login/passkey/options", token)
    state = _cookie(b, "sb_webauthn")
    assertion = auth.get(options.json()["publicKey"])
    first = await _json(b, f"/a/{slug}/login/passkey", token, {"credential": assertion})
    assert first.status_code == 200
    thief = new_browser()
    thief.http.cookies.jar.set_cookie(state)
    thief.http.cookies.jar.set_cookie(_cookie(b, "sb_csrf"))
    replay = await _json(thief, f"/a/{slug}/login/passkey", token, {"credential": assertion})
    assert replay.status_code == 401, replay.text
    assert _cookie(thief, "sb_session") is None
    assert (await _refusals(agency))[-1] == "challenge already used"

    # without the cookie there is no challenge at all
    c = new_browser()
    token = await _token(c, f"/a/{slug}/login")
    bare = await _json(c, f"/a/{slug}/login/passkey", token, {"credential": assertion})
    assert bare.status_code == 401
    assert (await _refusals(agency))[-1] == "no valid challenge"

    # second factor: once the half-open session is complete, the assertion is worthless
    d = new_browser()
    await d.sign_in(slug, agency.owner_email, agency.owner_password)
    token = await _token(d, f"/a/{slug}/login/verify")
    options = await _json(d, f"/a/{slug}/login/verify/passkey/options", token)
    state = _cookie(d, "sb_webauthn")
    assertion = auth.get(options.json()["publicKey"])
    ok = await _json(d, f"/a/{slug}/login/verify/passkey", token, {"credential": assertion})
    assert ok.status_code == 200
    d.http.cookies.jar.set_cookie(state)
    token = await _token(d, f"/a/{slug}/account")  # the session id changed: a new form token
    replay = await _json(d, f"/a/{slug}/login/verify/passkey", token, {"credential": assertion})
    assert replay.status_code == 401 and replay.json()["redirect"] == f"/a/{slug}/login"


async def test_a_challenge_is_bound_to_its_browser_and_expires(
    make_agency, owner_browser, new_browser, monkeypatch
):
    from datetime import timedelta

    from services.identity import passkeys
    from services.kit import types

    agency = await make_agency()
    slug = agency.slug
    owner = await owner_browser(agency)
    auth = SoftAuthenticator()
    await register(owner, slug, auth)

    # another browser's challenge cookie does not open here (bound to the CSRF cookie)
    a, b = new_browser(), new_browser()
    token_a = await _token(a, f"/a/{slug}/login")
    options = await _json(a, f"/a/{slug}/login/passkey/options", token_a)
    token_b = await _token(b, f"/a/{slug}/login")
    b.http.cookies.jar.set_cookie(_cookie(a, "sb_webauthn"))
    stolen = auth.get(options.json()["publicKey"])
    refused = await _json(b, f"/a/{slug}/login/passkey", token_b, {"credential": stolen})
    assert refused.status_code == 401
    assert (await _refusals(agency))[-1] == "no valid challenge"

    # five minutes later the challenge is dead
    token_a = await _token(a, f"/a/{slug}/login")
    options = await _json(a, f"/a/{slug}/login/passkey/options", token_a)
    late = types.utcnow() + passkeys.CHALLENGE_TTL + timedelta(seconds=1)
    monkeypatch.setattr(passkeys, "utcnow", lambda: late)
    assertion = auth.get(options.json()["publicKey"])
    expired = await _json(a, f"/a/{slug}/login/passkey", token_a, {"credential": assertion})
    assert expired.status_code == 401 and "expired" in expired.json()["error"]


# ---- whose passkey -----------------------------------------------------------------------------


async def test_another_persons_passkey_is_refused(
    client, make_agency, owner_browser, make_person, new_browser
):
    agency = await make_agency()
    slug = agency.slug
    owner = await owner_browser(agency)
    owner_key = SoftAuthenticator()
    await register(owner, slug, owner_key)
    staff, _ = await make_person(agency, "agency_staff")
    staff_key = SoftAuthenticator()
    added, _ = await register(staff, slug, staff_key)
    assert added.status_code == 200

    # the staff member's half-open session, answered with the owner's passkey
    staff_email = next(
        u["email"]
        for u in (await client.get("/api/v1/users", headers=agency.headers)).json()["items"]
        if u["email"] != agency.owner_email
    )
    b = new_browser()
    first = await b.sign_in(slug, staff_email, PASSWORD)
    assert first.headers["location"].endswith("/login/verify")
    token = await _token(b, f"/a/{slug}/login/verify")
    options = await _json(b, f"/a/{slug}/login/verify/passkey/options", token)
    public_key = options.json()["publicKey"]
    assert [d["id"] for d in public_key["allowCredentials"]] == [b64url(staff_key.credential_id)]
    forged = owner_key.get({**public_key, "allowCredentials": []})
    refused = await _json(b, f"/a/{slug}/login/verify/passkey", token, {"credential": forged})
    assert refused.status_code == 401 and not await _signed_in(b, slug)
    assert (await _refusals(agency))[-1] == "not a passkey of this person"
    # a user handle that is not the passkey's owner's is refused password-less
    c = new_browser()
    staff_key.user_handle = owner_key.user_handle
    swapped, _, _ = await passwordless(c, slug, staff_key)
    assert swapped.status_code == 401 and not await _signed_in(c, slug)
    assert (await _refusals(agency))[-1] == "inactive person or user handle mismatch"


async def test_a_passkey_of_another_agency_signs_in_nowhere_else(
    make_agency, owner_browser, new_browser
):
    a = await make_agency()
    b = await make_agency()
    owner_a = await owner_browser(a)
    key_a = SoftAuthenticator()
    added, _ = await register(owner_a, a.slug, key_a)
    assert added.status_code == 200
    # same host, same relying party: the browser would offer it at agency B too
    x = new_browser()
    refused, _, _ = await passwordless(x, b.slug, key_a)
    assert refused.status_code == 401 and "not registered" in refused.json()["error"]
    assert not await _signed_in(x, b.slug) and not await _signed_in(x, a.slug)
    assert await _refusals(b) == ["unknown passkey"]

    # nor as the second factor of someone at B
    owner_b = await owner_browser(b)
    await register(owner_b, b.slug, SoftAuthenticator())
    y = new_browser()
    await y.sign_in(b.slug, b.owner_email, b.owner_password)
    token = await _token(y, f"/a/{b.slug}/login/verify")
    options = await _json(y, f"/a/{b.slug}/login/verify/passkey/options", token)
    forged = key_a.get({**options.json()["publicKey"], "allowCredentials": []})
    refused = await _json(y, f"/a/{b.slug}/login/verify/passkey", token, {"credential": forged})
    assert refused.status_code == 401 and not await _signed_in(y, b.slug)
    assert (await _refusals(b))[-1] == "not a passkey of this person"

    # and a challenge issued at A does not open at B (sealed to the agency, cookie path too)
    z = new_browser()
    token_a = await _token(z, f"/a/{a.slug}/login")
    options = await _json(z, f"/a/{a.slug}/login/passkey/options", token_a)
    state = _cookie(z, "sb_webauthn")
    state.path = f"/a/{b.slug}/"
    z.http.cookies.jar.set_cookie(state)
    token_b = await _token(z, f"/a/{b.slug}/login")
    moved = await _json(
        z,
        f"/a/{b.slug}/login/passkey",
        token_b,
        {"credential": key_a.get(options.json()["publicKey"])},
    )
    assert moved.status_code == 401
    assert (await _refusals(b))[-1] == "no valid challenge"


# ---- what the authenticator says ----------------------------------------------------------------


async def test_a_counter_going_backwards_is_refused_and_audited(
    make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    owner = await owner_browser(agency)
    auth = SoftAuthenticator()
    await register(owner, agency.slug, auth)
    ok, _, _ = await passwordless(new_browser(), agency.slug, auth)
    ok, _, _ = await passwordless(new_browser(), agency.slug, auth)
    assert ok.status_code == 200
    auth.sign_count = 1  # a clone made after the first use: its next count (2) is not news
    b = new_browser()
    refused, _, _ = await passwordless(b, agency.slug, auth)
    assert refused.status_code == 401 and not await _signed_in(b, agency.slug)
    assert "auth.passkey_counter_regressed" in await _actions(agency)
    assert await _refusals(agency) == ["sign count regressed"]
    [row] = await _passkeys(agency)
    assert row.sign_count == 2


async def test_wrong_origin_or_relying_party_is_refused(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    auth = SoftAuthenticator()
    phished, _ = await register(owner, agency.slug, auth, origin="https://testserver.evil.example")
    assert phished.status_code == 400 and await _passkeys(agency) == []
    other_rp, _ = await register(owner, agency.slug, auth, rp_id="evil.example")
    assert other_rp.status_code == 400 and await _passkeys(agency) == []
    assert (await register(owner, agency.slug, auth))[0].status_code == 200

    for kw, why in (({"origin": "https://evil.example"}, "origin"), ({"rp_id": "x.y"}, "RP ID")):
        b = new_browser()
        refused, _, _ = await passwordless(b, agency.slug, auth, **kw)
        assert refused.status_code == 401, kw
        assert not await _signed_in(b, agency.slug)
        assert why in (await _refusals(agency))[-1]
        c = new_browser()
        await c.sign_in(agency.slug, agency.owner_email, agency.owner_password)
        refused, _ = await second_factor(c, agency.slug, auth, **kw)
        assert refused.status_code == 401 and not await _signed_in(c, agency.slug)
        assert why in (await _refusals(agency))[-1]


async def test_passwordless_needs_user_verification(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    auth = SoftAuthenticator(uv=False)  # a security key touched, no PIN
    await register(owner, agency.slug, auth)
    b = new_browser()
    refused, _, _ = await passwordless(b, agency.slug, auth)
    assert refused.status_code == 401 and not await _signed_in(b, agency.slug)
    assert "User verification is required" in (await _refusals(agency))[-1]
    # as the second step after the password, presence is enough
    c = new_browser()
    await c.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    done, _ = await second_factor(c, agency.slug, auth)
    assert done.status_code == 200 and await _signed_in(c, agency.slug)


async def test_bad_assertions_are_throttled(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    auth = SoftAuthenticator()
    await register(owner, agency.slug, auth)
    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    impostor = SoftAuthenticator()
    impostor.credential_id = auth.credential_id  # right id, wrong key
    for _ in range(5):
        wrong, _ = await second_factor(b, agency.slug, impostor)
        assert wrong.status_code == 401
    locked, _ = await second_factor(b, agency.slug, auth)
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert not await _signed_in(b, agency.slug)


async def test_codes_and_passkeys_count_against_one_lock(make_agency, owner_browser, new_browser):
    """Wrong authenticator codes and refused passkey assertions add up on the person's one
    second-factor key (`throttle.second_factor_keys`): switching factors buys no attempts."""
    from tests.portal.test_mfa import _enrol, _next_code

    agency = await make_agency()
    owner = await owner_browser(agency)
    auth = SoftAuthenticator()
    await register(owner, agency.slug, auth)
    totp, _ = await _enrol(owner, agency.slug)
    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    verify = f"/a/{agency.slug}/login/verify"
    wrong = "000000" if totp.now() != "000000" else "111111"
    for _ in range(3):
        assert (await b.submit(verify, verify, {"code": wrong})).status_code == 401
    impostor = SoftAuthenticator()
    impostor.credential_id = auth.credential_id  # right id, wrong key
    for _ in range(2):
        refused, _ = await second_factor(b, agency.slug, impostor)
        assert refused.status_code == 401
    assert (await b.submit(verify, verify, {"code": _next_code(totp)})).status_code == 429
    locked, _ = await second_factor(b, agency.slug, auth)
    assert locked.status_code == 429 and not await _signed_in(b, agency.slug)


async def test_json_posts_need_the_csrf_header(make_agency, owner_browser, new_browser):
    agency = await make_agency()
    owner = await owner_browser(agency)
    url = f"/a/{agency.slug}/account/passkeys/options"
    token = await _token(owner, f"/a/{agency.slug}/account")
    assert (await owner.http.post(url, json={})).status_code == 403
    assert (
        await owner.http.post(url, data={"csrf_token": token}, headers={"X-CSRF-Token": token})
    ).status_code == 403  # a form post, even with the token: JSON only
    cross = await owner.http.post(
        url, json={}, headers={"X-CSRF-Token": token, "origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    anonymous = new_browser()
    login_token = await _token(anonymous, f"/a/{agency.slug}/login")
    assert (await _json(anonymous, url, login_token)).status_code in (302, 303)


# ---- removing, and the agency's policy ----------------------------------------------------------


async def test_removing_needs_the_password_or_a_code(make_agency, owner_browser):
    from services.kit import ids
    from tests.portal.test_mfa import _enrol

    agency = await make_agency()
    slug = agency.slug
    owner = await owner_browser(agency)
    await register(owner, slug, SoftAuthenticator(), name="One")
    await register(owner, slug, SoftAuthenticator(), name="Two")
    one, two = sorted(await _passkeys(agency), key=lambda r: r.name)
    account = f"/a/{slug}/account"

    def url(row) -> str:
        return f"/a/{slug}/account/passkeys/{ids.encode('pk', row.id)}/remove"

    bare = await owner.submit(account, url(one), {})
    assert bare.status_code == 422
    wrong = await owner.submit(account, url(one), {"password": "not-the-password"})
    assert wrong.status_code == 422 and len(await _passkeys(agency)) == 2
    assert "auth.reauth_failed" in await _actions(agency)
    done = await owner.submit(account, url(one), {"password": agency.owner_password})
    assert done.status_code == 303
    assert [r.name for r in await _passkeys(agency)] == ["Two"]
    assert "auth.passkey_removed" in await _actions(agency)

    # with an authenticator app, a recovery code works too
    _, codes = await _enrol(owner, slug)
    done = await owner.submit(account, url(two), {"code": codes[0]})
    assert done.status_code == 303 and await _passkeys(agency) == []

    # someone else's passkey id is not found
    other = await make_agency()
    other_owner = await owner_browser(other)
    await register(other_owner, other.slug, SoftAuthenticator())
    [theirs] = await _passkeys(other)
    not_mine = await owner.submit(account, url(theirs), {"password": agency.owner_password})
    assert not_mine.status_code == 404 and len(await _passkeys(other)) == 1


async def test_wrong_passwords_for_removal_are_throttled(make_agency, owner_browser):
    from services.kit import ids

    agency = await make_agency()
    owner = await owner_browser(agency)
    await register(owner, agency.slug, SoftAuthenticator())
    [row] = await _passkeys(agency)
    url = f"/a/{agency.slug}/account/passkeys/{ids.encode('pk', row.id)}/remove"
    for _ in range(5):
        await owner.submit(f"/a/{agency.slug}/account", url, {"password": "guess-guess-guess"})
    locked = await owner.submit(
        f"/a/{agency.slug}/account", url, {"password": agency.owner_password}
    )
    assert locked.status_code == 429 and len(await _passkeys(agency)) == 1


async def test_a_passkey_satisfies_the_agency_policy(client, make_agency, new_browser):
    agency = await make_agency()
    on = await client.patch("/api/v1/agency", headers=agency.headers, json={"mfa_required": True})
    assert on.status_code == 200
    b = new_browser()
    await b.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    blocked = await b.get(f"/a/{agency.slug}/clients")
    assert blocked.status_code == 303 and blocked.headers["location"].endswith(
        "/account?required=1"
    )
    page = await b.get(f"/a/{agency.slug}/account?required=1")
    assert "add a passkey" in page.text
    held = b.http.cookies.get("sb_session")
    auth = SoftAuthenticator()
    added, _ = await register(b, agency.slug, auth)
    assert added.status_code == 200
    assert await _signed_in(b, agency.slug)
    # the held session became a full one: a new session id, the old cookie worth nothing
    assert b.http.cookies.get("sb_session") not in (None, held)
    stale = new_browser()
    stale.http.cookies.set("sb_session", held, path=f"/a/{agency.slug}")
    assert not await _signed_in(stale, agency.slug)
    # and from now on the password alone is not enough
    c = new_browser()
    first = await c.sign_in(agency.slug, agency.owner_email, agency.owner_password)
    assert first.headers["location"].endswith("/login/verify")
    done, _ = await second_factor(c, agency.slug, auth)
    assert done.status_code == 200 and await _signed_in(c, agency.slug)


@pytest.mark.parametrize("page", ["login", "account"])
async def test_pages_load_the_script_and_hide_the_buttons_without_it(
    page, make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    b = await owner_browser(agency) if page == "account" else new_browser()
    html = (await b.get(f"/a/{agency.slug}/{page}")).text
    assert re.search(r'<script src="/static/js/passkeys\.js\?v=\w+" defer></script>', html)
    assert "<div data-passkey-supported hidden>" in html
    assert "onclick" not in html and "<script>" not in html


async def test_a_passkey_second_factor_issues_a_new_session_id(
    make_agency, owner_browser, new_browser
):
    agency = await make_agency()
    slug = agency.slug
    owner = await owner_browser(agency)
    auth = SoftAuthenticator()
    assert (await register(owner, slug, auth))[0].status_code == 200
    b = new_browser()
    await b.sign_in(slug, agency.owner_email, agency.owner_password)
    half_open = _cookie(b, "sb_session").value
    done, _ = await second_factor(b, slug, auth)
    assert done.status_code == 200, done.text
    assert _cookie(b, "sb_session").value != half_open
    assert await _signed_in(b, slug)
    planted = new_browser()
    planted.http.cookies.set("sb_session", half_open, path=f"/a/{slug}/")
    assert not await _signed_in(planted, slug)
