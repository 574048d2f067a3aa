"""Tokens, hashes and password hashing (argon2id)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import uuid
from functools import lru_cache
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.kit import ids
from services.kit.ids import _b58
from services.settings import get_settings

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile defaults
# Verified against when the user does not exist, so both paths cost the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def new_token(nbytes: int = 32) -> str:
    return _b58(int.from_bytes(secrets.token_bytes(nbytes), "big"))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class MintedToken(NamedTuple):
    raw: str  # shown once, never stored
    display: str  # `<kind>_…<last 6>`: what lists show
    hash: str  # SHA-256 hex: the only thing stored


def mint_agency_token(kind: str, agency_id: uuid.UUID) -> MintedToken:
    """A new bearer credential `<kind>_<agency>_<secret>` (API keys `sbk`, SCIM tokens `sbs`):
    32 random bytes in base-58, stored by SHA-256 only. The agency part lets the lookup
    happen inside that agency alone (`agency_of_token`)."""
    secret = new_token(32)
    raw = f"{kind}_{ids.encode('a', agency_id)[2:]}_{secret}"
    return MintedToken(raw, f"{kind}_…{secret[-6:]}", sha256_hex(raw))


def agency_of_token(kind: str, raw: str) -> uuid.UUID | None:
    """The agency a `mint_agency_token` credential of `kind` names; None when `raw` is none."""
    parts = raw.split("_")
    if len(parts) != 3 or parts[0] != kind or not (30 <= len(parts[2]) <= 60):
        return None
    return ids.decode("a", f"a_{parts[1]}")


def hmac_hex(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# ---- encryption at rest (AES-256-GCM under a key derived from SECRET_KEY) ----------------------

_SEAL_FORMAT = "v1"


@lru_cache(maxsize=16)
def _kek(secret_key: str, purpose: str) -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=f"switchboard/{purpose}".encode(),
        info=b"aes-256-gcm:v1",
    ).derive(secret_key.encode())
    return AESGCM(derived)


def seal(plaintext: bytes, *, purpose: str, context: str) -> str:
    """Encrypt a secret for storage. `purpose` separates keys per use (e.g. "totp");
    `context` (e.g. "<agency>|<user>") is authenticated, so a sealed value moved to another
    row does not open."""
    nonce = os.urandom(12)
    sealed = _kek(get_settings().secret_key, purpose).encrypt(nonce, plaintext, context.encode())
    return f"{_SEAL_FORMAT}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(blob: str, *, purpose: str, context: str) -> bytes:
    fmt, _, body = blob.partition(":")
    if fmt != _SEAL_FORMAT:
        raise ValueError(f"unknown sealed-secret format {fmt!r}")
    raw = base64.urlsafe_b64decode(body.encode())
    return _kek(get_settings().secret_key, purpose).decrypt(raw[:12], raw[12:], context.encode())


def seal_compact(plaintext: bytes, *, purpose: str, context: str) -> str:
    """`seal` for a value a browser carries (a cookie, a form field, a `state` parameter):
    "v1:" + unpadded base64url, safe in cookies and URLs. `context` binds it (to an agency,
    a browser, one flow), so it opens nowhere else."""
    return seal(plaintext, purpose=purpose, context=context).rstrip("=")


def open_compact(token: str, *, purpose: str, context: str, max_length: int = 2000) -> bytes | None:
    """The plaintext behind `seal_compact`, or None for anything else: empty, too long,
    tampered, truncated, sealed for another purpose or context, or under another key."""
    if not token or len(token) > max_length:
        return None
    padded = token + "=" * (-len(token.partition(":")[2]) % 4)
    try:
        return unseal(padded, purpose=purpose, context=context)
    except Exception:  # not ours, whatever the reason: the caller treats it as absent
        return None
