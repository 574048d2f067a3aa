"""The WooCommerce sandbox store serves the documented surface (vendor-apis.md §2), proved
with WooCommerce's own Python client (`woocommerce` 3.0.0) over a real socket."""

from __future__ import annotations

import base64

import anyio
import httpx
import pytest

from integrations.woocommerce.sandbox.app import ApiKey, Sandbox
from integrations.woocommerce.sandbox.data import seeded
from tests.live import served

woocommerce = pytest.importorskip("woocommerce")

CK, CS = "ck_" + "1" * 40, "cs_" + "2" * 40
KEYS = [ApiKey(CK, CS), ApiKey("ck_write_only", "cs_w", permissions="write")]


@pytest.fixture(scope="module")
def store():
    sandbox = Sandbox(seeded(seed=7, orders=45, customers=12, products=6), KEYS)
    with served(sandbox.app()) as url:
        yield sandbox, url


def _client(url: str, key: str = CK, secret: str = CS):  # type: ignore[no-untyped-def]
    return woocommerce.API(
        url=url, consumer_key=key, consumer_secret=secret, version="wc/v3", timeout=10
    )


async def test_the_official_client_reads_every_order_page_by_page_over_oauth1(store):
    sandbox, url = store

    def read_all() -> tuple[list[dict], list[httpx.Headers]]:
        api, page, rows, heads = _client(url), 1, [], []
        while True:
            resp = api.get(
                "orders", params={"per_page": 20, "page": page, "orderby": "id", "order": "asc"}
            )
            assert resp.status_code == 200, resp.text
            heads.append(resp.headers)
            if not resp.json():
                return rows, heads
            rows += resp.json()
            page += 1

    rows, heads = await anyio.to_thread.run_sync(read_all)
    assert [r["id"] for r in rows] == sorted(sandbox.data.orders)
    assert heads[0]["X-WP-Total"] == "45" and heads[0]["X-WP-TotalPages"] == "3"
    assert 'rel="next"' in heads[0]["Link"] and 'rel="prev"' not in heads[0]["Link"]
    assert 'rel="next"' not in heads[2]["Link"]
    assert heads[3]["X-WP-Total"] == "45"  # past the end: [] with the real totals
    order = rows[0]
    assert isinstance(order["total"], str) and order["date_modified_gmt"].count(":") == 2
    assert "+" not in order["date_created_gmt"] and isinstance(order["line_items"], list)


async def test_oauth1_refusals_use_woocommerces_messages(store):
    _, url = store

    def calls() -> list[tuple[int, dict]]:
        out = []
        for api in (_client(url, secret="cs_wrong"), _client(url, key="ck_unknown")):
            resp = api.get("orders")
            out.append((resp.status_code, resp.json()))
        return out

    (bad_secret, unknown) = await anyio.to_thread.run_sync(calls)
    assert bad_secret[0] == 401
    assert bad_secret[1]["message"] == "Invalid signature - provided signature does not match."
    assert unknown == (
        401,
        {
            "code": "woocommerce_rest_authentication_error",
            "message": "Consumer key is invalid.",
            "data": {"status": 401},
        },
    )
    async with httpx.AsyncClient(base_url=url) as http:
        anon = await http.get("/wp-json/wc/v3/orders")
        assert anon.status_code == 401 and anon.json()["code"] == "woocommerce_rest_cannot_view"
        # over plain HTTP, Basic credentials are ignored: still anonymous
        basic = base64.b64encode(f"{CK}:{CS}".encode()).decode()
        ignored = await http.get(
            "/wp-json/wc/v3/orders", headers={"Authorization": f"Basic {basic}"}
        )
        assert (
            ignored.status_code == 401 and ignored.json()["code"] == "woocommerce_rest_cannot_view"
        )


async def test_a_store_that_sees_https_takes_basic_and_query_keys():
    sandbox = Sandbox(seeded(seed=3, orders=5), KEYS, https=True)
    transport = httpx.ASGITransport(app=sandbox.app())
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as http:
        ok = await http.get("/wp-json/wc/v3/orders", auth=(CK, CS))
        assert ok.status_code == 200 and len(ok.json()) == 5
        query = await http.get(
            "/wp-json/wc/v3/orders", params={"consumer_key": CK, "consumer_secret": CS}
        )
        assert query.status_code == 200
        wrong = await http.get("/wp-json/wc/v3/orders", auth=(CK, "cs_nope"))
        assert wrong.status_code == 401
        assert wrong.json()["message"] == "Consumer secret is invalid."
        assert wrong.headers["WWW-Authenticate"].startswith('Basic realm="WooCommerce API.')
        unknown = await http.get("/wp-json/wc/v3/orders", auth=("ck_nobody", "cs"))
        assert unknown.status_code == 401
        assert unknown.json()["code"] == "woocommerce_rest_cannot_view"
        write_only = await http.get("/wp-json/wc/v3/orders", auth=("ck_write_only", "cs_w"))
        assert write_only.json()["message"].endswith("does not have read permissions.")


async def test_lists_validate_filter_and_answer_like_woocommerce():
    sandbox = Sandbox(seeded(seed=5, orders=30, customers=8), KEYS, https=True)
    transport = httpx.ASGITransport(app=sandbox.app())
    async with httpx.AsyncClient(
        transport=transport, base_url="https://shop.example", auth=(CK, CS)
    ) as http:
        too_many = await http.get("/wp-json/wc/v3/orders", params={"per_page": 101})
        assert too_many.status_code == 400
        assert too_many.json()["code"] == "rest_invalid_param"
        assert "per_page" in too_many.json()["data"]["params"]
        cutoff = sorted(o["date_modified_gmt"] for o in sandbox.data.orders.values())[10]
        recent = await http.get(
            "/wp-json/wc/v3/orders",
            params={"modified_after": cutoff, "dates_are_gmt": "true", "per_page": 100},
        )
        assert all(o["date_modified_gmt"] > cutoff for o in recent.json())
        assert int(recent.headers["X-WP-Total"]) == 19
        # customers have no date filter: the parameter changes nothing
        everyone = await http.get("/wp-json/wc/v3/customers", params={"modified_after": cutoff})
        assert everyone.headers["X-WP-Total"] == "8"
        by_offset = await http.get(
            "/wp-json/wc/v3/orders", params={"orderby": "id", "order": "asc", "offset": 28}
        )
        assert [o["id"] for o in by_offset.json()] == [1029, 1030]
        missing = await http.get("/wp-json/wc/v3/orders/999999")
        assert missing.status_code == 404
        assert missing.json()["code"] == "woocommerce_rest_shop_order_invalid_id"
        one = await http.get("/wp-json/wc/v3/orders/1001")
        assert one.json() == sandbox.data.orders[1001]
        link = (await http.get("/wp-json/wc/v3/orders", params={"page": 2})).headers["Link"]
        assert "page=1" in link and "page=3" in link and "consumer" not in link


def test_seeded_data_is_deterministic():
    assert seeded(seed=9, orders=10) == seeded(seed=9, orders=10)
    assert seeded(seed=9, orders=10) != seeded(seed=10, orders=10)


def test_switchboard_sandbox_woocommerce_serves_a_store():
    import subprocess
    import sys
    import time

    from tests.live import free_port

    port = free_port()
    command = [sys.executable, "-m", "services.cli", "sandbox", "woocommerce"]
    command += ["--port", str(port), "--orders", "12"]
    command += ["--consumer-key", "ck_cli", "--consumer-secret", "cs_cli"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        api = _client(f"http://127.0.0.1:{port}", "ck_cli", "cs_cli")
        deadline = time.monotonic() + 30
        while True:
            try:
                resp = api.get("orders")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        assert resp.status_code == 200 and resp.headers["X-WP-Total"] == "12"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert b"consumer key:    ck_cli" in out


async def test_the_sdk_rides_out_the_stores_faults_and_honours_retry_after():
    """integrations.core.retry + ratelimit against the sandbox's injected faults: host 429s and
    503s are retried after their Retry-After (and no request goes meanwhile), 500s after a
    backoff, a truncated body is the caller's to refuse."""
    import json

    from integrations.core import retry
    from integrations.core.ratelimit import Limits, MemoryBudget

    sandbox = Sandbox(seeded(seed=2, orders=3), KEYS, https=True)
    sandbox.inject("throttle", retry_after=0.3)
    sandbox.inject("unavailable", retry_after=0.2)
    sandbox.inject("error", times=2)
    budget = MemoryBudget(Limits(capacity=10, refill_per_second=100))
    transport = httpx.ASGITransport(app=sandbox.app())
    async with httpx.AsyncClient(
        transport=transport, base_url="https://shop.example", auth=(CK, CS)
    ) as http:
        seen = retry.Attempts()
        resp = await retry.send(
            lambda: http.get("/wp-json/wc/v3/orders"),
            budget=budget,
            base_delay=0.01,
            record=seen,
        )
        assert resp.status_code == 200 and len(resp.json()) == 3
        assert seen.tries == 5 and seen.paused == [0.3, 0.2] and len(seen.backoff) == 2
        times = [t for _, _, t in sandbox.requests]
        assert times[1] - times[0] >= 0.29 and times[2] - times[1] >= 0.19
        # nothing else of the account went out during a pause
        sandbox.inject("throttle", retry_after=0.25)
        first = await retry.send(
            lambda: http.get("/wp-json/wc/v3/orders"), budget=budget, attempts=1
        )
        assert first.status_code == 429
        await budget.pause(retry.parse_retry_after(first.headers["retry-after"]))
        before = len(sandbox.requests)
        other = await retry.send(lambda: http.get("/wp-json/wc/v3/customers"), budget=budget)
        assert other.status_code == 200
        assert sandbox.requests[before][2] - sandbox.requests[before - 1][2] >= 0.24
        # a truncated body arrives as a 200 the caller cannot parse
        sandbox.inject("malformed")
        broken = await retry.send(lambda: http.get("/wp-json/wc/v3/orders"), budget=budget)
        with pytest.raises(json.JSONDecodeError):
            broken.json()
        # the control endpoint refuses nonsense
        bad = await http.post("/__sandbox/faults", json={"kind": "explode"})
        assert bad.status_code == 400 and "fault kind" in bad.json()["error"]
        assert (await http.delete("/__sandbox/faults")).json() == {"faults": 0}


async def test_a_slow_store_times_an_impatient_client_out(store):
    _, url = store
    async with httpx.AsyncClient(base_url=url) as http:
        added = await http.post("/__sandbox/faults", json={"kind": "slow", "seconds": 1.0})
        assert added.status_code == 201
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/wp-json/wc/v3/orders", timeout=0.2)
