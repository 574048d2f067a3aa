"""The only module that talks to a WooCommerce store (REST API v3, vendor-apis.md §2).

The store's address is the client's own, so every request goes through the one guarded
client for tenant-supplied URLs (`services.kit.outbound.request`), within the account's
request budget and with the SDK's retries (`integrations.core.retry`). Authentication
follows the address: HTTPS stores get HTTP Basic with the key pair, plain-HTTP stores the
one-legged OAuth 1.0a signature (`oauth1.sign`), which is all such a store accepts.

Reading a stream resumes from a cursor, the GMT modified time of the last record read
(`date_modified_gmt`, whole seconds). Orders and products are read oldest change first
with `modified_after` (which is strict) one second before the cursor, so the records of the
cursor's own second are read again rather than missed (the upserts that store them are
idempotent), and a record changed while the sync runs moves to the end of the queue rather
than out of it. A second holding more records than a page is drained page by page before
the cursor moves past it. Customers have no modified filter on the store's side: they are
read in id order and filtered here.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from integrations.core import retry
from integrations.core.ratelimit import Budget
from integrations.core.vault import Credentials
from integrations.woocommerce import oauth1
from integrations.woocommerce.manifest import MANIFEST
from services.kit import outbound

API_PATH = "/wp-json/wc/v3"
TIMEOUT_SECONDS = 30
WC_TIME = "%Y-%m-%dT%H:%M:%S"


class StoreError(Exception):
    """A store answered something the sync cannot use (the message says what)."""


class KeysRefused(StoreError):
    """The store refuses the key pair (revoked, or no read permission): reconnect."""


class NotWooCommerce(StoreError):
    """The address answers, but not as a WooCommerce store's REST API."""


@dataclass(frozen=True)
class Store:
    url: str  # the store's home address: scheme, host, optional path; no trailing slash
    credentials: Credentials  # consumer_key, consumer_secret

    @classmethod
    def at(cls, url: str, credentials: Credentials) -> Store:
        outbound.check_url(url)
        return cls(url.rstrip("/"), credentials)


@dataclass(frozen=True)
class StoreProfile:
    """What a store says about itself, for the client record where its fields are empty."""

    name: str
    currency: str | None
    time_zone: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None  # ISO 3166-1 alpha-2


@dataclass
class Page:
    records: list[dict[str, Any]]
    cursor: str | None  # what to resume from once these records are stored


def _shift(cursor: str, seconds: int) -> str:
    return (datetime.strptime(cursor, WC_TIME) + timedelta(seconds=seconds)).strftime(WC_TIME)


async def get(
    store: Store, path: str, params: list[tuple[str, str]], *, budget: Budget | None = None
) -> httpx.Response:
    """One signed GET of the REST API, retried as the SDK retries."""
    url = f"{store.url}{API_PATH}/{path.lstrip('/')}"
    key = store.credentials["consumer_key"]
    secret = store.credentials["consumer_secret"]
    headers = {"Accept": "application/json"}
    https = urlsplit(url).scheme == "https"
    if https:
        token = base64.b64encode(f"{key}:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"

    async def send() -> httpx.Response:
        # over plain HTTP, a fresh nonce and timestamp for every try
        signed = (
            params
            if https
            else oauth1.sign("GET", url, params, consumer_key=key, consumer_secret=secret)
        )
        return await outbound.request(
            "GET",
            url,
            params=dict(signed),
            headers=headers,
            timeout_seconds=TIMEOUT_SECONDS,
            max_redirects=3,
        )

    response = await retry.send(send, budget=budget)
    if response.status_code in (401, 403):
        raise KeysRefused(_message(response) or f"the store answered {response.status_code}")
    if response.status_code == 404 and "json" not in response.headers.get("content-type", ""):
        raise NotWooCommerce("this address has no WooCommerce REST API (/wp-json/wc/v3)")
    if response.status_code >= 400:
        raise StoreError(_message(response) or f"the store answered {response.status_code}")
    return response


def _message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("message")) if isinstance(body, dict) and body.get("message") else None


def _records(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        raise StoreError("the store sent a page that is not JSON") from None
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise StoreError("the store sent a page that is not a list of records")
    return body


def _list_params(
    stream: str, size: int, *, orderby: str, page: int | None = None
) -> list[tuple[str, str]]:
    """The query of an orders or products page: oldest first, GMT dates, every status."""
    params = [("per_page", str(size)), ("orderby", orderby), ("order", "asc")]
    params += [("dates_are_gmt", "true")]
    if page is not None:
        params.append(("page", str(page)))
    if stream == "orders":
        params.append(("status", "any"))
    return params


async def read(
    store: Store,
    stream: str,
    cursor: str | None,
    *,
    page_size: int | None = None,
    budget: Budget | None = None,
) -> AsyncIterator[Page]:
    """The stream's records changed since `cursor` (all of them without one), page by page,
    each page with the cursor to resume from after it."""
    size = page_size or MANIFEST.stream(stream).max_page_size
    if stream == "customers":
        async for page in _read_customers(store, cursor, size, budget):
            yield page
        return
    while True:
        params = _list_params(stream, size, orderby="modified")
        if cursor:
            params.append(("modified_after", _shift(cursor, -1)))
        records = _records(await get(store, stream, params, budget=budget))
        if not records:
            return
        newest = max(r["date_modified_gmt"] for r in records)
        if len(records) == size and newest == cursor:
            # a full page within the cursor's own second: drain that second, then move on
            async for drained in _drain_second(store, stream, newest, size, budget):
                yield drained
            cursor = _shift(newest, 1)
            yield Page([], cursor)
            continue
        cursor = newest
        yield Page(records, cursor)
        if len(records) < size:
            return


async def _drain_second(
    store: Store, stream: str, second: str, size: int, budget: Budget | None
) -> AsyncIterator[Page]:
    page = 1
    while True:
        params = _list_params(stream, size, orderby="id", page=page)
        params += [("modified_after", _shift(second, -1)), ("modified_before", _shift(second, 1))]
        records = _records(await get(store, stream, params, budget=budget))
        if records:
            yield Page(records, second)  # resuming here drains the second again
        if len(records) < size:
            return
        page += 1


async def _read_customers(
    store: Store, cursor: str | None, size: int, budget: Budget | None
) -> AsyncIterator[Page]:
    since = _shift(cursor, -1) if cursor else None
    newest = cursor
    page = 1
    while True:
        params = [
            ("per_page", str(size)),
            ("page", str(page)),
            ("orderby", "id"),
            ("order", "asc"),
            ("role", "all"),
        ]
        records = _records(await get(store, "customers", params, budget=budget))
        changed = [r for r in records if since is None or r["date_modified_gmt"] > since]
        for r in changed:
            newest = max(newest or r["date_modified_gmt"], r["date_modified_gmt"])
        if changed:
            yield Page(changed, cursor)  # the cursor moves only once every page is read
        if len(records) < size:
            yield Page([], newest)
            return
        page += 1


async def verify(store: Store, *, budget: Budget | None = None) -> StoreProfile:
    """A live call with the key pair (which must be allowed to read), returning the store's
    profile: its site name and time zone (WordPress's public index) and its address and
    currency (WooCommerce's general settings). Raises `KeysRefused`, `NotWooCommerce` or
    `StoreError`."""
    index = await retry.send(
        lambda: outbound.request(
            "GET", f"{store.url}/wp-json", timeout_seconds=TIMEOUT_SECONDS, max_redirects=3
        ),
        budget=budget,
    )
    try:
        site = index.json() if index.status_code == 200 else None
    except ValueError:
        site = None
    if not isinstance(site, dict) or "wc/v3" not in (site.get("namespaces") or []):
        raise NotWooCommerce("this address has no WooCommerce REST API (/wp-json/wc/v3)")
    settings = await get(store, "settings/general", [], budget=budget)
    values = {str(s.get("id")): str(s.get("value") or "") for s in _records(settings)}
    country, _, region = values.get("woocommerce_default_country", "").partition(":")

    def field(name: str) -> str | None:
        return values.get(name) or None

    return StoreProfile(
        name=str(site.get("name") or "").strip() or urlsplit(store.url).hostname or store.url,
        currency=field("woocommerce_currency"),
        time_zone=str(site.get("timezone_string") or "") or None,
        address_line1=field("woocommerce_store_address"),
        address_line2=field("woocommerce_store_address_2"),
        city=field("woocommerce_store_city"),
        region=region or None,
        postal_code=field("woocommerce_store_postcode"),
        country=country or None,
    )
