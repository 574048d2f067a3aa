"""The connect flow's state (integrations/core/oauth.py): sealed, bound to the browser and
the vendor, expiring, carrying the PKCE verifier."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from integrations.core import oauth

AGENCY, CLIENT = uuid.uuid4(), uuid.uuid4()


def test_a_state_opens_for_its_browser_and_vendor_only():
    token, started = oauth.begin("shopify", agency_id=AGENCY, client_id=CLIENT, binding="b1")
    assert started.code_verifier not in token and str(AGENCY) not in token
    back = oauth.finish("shopify", token, binding="b1")
    assert back == started and back.connection_id is None
    for vendor, binding in (("shopify", "b2"), ("woocommerce", "b1")):
        with pytest.raises(oauth.StateRefused):
            oauth.finish(vendor, token, binding=binding)
    with pytest.raises(oauth.StateRefused):
        oauth.finish("shopify", token[:-3] + "AAA", binding="b1")
    with pytest.raises(oauth.StateRefused):
        oauth.finish("shopify", "", binding="b1")


def test_a_state_expires():
    token, _ = oauth.begin("shopify", agency_id=AGENCY, client_id=CLIENT, binding="b", now=1000)
    assert oauth.finish("shopify", token, binding="b", now=1000 + oauth.STATE_TTL - 1)
    with pytest.raises(oauth.StateRefused, match="expired"):
        oauth.finish("shopify", token, binding="b", now=1000 + oauth.STATE_TTL)


def test_reauthorizing_names_the_connection_and_every_flow_is_fresh():
    conn = uuid.uuid4()
    a, sa = oauth.begin(
        "shopify", agency_id=AGENCY, client_id=CLIENT, binding="b", connection_id=conn
    )
    b, sb = oauth.begin("shopify", agency_id=AGENCY, client_id=CLIENT, binding="b")
    assert oauth.finish("shopify", a, binding="b").connection_id == conn
    assert a != b and sa.nonce != sb.nonce and sa.code_verifier != sb.code_verifier
    with pytest.raises(ValueError):
        oauth.begin("shopify", agency_id=AGENCY, client_id=CLIENT, binding="")


def test_pkce_follows_rfc_7636():
    # RFC 7636 appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oauth.pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    fresh = oauth.pkce_verifier()
    assert 43 <= len(fresh) <= 128 and set(fresh) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    _, state = oauth.begin("x", agency_id=AGENCY, client_id=CLIENT, binding="b")
    expected = base64.urlsafe_b64encode(hashlib.sha256(state.code_verifier.encode()).digest())
    assert state.code_challenge == expected.decode().rstrip("=")
