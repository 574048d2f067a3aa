"""OAuth for connectors: the `state` a connect flow carries through the vendor, and PKCE.

The state is sealed with the kit's one helper for browser-carried values
(`services.kit.crypto.seal_compact`): it names the vendor, the agency, the client (and the
connection being re-authorized, if any), holds a fresh nonce and the PKCE verifier, expires
after `STATE_TTL`, and opens only for the browser that started the flow (`binding`, e.g. a
hash of its session cookie) and for the same vendor. Nothing is stored server-side until
the callback; the caller stores the nonce it accepted to refuse a replayed callback.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import orjson

from services.kit.crypto import open_compact, seal_compact

STATE_TTL = 600  # seconds a connect flow may take
_PURPOSE = "connector-oauth-state"


class StateRefused(ValueError):
    """The callback's state is not one this browser started for this vendor, or it expired
    (the message says which, never the state)."""


@dataclass(frozen=True)
class ConnectState:
    vendor: str
    agency_id: uuid.UUID
    client_id: uuid.UUID
    connection_id: uuid.UUID | None  # set when re-authorizing an existing connection
    nonce: str
    code_verifier: str
    expires_at: int

    @property
    def code_challenge(self) -> str:
        """RFC 7636 S256 challenge of the verifier."""
        return pkce_challenge(self.code_verifier)


def pkce_verifier() -> str:
    """A code verifier: 43 characters of base64url (32 random bytes), RFC 7636 §4.1."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _context(vendor: str, binding: str) -> str:
    return f"{vendor}|{binding}"


def begin(
    vendor: str,
    *,
    agency_id: uuid.UUID,
    client_id: uuid.UUID,
    binding: str,
    connection_id: uuid.UUID | None = None,
    now: float | None = None,
) -> tuple[str, ConnectState]:
    """A new flow: the sealed `state` to send to the vendor, and what it holds."""
    if not binding:
        raise ValueError("a connect flow is bound to the browser that starts it")
    started = int(now if now is not None else time.time())
    state = ConnectState(
        vendor=vendor,
        agency_id=agency_id,
        client_id=client_id,
        connection_id=connection_id,
        nonce=secrets.token_urlsafe(16),
        code_verifier=pkce_verifier(),
        expires_at=started + STATE_TTL,
    )
    body = orjson.dumps(
        {
            "v": vendor,
            "a": str(agency_id),
            "c": str(client_id),
            "k": str(connection_id) if connection_id else None,
            "n": state.nonce,
            "p": state.code_verifier,
            "e": state.expires_at,
        }
    )
    return seal_compact(body, purpose=_PURPOSE, context=_context(vendor, binding)), state


def finish(vendor: str, token: str, *, binding: str, now: float | None = None) -> ConnectState:
    """The flow a callback's `state` belongs to, or `StateRefused`."""
    raw = open_compact(token, purpose=_PURPOSE, context=_context(vendor, binding))
    if raw is None:
        raise StateRefused("this sign-in link was not started here, or belongs to another flow")
    data = orjson.loads(raw)
    if int(now if now is not None else time.time()) >= int(data["e"]):
        raise StateRefused("this connect link has expired: start again")
    return ConnectState(
        vendor=data["v"],
        agency_id=uuid.UUID(data["a"]),
        client_id=uuid.UUID(data["c"]),
        connection_id=uuid.UUID(data["k"]) if data["k"] else None,
        nonce=data["n"],
        code_verifier=data["p"],
        expires_at=int(data["e"]),
    )
