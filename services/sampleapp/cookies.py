"""Signed cookies: a JSON payload the browser keeps but cannot change.

Format: `base64url(zlib(json)) "." base64url(HMAC-SHA256)`. The MAC covers the cookie's
purpose too, so a value made for one cookie (the pending sign-in) is refused as another (the
session). Every payload carries its own expiry (`_exp`), checked here, on top of the cookie's
Max-Age. Nothing is encrypted: the payload holds what the provider already told the browser
(the ID token) or one-time values of a sign-in in flight, never a client secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from typing import Any

MAX_COOKIE_CHARS = 3900  # browsers keep at least 4096 bytes per cookie, name included


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the cookie secret must be at least 16 bytes")
        self._key = hashlib.sha256(b"switchboard-sample-app/cookies\x00" + secret).digest()

    def _mac(self, purpose: str, body: str) -> str:
        message = f"{purpose}\x00{body}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def dumps(self, purpose: str, payload: dict[str, Any], max_age: int) -> str:
        data = {**payload, "_exp": int(time.time()) + max_age}
        raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        body = _b64(zlib.compress(raw, 9))
        return f"{body}.{self._mac(purpose, body)}"

    def loads(self, purpose: str, value: str | None) -> dict[str, Any] | None:
        """The payload, or None when the value is missing, altered, foreign or expired."""
        if not value or len(value) > 8192 or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(purpose, body).encode()):
            return None
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(_unb64(body), 65536)
            data = json.loads(raw)
        except (ValueError, zlib.error):
            return None
        if not isinstance(data, dict):
            return None
        expires = data.pop("_exp", None)
        if not isinstance(expires, int) or expires <= time.time():
            return None
        return data
