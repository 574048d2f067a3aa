"""Passkeys (WebAuthn, through py_webauthn): a second factor, or a sign-in on their own.

Every agency's portal lives under the one host of `SWITCHBOARD_BASE_URL`, so that host is the
relying-party id of every agency; the agency's name is the relying-party name shown by the
browser. The user handle is the person's id (16 random bytes, never their e-mail): one
authenticator can hold passkeys for several agencies side by side, and a passkey is only ever
looked up inside the agency whose portal is asking, so another agency's passkey is unknown.

Ceremonies. `begin_*` makes a random challenge and returns the options for the browser and a
*state*: the challenge, its purpose, the person (if known) and its issue time, sealed with
AES-256-GCM under a key derived from `SWITCHBOARD_SECRET_KEY`, with the agency, the purpose
and a hash of the browser's binding cookie (the session token, or the CSRF cookie before
sign-in) as associated data. The portal keeps it in a five-minute HttpOnly cookie and hands it
back to `finish_*` / `complete_sign_in` / `sign_in`, which refuse a state that is expired, of
another purpose, agency, person or browser. A challenge works once: using it is a state change
that can happen once only (a conditional UPDATE on the passkey: `last_used_at` must be older
than the challenge; for a registration: no passkey of the person may be newer than it), and
the cookie is dropped with every answer.

Failures are throttled like wrong authenticator codes (key `mfa:<user>`; password-less also
`ip:<address>`). A signature counter that goes backwards means a cloned authenticator: the
sign-in is refused and `auth.passkey_counter_regressed` is audited.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    generate_challenge,
    options_to_json_dict,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from services.identity import mfa
from services.identity import repository as repo
from services.identity.models import AuthThrottle, Passkey
from services.identity.sessions import open_session, rotate_session
from services.identity.throttle import count_failure, refuse_if_throttled, second_factor_keys
from services.kit.crypto import open_compact, seal_compact, sha256_hex, verify_password
from services.kit.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from services.kit.types import utcnow
from services.settings import get_settings
from tenants import audit
from tenants.models import Agency, User, UserStatus

CHALLENGE_TTL = timedelta(minutes=5)
TIMEOUT_MS = 120_000  # how long the browser's prompt stays open (well inside the TTL)
MAX_PASSKEYS = 20
NAME_MAX = 120

REGISTER = "register"
SECOND_FACTOR = "second-factor"
PASSWORDLESS = "passwordless"
_SEAL_PURPOSE = "identity/webauthn-challenge"
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)


# ---- relying party -----------------------------------------------------------------------------


def rp_id() -> str:
    """The host of SWITCHBOARD_BASE_URL (no scheme, no port)."""
    host = urlsplit(get_settings().base_url).hostname
    if not host:
        raise RuntimeError("SWITCHBOARD_BASE_URL has no host")
    return host


def expected_origin() -> str:
    parts = urlsplit(get_settings().base_url)
    return f"{parts.scheme}://{parts.netloc}"


def user_handle(user: User) -> bytes:
    """Stable per person and unique across agencies; reveals nothing about them."""
    return user.id.bytes


def _descriptor(pk: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for t in pk.transports or []:
        try:
            transports.append(AuthenticatorTransport(t))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(pk.credential_id), transports=transports or None
    )


# ---- challenge state (sealed; kept by the portal in a short-lived cookie) ----------------------


@dataclass(frozen=True)
class Ceremony:
    """What `begin_*` hands the portal: options for the browser, and the sealed challenge."""

    options: dict[str, Any]
    state: str


@dataclass(frozen=True)
class _Challenge:
    challenge: bytes
    user_id: uuid.UUID | None
    issued_at: datetime


def _context(agency: Agency, purpose: str, binding: str) -> str:
    return f"{agency.id}|{purpose}|{sha256_hex(binding)}"


def _seal_state(
    agency: Agency, purpose: str, binding: str, challenge: bytes, user_id: uuid.UUID | None
) -> str:
    body = {
        "c": bytes_to_base64url(challenge),
        "u": str(user_id) if user_id else None,
        "iat": utcnow().isoformat(),
    }
    return seal_compact(
        json.dumps(body).encode(),
        purpose=_SEAL_PURPOSE,
        context=_context(agency, purpose, binding),
    )


def _open_state(agency: Agency, purpose: str, binding: str, state: str) -> _Challenge | None:
    """The challenge behind a state, or None when it is not one of ours for this agency,
    purpose and browser, or older than five minutes."""
    if not binding:
        return None
    raw = open_compact(state, purpose=_SEAL_PURPOSE, context=_context(agency, purpose, binding))
    if raw is None:
        return None
    try:
        body = json.loads(raw)
        issued_at = datetime.fromisoformat(body["iat"])
        challenge = _Challenge(
            challenge=base64url_to_bytes(body["c"]),
            user_id=uuid.UUID(body["u"]) if body.get("u") else None,
            issued_at=issued_at,
        )
    except Exception:  # sealed by us but not a state's shape: not a state
        return None
    if utcnow() - challenge.issued_at >= CHALLENGE_TTL:
        return None
    return challenge


def _credential_id(credential: object) -> str | None:
    """The credential id the browser reports, normalised to unpadded base64url."""
    if not isinstance(credential, dict):
        return None
    raw = credential.get("rawId") or credential.get("id")
    if not isinstance(raw, str) or not raw or len(raw) > 1400:
        return None
    try:
        return bytes_to_base64url(base64url_to_bytes(raw))
    except Exception:
        return None


# ---- listing, naming, removing -------------------------------------------------------------


async def passkeys_of(session: AsyncSession, user_id: uuid.UUID) -> list[Passkey]:
    return await repo.passkeys_of(session, user_id)


def _clean_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ValidationFailed("give the passkey a name you will recognise", field="name")
    if len(cleaned) > NAME_MAX:
        raise ValidationFailed(f"the name is longer than {NAME_MAX} characters", field="name")
    return cleaned


async def _own(session: AsyncSession, user: User, passkey_id: uuid.UUID) -> Passkey:
    pk = await repo.passkey(session, passkey_id)
    if pk is None or pk.user_id != user.id:
        raise NotFound("no such passkey")
    return pk


async def rename(session: AsyncSession, user: User, passkey_id: uuid.UUID, name: str) -> Passkey:
    pk = await _own(session, user, passkey_id)
    pk.name = _clean_name(name)
    await session.flush()
    return pk


async def remove(
    session: AsyncSession,
    agency: Agency,
    user: User,
    passkey_id: uuid.UUID,
    *,
    password: str = "",
    code: str = "",
) -> None:
    """Remove a passkey, proven with the account's password or a current authenticator (or
    recovery) code. Wrong proofs are throttled like wrong codes."""
    pk = await _own(session, user, passkey_id)
    keys = second_factor_keys(user.id)
    rows = await refuse_if_throttled(session, agency, keys, user.email)
    proven = bool(password) and verify_password(user.password_hash, password[:1024])
    if not proven and code:
        proven = await mfa.accept_code(session, user, code) is not None
    if not proven:
        await count_failure(session, agency, keys, rows)
        audit.record(
            session,
            "auth.reauth_failed",
            agency_id=agency.id,
            target_type="user",
            target_id=user.id,
            data={"for": "passkey_remove"},
        )
        raise ValidationFailed(
            "that is not your password or a current code from your app", field="password"
        )
    await session.delete(pk)
    audit.record(
        session,
        "auth.passkey_removed",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"passkey_id": pk.id, "name": pk.name},
    )
    await session.flush()


# ---- registration --------------------------------------------------------------------------


async def begin_registration(
    session: AsyncSession, agency: Agency, user: User, *, binding: str
) -> Ceremony:
    """Options for `navigator.credentials.create()`; `binding` is the session cookie."""
    existing = await repo.passkeys_of(session, user.id)
    if len(existing) >= MAX_PASSKEYS:
        raise Conflict(f"you have {MAX_PASSKEYS} passkeys already; remove one first")
    challenge = generate_challenge()
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=agency.name,
        user_id=user_handle(user),
        # One host serves every agency: the agency's name tells the person's accounts apart.
        user_name=f"{user.email} ({agency.name})",
        user_display_name=user.name or user.email,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(pk) for pk in existing],
    )
    state = _seal_state(agency, REGISTER, binding, challenge, user.id)
    return Ceremony(options_to_json_dict(options), state)


async def finish_registration(
    session: AsyncSession,
    agency: Agency,
    user: User,
    *,
    state: str,
    binding: str,
    credential: object,
    name: str,
) -> Passkey:
    """Check the browser's answer to `begin_registration` and keep the passkey."""
    name = _clean_name(name)
    found = _open_state(agency, REGISTER, binding, state)
    if found is None or found.user_id != user.id:
        raise Unauthorized("this passkey set-up has expired; start again")
    # Single use: a passkey registered since this challenge was issued has spent it.
    if await repo.passkeys_created_since(session, user.id, found.issued_at):
        raise Unauthorized("this passkey set-up was already used; start again")
    if not isinstance(credential, dict):
        raise Unauthorized("the browser's answer could not be read")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=found.challenge,
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
        )
    except Exception as exc:  # any malformed or unverifiable answer
        audit.record(
            session,
            "auth.passkey_rejected",
            agency_id=agency.id,
            target_type="user",
            target_id=user.id,
            data={"ceremony": REGISTER, "reason": str(exc)[:200]},
        )
        raise Unauthorized("the passkey could not be verified") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if await repo.passkey_by_credential(session, credential_id) is not None:
        raise Conflict("this passkey is already registered")
    if len(await repo.passkeys_of(session, user.id)) >= MAX_PASSKEYS:
        raise Conflict(f"you have {MAX_PASSKEYS} passkeys already; remove one first")
    transports = credential.get("response", {}).get("transports")
    pk = Passkey(
        agency_id=agency.id,
        user_id=user.id,
        name=name,
        credential_id=credential_id,
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        transports=[t for t in transports if t in _TRANSPORTS][:8]
        if isinstance(transports, list)
        else [],
        aaguid=verified.aaguid or None,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
    )
    session.add(pk)
    audit.record(
        session,
        "auth.passkey_added",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"name": name, "aaguid": pk.aaguid, "user_verified": verified.user_verified},
    )
    await session.flush()
    return pk


# ---- authentication ------------------------------------------------------------------------


async def begin_authentication(
    session: AsyncSession, agency: Agency, *, binding: str, user: User | None = None
) -> Ceremony:
    """Options for `navigator.credentials.get()`.

    With `user` (second factor; `binding` = the half-open session's cookie): their passkeys are
    allowed, user verification preferred. Without (password-less; `binding` = the browser's
    CSRF cookie): any discoverable passkey, and the authenticator must verify the person.
    """
    challenge = generate_challenge()
    if user is not None:
        mine = await repo.passkeys_of(session, user.id)
        if not mine:
            raise NotFound("no passkey is registered for this account")
        options = generate_authentication_options(
            rp_id=rp_id(),
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(pk) for pk in mine],
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        state = _seal_state(agency, SECOND_FACTOR, binding, challenge, user.id)
    else:
        options = generate_authentication_options(
            rp_id=rp_id(),
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        state = _seal_state(agency, PASSWORDLESS, binding, challenge, None)
    return Ceremony(options_to_json_dict(options), state)


async def _refuse(
    session: AsyncSession,
    agency: Agency,
    keys: list[str],
    rows: list[AuthThrottle],
    *,
    user: User | None,
    ceremony: str,
    reason: str,
    message: str,
) -> Unauthorized:
    await count_failure(session, agency, keys, rows)
    audit.record(
        session,
        "auth.passkey_failed",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id if user else None,
        data={"ceremony": ceremony, "reason": reason[:200]},
    )
    return Unauthorized(message)


_NOT_VERIFIED = "the passkey could not be verified; try again"


async def _verify_and_spend(
    session: AsyncSession,
    agency: Agency,
    *,
    found: _Challenge,
    credential: dict[str, Any],
    pk: Passkey,
    user: User,
    keys: list[str],
    rows: list[AuthThrottle],
    ceremony: str,
) -> None:
    """Check the assertion against the stored key; then spend the challenge, exactly once."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=found.challenge,
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
            credential_public_key=base64url_to_bytes(pk.public_key),
            credential_current_sign_count=0,  # compared below, after the signature is checked
            require_user_verification=ceremony == PASSWORDLESS,
        )
    except Exception as exc:  # any malformed or unverifiable answer
        raise await _refuse(
            session,
            agency,
            keys,
            rows,
            user=user,
            ceremony=ceremony,
            reason=str(exc),
            message=_NOT_VERIFIED,
        ) from None
    stored, received = pk.sign_count, verified.new_sign_count
    if (stored or received) and received <= stored:
        # A genuine signature with a counter that went backwards: a cloned authenticator.
        audit.record(
            session,
            "auth.passkey_counter_regressed",
            agency_id=agency.id,
            target_type="user",
            target_id=user.id,
            data={"passkey_id": pk.id, "stored": stored, "received": received},
        )
        raise await _refuse(
            session,
            agency,
            keys,
            rows,
            user=user,
            ceremony=ceremony,
            reason="sign count regressed",
            message="this passkey was refused; use another way to sign in",
        )
    spent = await session.execute(
        update(Passkey)
        .where(
            Passkey.id == pk.id,
            or_(Passkey.last_used_at.is_(None), Passkey.last_used_at < found.issued_at),
        )
        .values(
            sign_count=received,
            last_used_at=utcnow(),
            backed_up=verified.credential_backed_up,
        )
        .execution_options(synchronize_session="fetch")
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise await _refuse(
            session,
            agency,
            keys,
            rows,
            user=user,
            ceremony=ceremony,
            reason="challenge already used",
            message=_NOT_VERIFIED,
        )


async def complete_sign_in(
    session: AsyncSession,
    agency: Agency,
    token: str,
    *,
    state: str,
    credential: object,
) -> tuple[User, str]:
    """Accept a passkey as the second factor of a half-open (`mfa_pending`) session: like
    `mfa.complete_sign_in`, a new session replaces it; returns (user, its cookie token)."""
    pending = await mfa.pending_sign_in(session, agency, token)
    if pending is None:
        raise NotFound("this sign-in has expired; start again")
    row, user = pending
    keys = second_factor_keys(user.id)
    rows = await refuse_if_throttled(session, agency, keys, user.email)
    found = _open_state(agency, SECOND_FACTOR, token, state)
    if found is None or found.user_id != user.id:
        raise await _refuse(
            session,
            agency,
            keys,
            rows,
            user=user,
            ceremony=SECOND_FACTOR,
            reason="no valid challenge",
            message="this passkey request has expired; try again",
        )
    credential_id = _credential_id(credential)
    pk = await repo.passkey_by_credential(session, credential_id) if credential_id else None
    if pk is None or pk.user_id != user.id or not isinstance(credential, dict):
        raise await _refuse(
            session,
            agency,
            keys,
            rows,
            user=user,
            ceremony=SECOND_FACTOR,
            reason="not a passkey of this person",
            message="that passkey is not registered for your account",
        )
    await _verify_and_spend(
        session,
        agency,
        found=found,
        credential=credential,
        pk=pk,
        user=user,
        keys=keys,
        rows=rows,
        ceremony=SECOND_FACTOR,
    )
    fresh = await rotate_session(session, agency, row, user)
    for key in keys:
        await repo.clear_throttle(session, key)
    audit.record(
        session,
        "auth.mfa_verified",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"method": "passkey", "passkey_id": pk.id},
    )
    await session.flush()
    return user, fresh


async def sign_in(
    session: AsyncSession,
    agency: Agency,
    *,
    state: str,
    binding: str,
    credential: object,
    ip: str | None,
    user_agent: str | None,
) -> tuple[User, str]:
    """Password-less sign-in: a discoverable passkey whose authenticator verified the person
    (something they have + something they are or know) opens a full session."""
    ip_keys = [f"ip:{ip}"] if ip else []
    ip_rows = await refuse_if_throttled(session, agency, ip_keys, "")
    found = _open_state(agency, PASSWORDLESS, binding, state)
    if found is None:
        raise await _refuse(
            session,
            agency,
            ip_keys,
            ip_rows,
            user=None,
            ceremony=PASSWORDLESS,
            reason="no valid challenge",
            message="this passkey request has expired; try again",
        )
    credential_id = _credential_id(credential)
    pk = await repo.passkey_by_credential(session, credential_id) if credential_id else None
    user = await repo.user(session, pk.user_id) if pk is not None else None
    if pk is None or user is None or not isinstance(credential, dict):
        raise await _refuse(
            session,
            agency,
            ip_keys,
            ip_rows,
            user=None,
            ceremony=PASSWORDLESS,
            reason="unknown passkey",
            message="that passkey is not registered for this portal",
        )
    user_keys = second_factor_keys(user.id)
    user_rows = await refuse_if_throttled(session, agency, user_keys, user.email)
    keys, rows = ip_keys + user_keys, ip_rows + user_rows
    handle = (credential.get("response") or {}).get("userHandle")
    if user.status != UserStatus.ACTIVE or (
        handle and _b64(handle) != bytes_to_base64url(user_handle(user))
    ):
        raise await _refuse(
            session,
            agency,
            keys,
            rows,
            user=user,
            ceremony=PASSWORDLESS,
            reason="inactive person or user handle mismatch",
            message="that passkey cannot sign in here",
        )
    await _verify_and_spend(
        session,
        agency,
        found=found,
        credential=credential,
        pk=pk,
        user=user,
        keys=keys,
        rows=rows,
        ceremony=PASSWORDLESS,
    )
    for key in user_keys:
        await repo.clear_throttle(session, key)
    token = await open_session(session, agency, user, ip=ip, user_agent=user_agent)
    audit.record(
        session,
        "auth.login",
        agency_id=agency.id,
        target_type="user",
        target_id=user.id,
        data={"method": "passkey", "passkey_id": pk.id},
    )
    await session.flush()
    return user, token


def _b64(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes_to_base64url(base64url_to_bytes(value))
    except Exception:
        return None


__all__ = [
    "CHALLENGE_TTL",
    "Ceremony",
    "begin_authentication",
    "begin_registration",
    "complete_sign_in",
    "finish_registration",
    "passkeys_of",
    "remove",
    "rename",
    "sign_in",
]
