"""What the Shopify connector declares (facts: shared/reference/vendor-apis.md §1)."""

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

API_VERSION = "2025-10"

MANIFEST = Manifest(
    vendor="shopify",
    display_name="Shopify",
    auth=AuthKind.OAUTH2,  # expiring offline tokens, refresh token rotates on every refresh
    scopes=("read_orders", "read_customers", "read_products"),
    streams=(
        # GraphQL connections take at most 250 per page (§1.6); sync resumes by updated_at
        Stream(name="orders", cursor_field="updated_at", max_page_size=250),
        Stream(name="customers", cursor_field="updated_at", max_page_size=250),
        Stream(name="products", cursor_field="updated_at", max_page_size=250),
    ),
    webhooks=(
        WebhookTopic(topic="orders/create", effect=WebhookEffect.UPSERT, stream="orders"),
        WebhookTopic(topic="orders/updated", effect=WebhookEffect.UPSERT, stream="orders"),
        WebhookTopic(topic="customers/create", effect=WebhookEffect.UPSERT, stream="customers"),
        WebhookTopic(topic="customers/update", effect=WebhookEffect.UPSERT, stream="customers"),
        WebhookTopic(topic="products/update", effect=WebhookEffect.UPSERT, stream="products"),
        WebhookTopic(topic="app/uninstalled", effect=WebhookEffect.DISCONNECT),
        # the three mandatory privacy topics
        WebhookTopic(topic="customers/data_request", effect=WebhookEffect.DATA_REQUEST),
        WebhookTopic(topic="customers/redact", effect=WebhookEffect.REDACT_CUSTOMER),
        WebhookTopic(topic="shop/redact", effect=WebhookEffect.REDACT_SHOP),
    ),
    # GraphQL Admin cost throttle, per app and store: the Standard plan restores 100 points/s;
    # the bucket size is not published for every plan (1000 in older payloads), and no single
    # query may cost more than 1000 points. The connector follows `throttleStatus` itself.
    rate_limit=RateLimit(
        model=RateLimitModel.COST_BUDGET,
        capacity=1000,
        refill_per_second=100,
        max_cost_per_request=1000,
    ),
    base_urls={"admin": "https://{shop}"},  # {shop}: the validated `<handle>.myshopify.com`
)
