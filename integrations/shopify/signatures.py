"""Shopify's two signatures (shared/reference/vendor-apis.md §1.2, §1.7).

* The **query HMAC** of the install request and the OAuth callback: every parameter but
  `hmac` (and `signature`, the app-proxy variant) becomes `key=value`, with `%` escaped as
  `%25` in keys and values, `=` as `%3D` in keys and `&` as `%26` in both; a repeated
  parameter `ids[]` is written once as `ids=["1", "2"]`; the pairs are sorted and joined with
  `&`, and the HMAC-SHA256 of that under the app's client secret, in lowercase hex, must
  equal `hmac`. The `timestamp` must be recent (Shopify's own JS library allows 90 s either
  way).
* The **webhook HMAC**: base64 HMAC-SHA256 of the raw body under the client secret, in
  `X-Shopify-Hmac-Sha256` (integrations.core.webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable

from integrations.core.webhooks import verify_hmac_sha256_base64

TIMESTAMP_TOLERANCE = 90  # seconds, either way
_UNSIGNED = frozenset({"hmac", "signature"})


def _escape_key(key: str) -> str:
    return key.replace("%", "%25").replace("=", "%3D").replace("&", "%26")


def _escape_value(value: str) -> str:
    return value.replace("%", "%25").replace("&", "%26")


def query_message(pairs: Iterable[tuple[str, str]]) -> str:
    """The string Shopify signs for these query parameters."""
    single: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in _UNSIGNED:
            continue
        if key.endswith("[]"):
            repeated.setdefault(key[:-2], []).append(value)
        else:
            single[key] = value  # as a query parser would: the last value wins
    parts = [f"{_escape_key(k)}={_escape_value(v)}" for k, v in single.items()]
    parts += [f"{_escape_key(k)}={_escape_value(json.dumps(v))}" for k, v in repeated.items()]
    return "&".join(sorted(parts))


def query_hmac(secret: str, pairs: Iterable[tuple[str, str]]) -> str:
    return hmac.new(secret.encode(), query_message(pairs).encode(), hashlib.sha256).hexdigest()


def verify_query(
    secret: str,
    pairs: Iterable[tuple[str, str]],
    *,
    now: float | None = None,
    tolerance: int = TIMESTAMP_TOLERANCE,
) -> bool:
    """Whether an install request or OAuth callback really comes from Shopify: a valid
    `hmac` over the other parameters, and a `timestamp` within `tolerance` seconds."""
    items = list(pairs)
    given = [v for k, v in items if k == "hmac"]
    stamps = [v for k, v in items if k == "timestamp"]
    if len(given) != 1 or len(stamps) != 1 or not secret:
        return False
    try:
        stamp = int(stamps[0])
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - stamp) > tolerance:
        return False
    expected = query_hmac(secret, items)
    return hmac.compare_digest(expected.encode(), given[0].strip().lower().encode())


def verify_webhook(secret: str, raw: bytes, header: str | None) -> bool:
    """`X-Shopify-Hmac-Sha256` against the raw body."""
    return verify_hmac_sha256_base64(secret, raw, header)
