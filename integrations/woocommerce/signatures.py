"""WooCommerce webhook deliveries (shared/reference/vendor-apis.md §2.6).

A delivery carries `X-WC-Webhook-Signature`: base64 HMAC-SHA256 of the exact body under
the webhook's own secret (we create one per connection). The one unsigned request is the
**ping** WooCommerce sends when a webhook is created: a form body `webhook_id=<id>` with no
signature headers, which must be answered 200 exactly or the creation reports an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs

from integrations.core.webhooks import verify_hmac_sha256_base64

SIGNATURE_HEADER = "x-wc-webhook-signature"


def verify_delivery(secret: str, raw: bytes, headers: Mapping[str, str]) -> bool:
    return verify_hmac_sha256_base64(secret, raw, headers.get(SIGNATURE_HEADER))


def is_ping(raw: bytes, headers: Mapping[str, str]) -> bool:
    """The creation ping: unsigned, untopiced, a form body naming only the webhook's id."""
    if headers.get(SIGNATURE_HEADER) or headers.get("x-wc-webhook-topic"):
        return False
    try:
        fields = parse_qs(raw.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    ids = fields.get("webhook_id", [])
    return set(fields) == {"webhook_id"} and len(ids) == 1 and ids[0].isdigit()
