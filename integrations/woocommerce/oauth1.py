"""One-legged OAuth 1.0a, as a WooCommerce store checks it on plain HTTP (vendor-apis.md
§2.1, `WC_REST_Authentication`): the only scheme a store accepts when WordPress does not see
HTTPS. `sign` is our side; `check` is the store's (the sandbox uses it, and the tests hold the
two and WooCommerce's own Python client to the same rule).

The string signed is `METHOD&` + the percent-encoded base URL (no query) + `&` + every
request parameter and the `oauth_*` ones (not `oauth_signature`), each key and value
percent-encoded (RFC 3986) with the `%` of that encoding escaped again as `%25`, written
`key%3Dvalue`, sorted by key, joined with `%26`. The key is the consumer secret plus `&`;
the signature is base64 of the HMAC (SHA-256, or SHA-1). The timestamp must be within 15
minutes of the store's clock and a nonce may not repeat within that window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

TIMESTAMP_WINDOW = 15 * 60
METHODS = {"HMAC-SHA256": hashlib.sha256, "HMAC-SHA1": hashlib.sha1}


def _encode(value: str) -> str:
    return quote(unquote(value), safe="~").replace("%", "%25")


def base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    normalized = sorted((_encode(k), _encode(v)) for k, v in params if k != "oauth_signature")
    joined = "%26".join(f"{k}%3D{v}" for k, v in normalized)
    return f"{method.upper()}&{quote(base, safe='')}&{joined}"


def signature(
    method: str,
    url: str,
    params: Iterable[tuple[str, str]],
    consumer_secret: str,
    signature_method: str = "HMAC-SHA256",
) -> str:
    digest = METHODS[signature_method]
    message = base_string(method, url, params).encode()
    mac = hmac.new(f"{consumer_secret}&".encode(), message, digest).digest()
    return base64.b64encode(mac).decode()


def sign(
    method: str,
    url: str,
    params: Iterable[tuple[str, str]],
    *,
    consumer_key: str,
    consumer_secret: str,
    now: float | None = None,
    nonce: str | None = None,
) -> list[tuple[str, str]]:
    """The query parameters of a signed request: `params` plus the `oauth_*` ones."""
    signed = [
        *params,
        ("oauth_consumer_key", consumer_key),
        ("oauth_timestamp", str(int(now if now is not None else time.time()))),
        ("oauth_nonce", nonce or secrets.token_hex(16)),
        ("oauth_signature_method", "HMAC-SHA256"),
    ]
    return [*signed, ("oauth_signature", signature(method, url, signed, consumer_secret))]


class Refused(ValueError):
    """Why a store refuses the request (WooCommerce's own messages)."""


def check(
    method: str,
    url: str,
    params: list[tuple[str, str]],
    consumer_secret: str,
    *,
    seen_nonces: set[str] | None = None,
    now: float | None = None,
) -> None:
    """The store's check of a signed request; raises `Refused` with WooCommerce's message."""
    given = dict(params)
    for name in (
        "oauth_consumer_key",
        "oauth_timestamp",
        "oauth_nonce",
        "oauth_signature",
        "oauth_signature_method",
    ):
        if not given.get(name):
            raise Refused(f"Missing OAuth parameter(s) {name}")
    algorithm = given["oauth_signature_method"]
    if algorithm not in METHODS:
        raise Refused("Invalid signature - signature method is invalid.")
    expected = signature(method, url, params, consumer_secret, algorithm)
    if not hmac.compare_digest(expected.encode(), given["oauth_signature"].encode()):
        raise Refused("Invalid signature - provided signature does not match.")
    try:
        stamp = int(given["oauth_timestamp"])
    except ValueError:
        raise Refused("Invalid timestamp.") from None
    if abs((now if now is not None else time.time()) - stamp) > TIMESTAMP_WINDOW:
        raise Refused("Invalid timestamp.")
    if seen_nonces is not None:
        if given["oauth_nonce"] in seen_nonces:
            raise Refused("Invalid nonce - nonce has already been used.")
        seen_nonces.add(given["oauth_nonce"])
