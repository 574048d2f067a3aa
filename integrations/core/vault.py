"""The credential vault: what a connection needs to call its vendor (OAuth tokens, API keys,
consumer secrets), sealed at rest with a key that can be rotated.

Two types keep plaintext and sealed credentials apart, so that the one cannot be stored or
sent where the other belongs:

* `Credentials`: the plaintext, in memory only. It prints, logs and reprs as the names of its
  fields, never their values; it is not JSON-serializable and refuses to be pickled, so it
  cannot end up in a response, a log line or a task message by accident. A value is read by
  name (`creds["access_token"]`).
* `SealedCredentials`: what a column holds, `sbv1.<kid>.<base64url(nonce | ciphertext)>`:
  AES-256-GCM under the vault key `kid`, the context (which agency, which connection, what
  for) authenticated with it, so a sealed value copied to another row does not open.

Keys come from `SWITCHBOARD_VAULT_KEYS` (`kid:key,kid:key`, each key 32 random bytes in
base64url; the first seals, all open). Unset, one key is derived from the installation's
secret (`kid` "s0"). Rotation: put the new key first, then re-seal what the old one sealed
(`rekey`, or `needs_rekey` to find it); drop the old key once nothing uses it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.settings import get_settings, parse_vault_keys

FORMAT = "sbv1"
DERIVED_KID = "s0"
_NONCE = 12


class VaultError(Exception):
    """Sealed credentials that do not open here: tampered, for another context, under a key
    this installation does not have, or not sealed credentials at all. The message names the
    reason and never the value."""


class Credentials:
    """Plaintext credentials (string fields), in memory only. Deliberately not a mapping:
    nothing (a response model, `**kwargs`, a serializer) turns it into a dict by itself."""

    __slots__ = ("_values",)
    _values: dict[str, str]

    def __init__(self, values: Mapping[str, str] | None = None, /, **fields: str) -> None:
        merged = {**(values or {}), **fields}
        for name, value in merged.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError("credential fields are strings")
        object.__setattr__(self, "_values", dict(merged))

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> list[str]:
        return sorted(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and other._values == self._values

    __hash__ = None  # type: ignore[assignment]
    __iter__ = None  # not iterable either (`dict(creds)`, `list(creds)` are TypeErrors)

    def replace(self, **changes: str | None) -> Credentials:
        """A copy with fields set (or removed, given None): a refreshed token, say."""
        values = dict(self._values)
        for name, value in changes.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
        return Credentials(values)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Credentials are immutable; use replace()")

    def __repr__(self) -> str:
        return f"Credentials(fields={sorted(self._values)!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("Credentials are never pickled: seal them (integrations.core.vault)")

    def _plaintext(self) -> bytes:
        return orjson.dumps(self._values, option=orjson.OPT_SORT_KEYS)


class SealedCredentials(str):
    """Sealed credentials as stored: `sbv1.<kid>.<payload>`."""

    __slots__ = ()

    @property
    def kid(self) -> str:
        return self.split(".", 2)[1]

    def __repr__(self) -> str:
        return f"SealedCredentials(kid={self.kid!r})"


@dataclass(frozen=True)
class _Keyring:
    active: str
    keys: Mapping[str, AESGCM]


@lru_cache(maxsize=8)
def _keyring(configured: str, secret_key: str) -> _Keyring:
    pairs = parse_vault_keys(configured)
    if not pairs:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"switchboard/connector-credentials",
            info=b"vault:s0",
        ).derive(secret_key.encode())
        pairs = [(DERIVED_KID, derived)]
    return _Keyring(active=pairs[0][0], keys={kid: AESGCM(key) for kid, key in pairs})


def _current() -> _Keyring:
    settings = get_settings()
    return _keyring(settings.vault_keys, settings.secret_key)


def _aad(kid: str, context: str) -> bytes:
    return f"{FORMAT}|{kid}|{context}".encode()


def seal(credentials: Credentials, *, context: str) -> SealedCredentials:
    """Seal under the active key. `context` names what they belong to, e.g.
    `"<agency id>|<connection id>"`; the same context is needed to open them."""
    if not isinstance(credentials, Credentials):
        raise TypeError("seal() takes Credentials")
    ring = _current()
    nonce = os.urandom(_NONCE)
    body = ring.keys[ring.active].encrypt(
        nonce, credentials._plaintext(), _aad(ring.active, context)
    )
    payload = base64.urlsafe_b64encode(nonce + body).decode().rstrip("=")
    return SealedCredentials(f"{FORMAT}.{ring.active}.{payload}")


def open_sealed(sealed: str, *, context: str) -> Credentials:
    """The credentials behind `sealed`, or `VaultError` saying why not."""
    _, kid, payload = _parts(sealed)
    key = _current().keys.get(kid)
    if key is None:
        raise VaultError(f"sealed under vault key {kid!r}, which this installation does not have")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise VaultError("sealed credentials are damaged") from None
    if len(raw) <= _NONCE:
        raise VaultError("sealed credentials are damaged")
    try:
        plaintext = key.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(kid, context))
    except InvalidTag:
        raise VaultError("sealed credentials were altered or belong elsewhere") from None
    values = orjson.loads(plaintext)
    return Credentials(values)


def needs_rekey(sealed: str) -> bool:
    """Sealed under a key other than the active one (a rotation has not reached it yet)."""
    return _parts(sealed)[1] != _current().active


def rekey(sealed: str, *, context: str) -> SealedCredentials:
    """The same credentials sealed under the active key (unchanged if they already are)."""
    if not needs_rekey(sealed):
        return SealedCredentials(sealed)
    return seal(open_sealed(sealed, context=context), context=context)


def _parts(sealed: str) -> tuple[str, str, str]:
    if not isinstance(sealed, str):
        raise VaultError("not sealed credentials")
    fmt, _, rest = sealed.partition(".")
    kid, _, payload = rest.partition(".")
    if fmt != FORMAT or not kid or not payload:
        raise VaultError("not sealed credentials (expected sbv1.<kid>.<payload>)")
    return fmt, kid, payload
