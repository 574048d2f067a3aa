"""Reading a store's streams (integrations/woocommerce/client.py) against the sandbox store
over a real socket: complete, resumable from any cursor, nothing skipped when records change
during the sync or share one second, faults ridden out, refused keys told apart."""

from __future__ import annotations

import pytest

from integrations.core.vault import Credentials
from integrations.woocommerce import client
from integrations.woocommerce.sandbox.app import ApiKey, Sandbox
from integrations.woocommerce.sandbox.data import seeded
from tests.live import served

CK, CS = "ck_sync", "cs_sync"


@pytest.fixture
def store():  # type: ignore[no-untyped-def]
    sandbox = Sandbox(seeded(seed=11, orders=230, customers=35, products=6), [ApiKey(CK, CS)])
    with served(sandbox.app()) as url:
        yield sandbox, client.Store.at(url, Credentials(consumer_key=CK, consumer_secret=CS))


async def _all(store_, stream, cursor=None, **kw):  # type: ignore[no-untyped-def]
    seen: dict[int, dict] = {}
    last = cursor
    async for page in client.read(store_, stream, cursor, **kw):
        for r in page.records:
            seen[r["id"]] = r
        last = page.cursor
    return seen, last


async def test_a_first_sync_reads_every_record_of_every_stream(store):
    sandbox, shop = store
    for stream in ("orders", "customers", "products"):
        seen, cursor = await _all(shop, stream, page_size=50)
        assert set(seen) == set(sandbox.data.resource(stream)), stream
        assert cursor == max(r["date_modified_gmt"] for r in sandbox.data.resource(stream).values())


async def test_a_later_sync_reads_what_changed_since_its_cursor_only(store):
    sandbox, shop = store
    _, cursor = await _all(shop, "orders", page_size=100)
    sandbox.change("orders", 1007, status="completed")
    sandbox.change("orders", 1100, status="refunded")
    changed, newer = await _all(shop, "orders", cursor, page_size=100)
    assert {1007, 1100} <= set(changed) and len(changed) < 10  # plus the cursor's own second
    assert changed[1100]["status"] == "refunded" and newer > cursor
    customers, ccursor = await _all(shop, "customers")
    sandbox.change("customers", 3, first_name="Renamed")
    again, _ = await _all(shop, "customers", ccursor)
    assert 3 in again and again[3]["first_name"] == "Renamed" and len(again) < len(customers)


async def test_records_changed_during_the_sync_are_not_skipped(store):
    sandbox, shop = store
    seen: set[int] = set()
    pages = 0
    async for page in client.read(shop, "orders", None, page_size=40):
        seen |= {r["id"] for r in page.records}
        pages += 1
        if pages == 2:  # an order not read yet and one already read both change now
            sandbox.change("orders", 1200, status="completed")
            sandbox.change("orders", 1001, status="completed")
    assert seen == set(sandbox.data.orders)


async def test_more_records_in_one_second_than_a_page_are_all_read():
    data = seeded(seed=12, orders=0)
    same = "2026-05-01T12:00:00"
    for i in range(1, 131):
        data.orders[5000 + i] = {
            "id": 5000 + i,
            "status": "completed",
            "date_created_gmt": same,
            "date_modified_gmt": same,
        }
    data.orders[9999] = {
        "id": 9999,
        "status": "completed",
        "date_created_gmt": same,
        "date_modified_gmt": "2026-05-01T12:00:01",
    }
    sandbox = Sandbox(data, [ApiKey(CK, CS)])
    with served(sandbox.app()) as url:
        shop = client.Store.at(url, Credentials(consumer_key=CK, consumer_secret=CS))
        seen, cursor = await _all(shop, "orders", page_size=50)
        assert set(seen) == set(data.orders)
        assert cursor == "2026-05-01T12:00:01"
        # resuming inside the crowded second drains it again, then moves on
        again, _ = await _all(shop, "orders", same, page_size=50)
        assert set(again) == set(data.orders)


async def test_faults_are_ridden_out_and_refused_keys_are_told_apart(store):
    sandbox, shop = store
    sandbox.inject("unavailable", retry_after=0.05)
    sandbox.inject("error")
    seen, _ = await _all(shop, "products")
    assert set(seen) == set(sandbox.data.products)
    sandbox.inject("malformed")
    with pytest.raises(client.StoreError, match="not JSON"):
        await _all(shop, "products")
    revoked = client.Store.at(shop.url, Credentials(consumer_key=CK, consumer_secret="cs_old"))
    with pytest.raises(client.KeysRefused, match="signature"):
        await _all(revoked, "orders")
    nowhere = client.Store.at(shop.url + "/not-a-store", shop.credentials)
    with pytest.raises(client.StoreError):
        await _all(nowhere, "orders")


async def test_verifying_a_key_pair_reads_the_stores_profile(store):
    sandbox, shop = store
    profile = await client.verify(shop)
    assert profile.name == sandbox.data.name
    assert (profile.currency, profile.time_zone) == ("USD", "America/Chicago")
    assert (profile.city, profile.region, profile.country) == ("Austin", "TX", "US")
    assert profile.address_line1 == "412 Congress Ave" and profile.postal_code == "78701"
    wrong = client.Store.at(shop.url, Credentials(consumer_key=CK, consumer_secret="cs_x"))
    with pytest.raises(client.KeysRefused):
        await client.verify(wrong)


async def test_an_address_that_is_not_a_store_is_told_so():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def page(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("<html>a blog</html>", status_code=404)

    with served(Starlette(routes=[Route("/{path:path}", page)])) as url:
        blog = client.Store.at(url, Credentials(consumer_key=CK, consumer_secret=CS))
        with pytest.raises(client.NotWooCommerce):
            await client.verify(blog)
