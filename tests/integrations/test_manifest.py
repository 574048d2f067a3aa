"""Connector manifests (integrations/core/manifest.py): a bad one is refused when it is
built, naming what is wrong; the vendors' own hold the facts of vendor-apis.md."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from integrations.core.manifest import (
    AuthKind,
    Manifest,
    RateLimit,
    RateLimitModel,
    Stream,
    WebhookEffect,
    WebhookTopic,
)
from integrations.shopify.manifest import MANIFEST as SHOPIFY
from integrations.woocommerce.manifest import MANIFEST as WOOCOMMERCE


def _manifest(**over):  # type: ignore[no-untyped-def]
    fields = {
        "vendor": "acme",
        "display_name": "Acme",
        "auth": AuthKind.API_KEY,
        "streams": (Stream(name="orders", cursor_field="updated_at", max_page_size=100),),
        "rate_limit": RateLimit(model=RateLimitModel.NONE),
        "base_urls": {"api": "https://api.acme.example"},
        **over,
    }
    return Manifest(**fields)


@pytest.mark.parametrize(
    "over, complaint",
    [
        ({"vendor": "Acme!"}, "vendor"),
        ({"streams": ()}, "streams"),
        (
            {
                "streams": (
                    Stream(name="orders", cursor_field="u", max_page_size=1),
                    Stream(name="orders", cursor_field="u", max_page_size=1),
                )
            },
            "stream names must be unique",
        ),
        (
            {"webhooks": (WebhookTopic(topic="x.y", effect="upsert", stream="refunds"),)},
            "unknown stream 'refunds'",
        ),
        ({"auth": AuthKind.OAUTH2}, "declares the scopes"),
        ({"base_urls": {}}, "base address"),
        ({"base_urls": {"api": "ftp://acme.example"}}, "URL"),
        ({"base_urls": {"API": "https://acme.example"}}, "base address name"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_problem(over, complaint):
    with pytest.raises(ValidationError, match=complaint):
        _manifest(**over)


@pytest.mark.parametrize(
    "kwargs, complaint",
    [
        ({"model": "leaky_bucket", "capacity": 40}, "capacity and refill_per_second"),
        ({"model": "cost_budget", "refill_per_second": 100}, "capacity and refill_per_second"),
        ({"model": "concurrency"}, "max_concurrency"),
    ],
)
def test_a_rate_limit_carries_the_parameters_of_its_model(kwargs, complaint):
    with pytest.raises(ValidationError, match=complaint):
        RateLimit(**kwargs)


def test_webhook_topics_name_a_stream_exactly_when_they_change_one():
    with pytest.raises(ValidationError, match="upsert and delete topics"):
        WebhookTopic(topic="orders/create", effect=WebhookEffect.UPSERT)
    with pytest.raises(ValidationError, match="upsert and delete topics"):
        WebhookTopic(topic="app/uninstalled", effect=WebhookEffect.DISCONNECT, stream="orders")


def test_manifests_are_frozen():
    with pytest.raises(ValidationError):
        SHOPIFY.vendor = "other"  # type: ignore[misc]


def test_shopify_declares_what_the_reference_says():
    assert SHOPIFY.auth is AuthKind.OAUTH2
    assert set(SHOPIFY.scopes) == {"read_orders", "read_customers", "read_products"}
    assert [s.name for s in SHOPIFY.streams] == ["orders", "customers", "products"]
    assert all(s.max_page_size == 250 and s.cursor_field == "updated_at" for s in SHOPIFY.streams)
    privacy = {
        w.topic
        for w in SHOPIFY.webhooks
        if w.effect
        in (WebhookEffect.DATA_REQUEST, WebhookEffect.REDACT_CUSTOMER, WebhookEffect.REDACT_SHOP)
    }
    assert privacy == {"customers/data_request", "customers/redact", "shop/redact"}
    assert SHOPIFY.topic("app/uninstalled").effect is WebhookEffect.DISCONNECT
    assert SHOPIFY.topic("orders/updated").stream == "orders"
    assert SHOPIFY.topic("orders/deleted") is None
    assert SHOPIFY.rate_limit.model is RateLimitModel.COST_BUDGET
    assert SHOPIFY.rate_limit.refill_per_second == 100
    assert SHOPIFY.setting_name("admin") == "SWITCHBOARD_SHOPIFY_ADMIN_URL"


def test_woocommerce_declares_what_the_reference_says():
    assert WOOCOMMERCE.auth is AuthKind.KEY_PAIR and WOOCOMMERCE.tenant_supplied_address
    assert all(s.max_page_size == 100 for s in WOOCOMMERCE.streams)
    assert WOOCOMMERCE.stream("customers").cursor_field == "date_modified_gmt"
    assert WOOCOMMERCE.topic("order.deleted").effect is WebhookEffect.DELETE
    assert WOOCOMMERCE.topic("product.restored").stream == "products"
    assert WOOCOMMERCE.rate_limit.model is RateLimitModel.NONE
    with pytest.raises(KeyError):
        WOOCOMMERCE.stream("refunds")
