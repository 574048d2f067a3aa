"""What a merchant types names one shop, in the one form we store."""

from __future__ import annotations

import pytest

from integrations.shopify.shops import NotAShop, is_shop_domain, normalize_shop


@pytest.mark.parametrize(
    "typed",
    [
        "demo-store",
        "Demo-Store",
        " demo-store.myshopify.com ",
        "https://demo-store.myshopify.com/",
        "https://demo-store.myshopify.com/admin/orders",
        "demo-store.myshopify.com/admin",
        "https://admin.shopify.com/store/demo-store",
        "https://admin.shopify.com/store/demo-store/orders?x=1",
    ],
)
def test_every_way_of_writing_a_shop_names_it_once(typed):
    assert normalize_shop(typed) == "demo-store.myshopify.com"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "-demo",
        "demo_store",
        "demo.store.com",
        "evil.com/demo.myshopify.com",
        "https://demo.myshopify.com.evil.com",
        "https://admin.shopify.com/orders",
        "x" * 61,
        "demo store",
    ],
)
def test_anything_else_is_refused(typed):
    with pytest.raises(NotAShop):
        normalize_shop(typed)


def test_what_shopify_sends_must_already_be_a_shop_domain():
    assert is_shop_domain("demo-store.myshopify.com")
    for value in (
        None,
        "",
        "demo-store",
        "Demo-Store.myshopify.com",
        "a.b.myshopify.com",
        "demo-store.myshopify.com.evil.com",
        "admin.shopify.com",
    ):
        assert not is_shop_domain(value), value
