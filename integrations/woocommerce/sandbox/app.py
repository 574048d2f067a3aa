"""The sandbox store: WooCommerce's REST API v3 as a store serves it (vendor-apis.md §2).

Serves `GET /wp-json/wc/v3/{orders,customers,products}` and `/{resource}/{id}` over the
seeded `StoreData`, with WooCommerce's authentication and answers:

* **Authentication** is chosen by whether the store sees HTTPS (`https`, WordPress's
  `is_ssl()`), not by the client: with HTTPS, `consumer_key`/`consumer_secret` query
  parameters (which win) or HTTP Basic; without, one-legged OAuth 1.0a only
  (`integrations.woocommerce.oauth1.check`, nonces remembered per key for 15 minutes). An
  unknown Basic key leaves the request unauthenticated (`woocommerce_rest_cannot_view`,
  401); a wrong secret is `Consumer secret is invalid.` with `WWW-Authenticate`; a key
  without read permission is refused as WooCommerce words it.
* **Lists**: a bare JSON array; `page` (≥ 1), `per_page` (1 to 100, otherwise 400
  `rest_invalid_param`), `offset` (wins over `page`), `order` (default `desc`), `orderby`,
  `modified_after`/`modified_before` and `after`/`before` (orders and products; customers
  have no date filter and ignore them), `dates_are_gmt`, orders' `status`; `X-WP-Total`,
  `X-WP-TotalPages`, and `Link` `prev`/`next` repeating the query with `page` replaced (the
  credentials left out, where a real store would repeat them); a page past the end is 200
  `[]` with the real totals.
* **Faults on demand** (`inject`, or `POST /__sandbox/faults` with the same fields as JSON):
  the next requests answer a host's 429 or 503 (HTML, optional `Retry-After`), a 500, a
  truncated JSON body, or wait before answering (a timeout for an impatient client).
  Every request the store received is in `requests` (method, path, time), for tests that
  check when a client sent what.
* **Webhooks**: `POST /wp-json/wc/v3/webhooks` {name, topic, delivery_url, secret, status}
  (a key with write permission) pings the delivery URL first (an unsigned form body
  `webhook_id=<id>`) and creates the webhook only when the ping is answered exactly 200;
  `GET` lists them, `DELETE /webhooks/{id}?force=true` removes one. `change(resource, id,
  **fields)` updates a record and queues a delivery for every active webhook of its topic;
  `deliver()` sends them as WooCommerce does: one per (webhook, record) however many changes
  were queued (coalesced, the body rendered at delivery time), signed `X-WC-Webhook-Signature`
  with the webhook's secret, the `X-WC-Webhook-*` headers, a fresh delivery id each time;
  `deliver(duplicates=n, reverse=True)` re-sends and reorders on demand. More than five
  failures in a row disable the webhook. (The ping-failure error code is not in the
  reference: the sandbox answers `woocommerce_rest_webhook_delivery_failed`, 400.)
* **The store's profile**: `GET /wp-json` (public, as WordPress serves it: site `name`,
  `url`, `home`, `gmt_offset`, `timezone_string`, `namespaces`) and
  `GET /wp-json/wc/v3/settings/general` (authenticated: the address, country and currency
  settings as `{id, label, type, default, value, group_id}` objects).
* **One record**: an unknown id is 404 `woocommerce_rest_shop_order_invalid_id` (orders),
  `woocommerce_rest_product_invalid_id` (products), `woocommerce_rest_invalid_id`
  (customers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from integrations.core.webhooks import hmac_sha256_base64
from integrations.woocommerce import oauth1
from integrations.woocommerce.sandbox.data import StoreData, wc_time

RESOURCES = ("orders", "customers", "products")
NOT_FOUND_CODE = {
    "orders": "woocommerce_rest_shop_order_invalid_id",
    "products": "woocommerce_rest_product_invalid_id",
    "customers": "woocommerce_rest_invalid_id",
}
ORDERBY = {
    "orders": {"date": "date_created_gmt", "id": "id", "modified": "date_modified_gmt"},
    "products": {
        "date": "date_created_gmt",
        "id": "id",
        "modified": "date_modified_gmt",
        "title": "name",
        "slug": "slug",
    },
    "customers": {"id": "id", "registered_date": "date_created_gmt", "name": "username"},
}
CREDENTIAL_PARAMS = ("consumer_key", "consumer_secret")
BASIC_REALM = (
    'Basic realm="WooCommerce API. Use a consumer key in the username field and a consumer '
    'secret in the password field."'
)


@dataclass
class ApiKey:
    consumer_key: str
    consumer_secret: str
    permissions: str = "read"  # read | write | read_write


def _error(code: str, message: str, status: int, **data: Any) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "data": {"status": status, **data}}, status_code=status
    )


class Unauthenticated(Exception):
    pass


FAULT_KINDS = ("throttle", "unavailable", "error", "malformed", "slow")


@dataclass
class Fault:
    kind: str  # one of FAULT_KINDS
    times: int = 1
    retry_after: float | None = None  # throttle / unavailable
    seconds: float = 0.0  # slow: how long to wait before answering


WEBHOOK_RESOURCES = {
    "order": "orders",
    "customer": "customers",
    "product": "products",
    "coupon": None,
}
WEBHOOK_EVENTS = ("created", "updated", "deleted", "restored")
MAX_FAILURES = 5
SOURCE_URL = "https://shop.example/"


@dataclass
class Webhook:
    id: int
    name: str
    topic: str
    delivery_url: str
    secret: str
    status: str = "active"
    failures: int = 0
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def out(self) -> dict[str, Any]:
        resource, event = self.topic.split(".", 1)
        made = wc_time(self.created)
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "topic": self.topic,
            "resource": resource,
            "event": event,
            "hooks": [f"woocommerce_{event}_{resource}"],
            "delivery_url": self.delivery_url,
            "date_created": made,
            "date_created_gmt": made,
            "date_modified": made,
            "date_modified_gmt": made,
        }


@dataclass
class Sandbox:
    data: StoreData
    keys: list[ApiKey]
    https: bool = False  # what the store believes (is_ssl)
    clock: Callable[[], float] = time.time
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, float]] = field(default_factory=list)
    webhooks: dict[int, Webhook] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # what was sent, in order
    _pending: dict[tuple[int, int], str] = field(default_factory=dict)  # (webhook, id) -> event
    _nonces: dict[str, dict[str, float]] = field(default_factory=dict)

    # ---- faults -------------------------------------------------------------------------------
    def inject(
        self, kind: str, *, times: int = 1, retry_after: float | None = None, seconds: float = 0.0
    ) -> None:
        """The next `times` requests meet this fault (faults queue up in order)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if times < 1 or seconds < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("times must be at least 1; seconds and retry_after not negative")
        self.faults.append(Fault(kind, times, retry_after, seconds))

    async def _fault(self) -> Response | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.faults.pop(0)
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        if fault.kind == "throttle":
            return HTMLResponse("<h1>429 Too Many Requests</h1>", 429, headers=headers)
        if fault.kind == "unavailable":
            return HTMLResponse("<h1>503 Service Unavailable</h1>", 503, headers=headers)
        if fault.kind == "error":
            return _error(
                "internal_server_error", "There has been a critical error on this website.", 500
            )
        if fault.kind == "malformed":
            return Response(b'[{"id": 1001, "status": "proc', media_type="application/json")
        await asyncio.sleep(fault.seconds)  # slow: then answer normally
        return None

    async def control(self, request: Request) -> Response:
        """`POST /__sandbox/faults` {kind, times?, retry_after?, seconds?}; DELETE clears."""
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse({"faults": 0})
        try:
            body = await request.json()
            self.inject(
                str(body["kind"]),
                times=int(body.get("times", 1)),
                retry_after=body.get("retry_after"),
                seconds=float(body.get("seconds", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": len(self.faults)}, status_code=201)

    # ---- authentication ---------------------------------------------------------------------
    def _key(self, consumer_key: str) -> ApiKey | None:
        return next((k for k in self.keys if k.consumer_key == consumer_key), None)

    def _authenticate(self, request: Request) -> ApiKey | JSONResponse | None:
        """The key a request authenticates with, an error answer, or None (anonymous)."""
        query = list(request.query_params.multi_items())
        if self.https:
            given = dict(query)
            key_id, secret = given.get("consumer_key"), given.get("consumer_secret")
            if not (key_id and secret):
                scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() == "basic":
                    try:
                        key_id, _, secret = base64.b64decode(encoded).decode().partition(":")
                    except (binascii.Error, UnicodeDecodeError):
                        key_id = secret = None
            if not key_id:
                return None
            key = self._key(key_id)
            if key is None:
                return None  # WooCommerce sets no error: the request goes on anonymous
            if not secret or secret != key.consumer_secret:
                response = _error(
                    "woocommerce_rest_authentication_error", "Consumer secret is invalid.", 401
                )
                response.headers["WWW-Authenticate"] = BASIC_REALM
                return response
            return key
        last = dict(query)  # PHP keeps the last of a repeated parameter
        if not any(k.startswith("oauth_") for k in last):
            return None
        key = self._key(last.get("oauth_consumer_key", ""))
        if key is None and last.get("oauth_consumer_key"):
            return _error("woocommerce_rest_authentication_error", "Consumer key is invalid.", 401)
        url = f"http://{request.headers.get('host', request.url.netloc)}{request.url.path}"
        nonces = self._fresh_nonces(key.consumer_key if key else "")
        try:
            oauth1.check(
                request.method,
                url,
                list(last.items()),
                key.consumer_secret if key else "",
                seen_nonces=set(nonces),
                now=self.clock(),
            )
        except oauth1.Refused as exc:
            code = (
                "woocommerce_rest_authentication_missing_parameter"
                if str(exc).startswith("Missing")
                else "woocommerce_rest_authentication_error"
            )
            return _error(code, str(exc), 401)
        nonces[last["oauth_nonce"]] = self.clock()
        return key

    def _fresh_nonces(self, consumer_key: str) -> dict[str, float]:
        """The nonces this key used within the timestamp window (older ones forgotten)."""
        now = self.clock()
        kept = {
            n: t
            for n, t in self._nonces.get(consumer_key, {}).items()
            if now - t < oauth1.TIMESTAMP_WINDOW
        }
        self._nonces[consumer_key] = kept
        return kept

    def _authorize(self, request: Request, action: str, need: str = "read") -> JSONResponse | None:
        found = self._authenticate(request)
        if isinstance(found, JSONResponse):
            return found
        if found is None:
            code = (
                "woocommerce_rest_cannot_view"
                if need == "read"
                else "woocommerce_rest_cannot_create"
            )
            return _error(code, f"Sorry, you cannot {action}.", 401)
        if need not in found.permissions:
            return _error(
                "woocommerce_rest_authentication_error",
                f"The API key provided does not have {need} permissions.",
                401,
            )
        return None

    # ---- webhooks ------------------------------------------------------------------------------
    async def create_webhook(self, request: Request) -> Response:
        refused = self._authorize(request, "create resources", need="write")
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _error("rest_invalid_json", "Invalid JSON body passed.", 400)
        topic, url = str(body.get("topic", "")), str(body.get("delivery_url", ""))
        resource, _, event = topic.partition(".")
        invalid = {}
        if resource not in WEBHOOK_RESOURCES or event not in WEBHOOK_EVENTS:
            invalid["topic"] = "topic is not a valid webhook topic."
        if not url.startswith(("http://", "https://")):
            invalid["delivery_url"] = "delivery_url is not a valid URL."
        if str(body.get("status", "active")) not in ("active", "paused", "disabled"):
            invalid["status"] = "status is not one of active, paused, and disabled."
        if invalid:
            return _error(
                "rest_invalid_param",
                f"Invalid parameter(s): {', '.join(invalid)}",
                400,
                params=invalid,
            )
        hook_id = max(self.webhooks, default=0) + 1
        try:
            async with httpx.AsyncClient(timeout=10, follow_redirects=False) as http:
                ping = await http.post(url, data={"webhook_id": str(hook_id)})
            pinged = ping.status_code == 200
        except httpx.HTTPError:
            pinged = False
        if not pinged:
            return _error(
                "woocommerce_rest_webhook_delivery_failed",
                "Error: Delivery URL cannot be reached or returned a response code other than 200.",
                400,
            )
        hook = Webhook(
            hook_id,
            str(body.get("name") or f"Webhook {hook_id}"),
            topic,
            url,
            str(body.get("secret") or ""),
            str(body.get("status", "active")),
        )
        self.webhooks[hook_id] = hook
        return JSONResponse(
            hook.out(), status_code=201, headers={"Location": f"/wp-json/wc/v3/webhooks/{hook_id}"}
        )

    async def list_webhooks(self, request: Request) -> Response:
        refused = self._authorize(request, "list resources")
        if refused is not None:
            return refused
        return JSONResponse([h.out() for h in self.webhooks.values()])

    async def delete_webhook(self, request: Request) -> Response:
        refused = self._authorize(request, "delete resources", need="write")
        if refused is not None:
            return refused
        hook = self.webhooks.get(_int(request.path_params["id"]) or -1)
        if hook is None:
            return _error("woocommerce_rest_webhook_invalid_id", "Invalid ID.", 404)
        if request.query_params.get("force") != "true":
            return _error(
                "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.", 501
            )
        del self.webhooks[hook.id]
        return JSONResponse({**hook.out(), "status": hook.status})

    def change(self, resource: str, record_id: int, event: str = "updated", **fields: Any) -> None:
        """A change in the store's admin: the record is updated (its modified date too) and a
        delivery is queued for every active webhook of `<resource>.<event>`."""
        records = self.data.resource(resource)
        if event == "deleted":
            records.pop(record_id, None)
        else:
            row = records.setdefault(record_id, {"id": record_id})
            now = wc_time(datetime.fromtimestamp(self.clock(), UTC))
            row.update(fields, date_modified=now, date_modified_gmt=now)
        singular = {v: k for k, v in WEBHOOK_RESOURCES.items() if v}[resource]
        for hook in self.webhooks.values():
            if hook.status == "active" and hook.topic == f"{singular}.{event}":
                self._pending.setdefault((hook.id, record_id), event)

    async def deliver(self, *, duplicates: int = 0, reverse: bool = False) -> list[int]:
        """Send what is queued; returns the status codes received, in sending order."""
        queued = list(self._pending.items())
        self._pending.clear()
        if reverse:
            queued.reverse()
        statuses = []
        async with httpx.AsyncClient(timeout=60, follow_redirects=False) as http:
            for (hook_id, record_id), event in queued:
                for _ in range(1 + duplicates):
                    statuses.append(await self._send(http, hook_id, record_id, event))
        return statuses

    async def _send(self, http: httpx.AsyncClient, hook_id: int, record_id: int, event: str) -> int:
        hook = self.webhooks.get(hook_id)
        if hook is None or hook.status != "active":
            return 0
        resource = WEBHOOK_RESOURCES[hook.topic.split(".", 1)[0]] or ""
        record = self.data.resource(resource).get(record_id)
        payload = {"id": record_id} if event == "deleted" or record is None else record
        raw = json.dumps(payload, separators=(",", ":")).encode()
        # wp_hash(webhook id . time): an opaque value, new for each delivery
        delivery_id = hashlib.sha256(f"{hook_id}{time.time_ns()}".encode()).hexdigest()[:32]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
            "X-WC-Webhook-Source": SOURCE_URL,
            "X-WC-Webhook-Topic": hook.topic,
            "X-WC-Webhook-Resource": hook.topic.split(".", 1)[0],
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": hmac_sha256_base64(hook.secret, raw),
            "X-WC-Webhook-ID": str(hook.id),
            "X-WC-Webhook-Delivery-ID": delivery_id,
        }
        try:
            status = (await http.post(hook.delivery_url, content=raw, headers=headers)).status_code
        except httpx.HTTPError:
            status = 0
        self.deliveries.append(
            {
                "webhook": hook.id,
                "record": record_id,
                "event": event,
                "status": status,
                "delivery_id": delivery_id,
                "body": raw,
            }
        )
        if 200 <= status < 303:
            hook.failures = 0
        else:
            hook.failures += 1
            if hook.failures > MAX_FAILURES:
                hook.status = "disabled"
        return status

    # ---- endpoints --------------------------------------------------------------------------
    async def _arrive(self, request: Request, action: str) -> Response | None:
        """What every record request meets first: the log, an injected fault, an unknown
        route, the authentication. None: go on."""
        self.requests.append((request.method, request.url.path, self.clock()))
        faulted = await self._fault()
        if faulted is not None:
            return faulted
        if request.path_params["resource"] not in RESOURCES:
            return _error(
                "rest_no_route", "No route was found matching the URL and request method.", 404
            )
        return self._authorize(request, action)

    async def list_records(self, request: Request) -> Response:
        stopped = await self._arrive(request, "list resources")
        if stopped is not None:
            return stopped
        resource = request.path_params["resource"]
        q = request.query_params
        invalid: dict[str, str] = {}
        per_page = _int(q.get("per_page", "10"))
        if per_page is None or not 1 <= per_page <= 100:
            invalid["per_page"] = "per_page must be between 1 (inclusive) and 100 (inclusive)"
        page = _int(q.get("page", "1"))
        if page is None or page < 1:
            invalid["page"] = "page must be greater than or equal to 1"
        offset = _int(q["offset"]) if "offset" in q else 0
        if offset is None or offset < 0:
            invalid["offset"] = "offset is not of type integer"
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            invalid["order"] = "order is not one of asc and desc."
        orderby = q.get("orderby", "date" if resource != "customers" else "name")
        if orderby not in ORDERBY[resource]:
            invalid["orderby"] = f"orderby is not one of {', '.join(ORDERBY[resource])}."
        if invalid:
            return _error(
                "rest_invalid_param",
                f"Invalid parameter(s): {', '.join(invalid)}",
                400,
                params=invalid,
                details={},
            )
        assert per_page is not None and page is not None and offset is not None
        rows = list(self.data.resource(resource).values())
        if resource != "customers":
            rows = _filter_dates(rows, q)
        if resource == "orders":
            status = q.get("status", "any")
            if status != "any":
                rows = [r for r in rows if r["status"] in status.split(",")]
        column = ORDERBY[resource][orderby]
        rows.sort(key=lambda r: (r[column], r["id"]), reverse=order == "desc")
        total = len(rows)
        pages = math.ceil(total / per_page) if total else 0
        start = offset if "offset" in q else (page - 1) * per_page
        body = rows[start : start + per_page]
        response = JSONResponse(body)
        response.headers["X-WP-Total"] = str(total)
        response.headers["X-WP-TotalPages"] = str(pages)
        links = []
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        kept = [
            (k, v)
            for k, v in q.multi_items()
            if k != "page" and not k.startswith("oauth_") and k not in CREDENTIAL_PARAMS
        ]
        if page > 1 and "offset" not in q:
            links.append(
                f'<{base}?{urlencode([*kept, ("page", min(page - 1, pages))])}>; rel="prev"'
            )
        if page < pages and "offset" not in q:
            links.append(f'<{base}?{urlencode([*kept, ("page", page + 1)])}>; rel="next"')
        if links:
            response.headers["Link"] = ", ".join(links)
        return response

    async def get_record(self, request: Request) -> Response:
        stopped = await self._arrive(request, "view this resource")
        if stopped is not None:
            return stopped
        resource = request.path_params["resource"]
        found = self.data.resource(resource).get(_int(request.path_params["id"]) or -1)
        if found is None:
            message = "Invalid resource ID." if resource == "customers" else "Invalid ID."
            return _error(NOT_FOUND_CODE[resource], message, 404)
        return JSONResponse(found)

    async def site_index(self, request: Request) -> Response:
        home = f"{request.url.scheme}://{request.url.netloc}"
        return JSONResponse(
            {
                "name": self.data.name,
                "description": "",
                "url": home,
                "home": home,
                "gmt_offset": "0",
                "timezone_string": self.data.timezone,
                "namespaces": ["oembed/1.0", "wc/v3", "wc/store/v1", "wp/v2"],
                "authentication": [],
            }
        )

    async def general_settings(self, request: Request) -> Response:
        refused = self._authorize(request, "list resources")
        if refused is not None:
            return refused
        labels = {
            "woocommerce_store_address": "Address line 1",
            "woocommerce_store_address_2": "Address line 2",
            "woocommerce_store_city": "City",
            "woocommerce_default_country": "Country / State",
            "woocommerce_store_postcode": "Postcode / ZIP",
        }
        values = {**self.data.address, "woocommerce_currency": self.data.currency}
        return JSONResponse(
            [
                {
                    "id": key,
                    "label": labels.get(key, "Currency"),
                    "description": "",
                    "type": "select"
                    if key in ("woocommerce_default_country", "woocommerce_currency")
                    else "text",
                    "default": "",
                    "tip": "",
                    "value": value,
                    "group_id": "general",
                }
                for key, value in values.items()
            ]
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/wp-json", self.site_index, methods=["GET"]),
                Route("/wp-json/", self.site_index, methods=["GET"]),
                Route("/wp-json/wc/v3/settings/general", self.general_settings, methods=["GET"]),
                Route("/wp-json/wc/v3/webhooks", self.create_webhook, methods=["POST"]),
                Route("/wp-json/wc/v3/webhooks", self.list_webhooks, methods=["GET"]),
                Route("/wp-json/wc/v3/webhooks/{id}", self.delete_webhook, methods=["DELETE"]),
                Route("/wp-json/wc/v3/{resource}", self.list_records, methods=["GET"]),
                Route("/wp-json/wc/v3/{resource}/{id}", self.get_record, methods=["GET"]),
                Route("/__sandbox/faults", self.control, methods=["POST", "DELETE"]),
            ]
        )


def _int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _filter_dates(rows: list[dict[str, Any]], q: Any) -> list[dict[str, Any]]:
    for param, column, keep in (
        ("modified_after", "date_modified_gmt", lambda v, b: v > b),
        ("modified_before", "date_modified_gmt", lambda v, b: v < b),
        ("after", "date_created_gmt", lambda v, b: v > b),
        ("before", "date_created_gmt", lambda v, b: v < b),
    ):
        if param in q:
            bound = _wc_date(q[param])
            if bound is not None:
                rows = [r for r in rows if keep(r[column], bound)]
    return rows


def _wc_date(value: str) -> str | None:
    """A date filter as the store compares it (ISO 8601; an offset is applied)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        from datetime import UTC

        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")
