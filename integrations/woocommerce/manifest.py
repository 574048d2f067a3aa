"""What the WooCommerce connector declares (facts: shared/reference/vendor-apis.md §2)."""

from __future__ import annotations

from integrations.core.manifest import (
    AuthKind,
    Manifest,
    RateLimit,
    RateLimitModel,
    Stream,
    WebhookEffect,
    WebhookTopic,
)


def _topics(resource: str, stream: str) -> tuple[WebhookTopic, ...]:
    return (
        WebhookTopic(topic=f"{resource}.created", effect=WebhookEffect.UPSERT, stream=stream),
        WebhookTopic(topic=f"{resource}.updated", effect=WebhookEffect.UPSERT, stream=stream),
        WebhookTopic(topic=f"{resource}.restored", effect=WebhookEffect.UPSERT, stream=stream),
        WebhookTopic(topic=f"{resource}.deleted", effect=WebhookEffect.DELETE, stream=stream),
    )


MANIFEST = Manifest(
    vendor="woocommerce",
    display_name="WooCommerce",
    auth=AuthKind.KEY_PAIR,  # consumer key + secret: Basic over https, OAuth 1.0a over http
    streams=(
        # REST v3 pages hold at most 100 (more is a 400, §2.3); the GMT modified date is the
        # cursor (orders and products filter on it server-side, customers client-side)
        Stream(name="orders", cursor_field="date_modified_gmt", max_page_size=100),
        Stream(name="customers", cursor_field="date_modified_gmt", max_page_size=100),
        Stream(name="products", cursor_field="date_modified_gmt", max_page_size=100),
    ),
    webhooks=(
        *_topics("order", "orders"),
        *_topics("customer", "customers"),
        *_topics("product", "products"),
    ),
    # No limit of its own (§2.5): the host or a WAF may answer 429/503, which the client honours.
    rate_limit=RateLimit(model=RateLimitModel.NONE),
    tenant_supplied_address=True,  # each client names its store (fetched via kit.outbound)
)
