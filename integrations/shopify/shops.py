"""Which shop a merchant means (vendor-apis.md §1.1, §1.2).

A merchant may type `demo-store`, `demo-store.myshopify.com`, `https://demo-store.myshopify.com/`
or paste their admin address `https://admin.shopify.com/store/demo-store`; every one means
the shop `demo-store.myshopify.com`, the only form we store and call. What Shopify itself
sends (the `shop` parameter of an install request or callback, `X-Shopify-Shop-Domain`)
must already be that form (`is_shop_domain`)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")


class NotAShop(ValueError):
    """The text names no Shopify shop (the message says what was expected)."""


def is_shop_domain(value: str | None) -> bool:
    return bool(value) and len(value or "") <= 100 and bool(SHOP_DOMAIN.match(value or ""))


def normalize_shop(value: str) -> str:
    """`<handle>.myshopify.com` for what a merchant typed, or `NotAShop`."""
    text = (value or "").strip().lower()
    if "://" in text:
        parts = urlsplit(text)
        host, path = parts.hostname or "", parts.path
    else:
        host, _, path = text.partition("/")
        path = "/" + path
    if host == "admin.shopify.com":
        segments = [s for s in path.split("/") if s]
        if len(segments) >= 2 and segments[0] == "store":
            host = f"{segments[1]}.myshopify.com"
    elif host.endswith(".myshopify.com"):
        pass
    elif "." not in host:
        host = f"{host}.myshopify.com"
    handle = host.removesuffix(".myshopify.com")
    if not host.endswith(".myshopify.com") or not _HANDLE.match(handle):
        raise NotAShop(
            "enter your shop's name as it appears in its Shopify address, "
            "e.g. demo-store or demo-store.myshopify.com"
        )
    return host
