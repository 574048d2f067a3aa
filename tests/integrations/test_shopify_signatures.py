"""Shopify's signatures (integrations/shopify/signatures.py), checked against the vendor's own
Python SDK (`ShopifyAPI`'s `Session.calculate_hmac`) on arbitrary parameters, and against the
rules of vendor-apis.md §1.2 and §1.7."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.shopify import signatures

SECRET = "shpss_test_client_secret_0123456789"
shopify = pytest.importorskip("shopify")

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
keys = st.text(alphabet="abcdefghij_%=&.", min_size=1, max_size=8).filter(
    lambda k: k not in ("hmac", "signature") and not k.endswith("[]") and k.rstrip("[]") == k
)


def _sdk_hmac(params: dict[str, object]) -> str:
    shopify.Session.secret = SECRET
    return shopify.Session.calculate_hmac(params)


@settings(max_examples=300, deadline=None)
@given(
    single=st.dictionaries(keys, text, max_size=6),
    repeated=st.dictionaries(keys, st.lists(text, min_size=1, max_size=3), max_size=2),
)
def test_the_query_hmac_agrees_with_shopifys_own_sdk(single, repeated):
    params: dict[str, object] = dict(single)
    pairs = list(single.items())
    for key, values in repeated.items():
        if key in single:
            continue
        params[f"{key}[]"] = values
        pairs += [(f"{key}[]", v) for v in values]
    assert signatures.query_hmac(SECRET, pairs) == _sdk_hmac(params)


def _signed(now: float, **extra: str) -> list[tuple[str, str]]:
    pairs = [("shop", "demo-store.myshopify.com"), ("timestamp", str(int(now))), *extra.items()]
    return [*pairs, ("hmac", signatures.query_hmac(SECRET, pairs))]


def test_an_install_request_verifies_and_every_tampering_does_not():
    now = time.time()
    good = _signed(now, host="YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUvZGVtbw", code="c0de", state="s")
    assert signatures.verify_query(SECRET, good, now=now)
    # the SDK agrees it is Shopify's
    shopify.Session.secret = SECRET
    assert shopify.Session.validate_hmac(dict(good))
    tampered = [(k, "other-store.myshopify.com" if k == "shop" else v) for k, v in good]
    assert not signatures.verify_query(SECRET, tampered, now=now)
    assert not signatures.verify_query("another-secret", good, now=now)
    assert not signatures.verify_query(SECRET, [p for p in good if p[0] != "hmac"], now=now)
    assert not signatures.verify_query(SECRET, [*good, ("hmac", "00")], now=now)
    assert not signatures.verify_query("", good, now=now)
    # `signature` (the app-proxy variant) is not part of the message
    assert signatures.verify_query(SECRET, [*good, ("signature", "x")], now=now)


def test_a_stale_or_future_timestamp_is_refused():
    now = time.time()
    for skew in (-91, 91):
        assert not signatures.verify_query(SECRET, _signed(now + skew), now=now)
    assert signatures.verify_query(SECRET, _signed(now - 89), now=now)
    bad = [("shop", "x.myshopify.com"), ("timestamp", "yesterday")]
    assert not signatures.verify_query(SECRET, [*bad, ("hmac", signatures.query_hmac(SECRET, bad))])


def test_a_webhook_verifies_over_the_raw_body_only():
    raw = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00"}'
    header = base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    assert signatures.verify_webhook(SECRET, raw, header)
    assert signatures.verify_webhook(SECRET, raw, f" {header} ")
    reserialized = (
        b'{"id": 820982911946154508, "email": "jon@example.com", "total_price": "403.00"}'
    )
    assert not signatures.verify_webhook(SECRET, reserialized, header)
    assert not signatures.verify_webhook("other", raw, header)
    assert not signatures.verify_webhook(SECRET, raw, None)
    assert not signatures.verify_webhook(SECRET, raw, "")
    assert not signatures.verify_webhook("", raw, header)
