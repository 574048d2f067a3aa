"""WooCommerce deliveries (integrations/woocommerce/signatures.py): signed over the raw body
with the webhook's secret; the creation ping recognized and nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac

from integrations.woocommerce import signatures

SECRET = "wc-webhook-secret-7f3a"


def _sign(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def test_a_delivery_verifies_with_its_webhooks_secret_only():
    raw = b'{"id":727,"status":"processing","date_modified_gmt":"2026-12-03T10:00:00"}'
    headers = {"x-wc-webhook-signature": _sign(raw), "x-wc-webhook-topic": "order.updated"}
    assert signatures.verify_delivery(SECRET, raw, headers)
    assert not signatures.verify_delivery("another-connections-secret", raw, headers)
    assert not signatures.verify_delivery(SECRET, raw + b" ", headers)
    assert not signatures.verify_delivery(SECRET, raw, {"x-wc-webhook-topic": "order.updated"})
    resigned = {"x-wc-webhook-signature": _sign(raw, "attacker")}
    assert not signatures.verify_delivery(SECRET, raw, resigned)


def test_the_creation_ping_and_nothing_else_is_a_ping():
    assert signatures.is_ping(b"webhook_id=12", {})
    assert not signatures.is_ping(b"webhook_id=12", {"x-wc-webhook-signature": "x"})
    assert not signatures.is_ping(b"webhook_id=12", {"x-wc-webhook-topic": "order.created"})
    for body in (
        b"",
        b"webhook_id=",
        b"webhook_id=abc",
        b"webhook_id=1&x=2",
        b'{"id":1}',
        b"webhook_id=1&webhook_id=2",
        b"\xff\xfe",
    ):
        assert not signatures.is_ping(body, {}), body
