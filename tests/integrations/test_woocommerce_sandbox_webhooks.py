"""The sandbox store's webhooks behave as WooCommerce's (vendor-apis.md §2.6): a creation ping,
signed deliveries of the record as it is at delivery time, coalescing, duplicates and
reordering on demand, disabling after repeated failures. Received by a real server, checked
with our own verifier."""

from __future__ import annotations

import json

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from integrations.woocommerce import signatures
from integrations.woocommerce.sandbox.app import ApiKey, Sandbox
from integrations.woocommerce.sandbox.data import seeded
from tests.live import served

CK, CS = "ck_rw", "cs_rw"
SECRET = "per-connection-secret"


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.answer = 200

    async def hook(self, request: Request) -> Response:
        self.got.append((dict(request.headers), await request.body()))
        return PlainTextResponse("ok", status_code=self.answer)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/woo", self.hook, methods=["POST"])])


async def test_webhooks_ping_then_deliver_signed_coalesced_and_on_demand_out_of_order():
    receiver = Receiver()
    sandbox = Sandbox(
        seeded(seed=4, orders=5), [ApiKey(CK, CS, permissions="read_write")], https=True
    )
    transport = httpx.ASGITransport(app=sandbox.app())
    with served(receiver.app()) as url:
        async with httpx.AsyncClient(
            transport=transport, base_url="https://shop.example", auth=(CK, CS)
        ) as store:
            made = await store.post(
                "/wp-json/wc/v3/webhooks",
                json={
                    "name": "Switchboard",
                    "topic": "order.updated",
                    "delivery_url": f"{url}/hooks/woo",
                    "secret": SECRET,
                },
            )
            assert made.status_code == 201, made.text
            assert made.json()["resource"] == "order" and made.json()["event"] == "updated"
            assert "secret" not in made.json()
            # the ping came first: unsigned, form-encoded, and recognized as the ping
            ping_headers, ping_body = receiver.got[0]
            assert signatures.is_ping(ping_body, ping_headers)
            listed = await store.get("/wp-json/wc/v3/webhooks")
            assert [h["id"] for h in listed.json()] == [made.json()["id"]]

            # two changes to one order, one to another: two deliveries (coalesced), each
            # showing the order as it is when sent
            sandbox.change("orders", 1001, status="completed")
            sandbox.change("orders", 1001, status="refunded")
            sandbox.change("orders", 1002, status="cancelled")
            assert await sandbox.deliver() == [200, 200]
            deliveries = receiver.got[1:]
            for headers, body in deliveries:
                assert signatures.verify_delivery(SECRET, body, headers)
                assert headers["x-wc-webhook-topic"] == "order.updated"
                assert headers["x-wc-webhook-source"].endswith("/")
            assert [json.loads(b)["status"] for _, b in deliveries] == ["refunded", "cancelled"]
            first_headers, first_body = deliveries[0]
            assert not signatures.verify_delivery("another-secret", first_body, first_headers)

            # duplicates and reordering on demand; every delivery id is new
            sandbox.change("orders", 1003, status="on-hold")
            sandbox.change("orders", 1004, status="on-hold")
            assert await sandbox.deliver(duplicates=1, reverse=True) == [200] * 4
            ids = [json.loads(b)["id"] for _, b in receiver.got[3:]]
            assert ids == [1004, 1004, 1003, 1003]
            delivery_ids = [h["x-wc-webhook-delivery-id"] for h, _ in receiver.got[1:]]
            assert len(set(delivery_ids)) == len(delivery_ids)

            # more than five failures in a row disable the webhook
            receiver.answer = 500
            for _ in range(6):
                sandbox.change("orders", 1005, status="processing")
                await sandbox.deliver()
            assert sandbox.webhooks[made.json()["id"]].status == "disabled"
            sent = len(receiver.got)
            sandbox.change("orders", 1005, status="completed")
            await sandbox.deliver()
            assert len(receiver.got) == sent


async def test_a_webhook_is_refused_when_its_ping_is_not_answered_200():
    receiver = Receiver()
    receiver.answer = 204
    sandbox = Sandbox(
        seeded(seed=4, orders=1), [ApiKey(CK, CS, permissions="read_write")], https=True
    )
    transport = httpx.ASGITransport(app=sandbox.app())
    with served(receiver.app()) as url:
        async with httpx.AsyncClient(
            transport=transport, base_url="https://shop.example", auth=(CK, CS)
        ) as store:
            refused = await store.post(
                "/wp-json/wc/v3/webhooks",
                json={"topic": "order.created", "delivery_url": f"{url}/hooks/woo"},
            )
            assert refused.status_code == 400 and not sandbox.webhooks
            bad = await store.post(
                "/wp-json/wc/v3/webhooks",
                json={"topic": "order.exploded", "delivery_url": "ftp://x"},
            )
            assert bad.status_code == 400
            assert set(bad.json()["data"]["params"]) == {"topic", "delivery_url"}
            read_only = Sandbox(seeded(orders=1), [ApiKey("ck_r", "cs_r")], https=True)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=read_only.app()),
                base_url="https://shop.example",
                auth=("ck_r", "cs_r"),
            ) as ro:
                denied = await ro.post("/wp-json/wc/v3/webhooks", json={})
                assert denied.status_code == 401
                assert denied.json()["message"].endswith("does not have write permissions.")
