"""Webhook signatures the vendors share: an HMAC-SHA256 of the raw request body, sent
base64-encoded in a header (Shopify `X-Shopify-Hmac-Sha256`, WooCommerce
`X-WC-Webhook-Signature`). Always over the exact bytes received, never a re-serialization,
and compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac


def hmac_sha256_base64(secret: str, raw: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def verify_hmac_sha256_base64(secret: str, raw: bytes, signature: str | None) -> bool:
    """Whether `signature` (a header's value) signs `raw` with `secret`. An empty secret or
    signature never verifies."""
    if not secret or not signature:
        return False
    expected = hmac_sha256_base64(secret, raw)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())
