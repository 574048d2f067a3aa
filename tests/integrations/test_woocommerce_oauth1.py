"""WooCommerce's OAuth 1.0a on plain HTTP (integrations/woocommerce/oauth1.py): what we sign,
what a store accepts, and what WooCommerce's own Python client (`woocommerce` 3.0.0) sends
all follow one rule."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from integrations.woocommerce import oauth1

woocommerce = pytest.importorskip("woocommerce")

STORE = "http://shop.example:8080/wp-json/wc/v3/orders"
CK, CS = "ck_" + "a" * 40, "cs_" + "b" * 40
QUERY = [
    ("per_page", "100"),
    ("page", "2"),
    ("modified_after", "2026-11-01T00:00:00"),
    ("dates_are_gmt", "true"),
    ("orderby", "id"),
]


def test_what_we_sign_a_store_accepts_once():
    now = time.time()
    params = oauth1.sign("GET", STORE, QUERY, consumer_key=CK, consumer_secret=CS, now=now)
    seen: set[str] = set()
    oauth1.check("GET", STORE, params, CS, seen_nonces=seen, now=now)
    with pytest.raises(oauth1.Refused, match="nonce has already been used"):
        oauth1.check("GET", STORE, params, CS, seen_nonces=seen, now=now)


def test_the_official_client_signs_what_a_store_accepts():
    url = STORE + "?" + "&".join(f"{k}={v}" for k, v in QUERY)
    signed = woocommerce.oauth.OAuth(url, CK, CS, version="wc/v3", method="GET").get_oauth_url()
    base, _, query = signed.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    assert dict(params)["oauth_signature_method"] == "HMAC-SHA256"
    oauth1.check("GET", base, params, CS)
    # and the client's base string is ours
    ours = oauth1.signature("GET", base, params, CS)
    assert ours == dict(params)["oauth_signature"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: [(k, "3" if k == "page" else v) for k, v in p], "does not match"),
        (lambda p: [*p, ("extra", "1")], "does not match"),
        (lambda p: [(k, v) for k, v in p if k != "oauth_nonce"], "Missing OAuth parameter"),
        (
            lambda p: [(k, "PLAINTEXT" if k == "oauth_signature_method" else v) for k, v in p],
            "signature method is invalid",
        ),
    ],
)
def test_a_store_refuses_tampering(change, message):
    params = oauth1.sign("GET", STORE, QUERY, consumer_key=CK, consumer_secret=CS)
    with pytest.raises(oauth1.Refused, match=message):
        oauth1.check("GET", STORE, change(params), CS)


def test_a_store_refuses_another_secret_method_or_address():
    params = oauth1.sign("GET", STORE, QUERY, consumer_key=CK, consumer_secret=CS)
    for method, url, secret in (
        ("GET", STORE, "cs_other"),
        ("POST", STORE, CS),
        ("GET", STORE.replace("orders", "customers"), CS),
        ("GET", STORE.replace(":8080", ":8081"), CS),
    ):
        with pytest.raises(oauth1.Refused, match="does not match"):
            oauth1.check(method, url, params, secret)


def test_the_timestamp_window_is_fifteen_minutes_either_way():
    now = 1_800_000_000
    for skew, ok in ((-899, True), (899, True), (-901, False), (901, False)):
        params = oauth1.sign(
            "GET", STORE, QUERY, consumer_key=CK, consumer_secret=CS, now=now + skew
        )
        if ok:
            oauth1.check("GET", STORE, params, CS, now=now)
        else:
            with pytest.raises(oauth1.Refused, match="Invalid timestamp"):
                oauth1.check("GET", STORE, params, CS, now=now)


def test_the_base_string_encodes_as_the_store_does():
    base = oauth1.base_string("get", "http://s.example/wp-json/wc/v3/orders?x=1", [("a b", "c/d")])
    assert base.startswith("GET&http%3A%2F%2Fs.example%2Fwp-json%2Fwc%2Fv3%2Forders&")
    assert base.endswith("a%2520b%3Dc%252Fd")
    assert urlsplit(STORE).path == "/wp-json/wc/v3/orders"
