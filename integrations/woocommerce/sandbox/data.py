"""The sandbox store's records: deterministic from a seed, in WooCommerce's own shapes
(shared/reference/vendor-apis.md §2.7): ids are ints, money is decimal strings, dates are
`YYYY-MM-DDTHH:MM:SS` without offset (the `*_gmt` fields in UTC; the store's clock here is
UTC as well, so the local and GMT fields agree)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

FIRST = ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai"]
LAST = ["García", "Smith", "Nguyen", "Okafor", "Rossi", "Schmidt", "Tanaka", "Dubois", "Khan"]
CITIES = [
    ("Austin", "TX", "US"),
    ("Lyon", "ARA", "FR"),
    ("Leeds", "ENG", "GB"),
    ("Porto", "", "PT"),
]
GOODS = ["Espresso beans", "Ceramic mug", "Pour-over kit", "Tea sampler", "Gift card", "Apron"]
STATUSES = ["processing", "completed", "completed", "completed", "on-hold", "cancelled", "refunded"]
EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)


def wc_time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value else None


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


@dataclass
class StoreData:
    """Orders, customers and products, each a dict by id, in creation order; and the store's
    own profile (WordPress's site name and time zone, WooCommerce's general settings)."""

    currency: str = "USD"
    name: str = "Bella Vista Coffee"
    timezone: str = "America/Chicago"
    address: dict[str, str] = field(
        default_factory=lambda: {
            "woocommerce_store_address": "412 Congress Ave",
            "woocommerce_store_address_2": "Suite 2",
            "woocommerce_store_city": "Austin",
            "woocommerce_default_country": "US:TX",
            "woocommerce_store_postcode": "78701",
        }
    )
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)

    def resource(self, name: str) -> dict[int, dict[str, Any]]:
        return {"orders": self.orders, "customers": self.customers, "products": self.products}[name]


def _address(rng: random.Random, first: str, last: str, email: str | None) -> dict[str, Any]:
    city, state, country = rng.choice(CITIES)
    out = {
        "first_name": first,
        "last_name": last,
        "company": "",
        "address_1": f"{rng.randint(1, 999)} Market St",
        "address_2": "",
        "city": city,
        "state": state,
        "postcode": f"{rng.randint(10000, 99999)}",
        "country": country,
        "phone": f"+1512555{rng.randint(1000, 9999)}",
    }
    if email is not None:
        out["email"] = email
    return out


def seeded(*, seed: int = 1, orders: int = 50, customers: int = 20, products: int = 6) -> StoreData:
    rng = random.Random(seed)
    data = StoreData()
    for i in range(1, products + 1):
        made = EPOCH + timedelta(hours=i)
        name = GOODS[(i - 1) % len(GOODS)] + ("" if i <= len(GOODS) else f" {i}")
        price = Decimal(rng.randint(500, 6000)) / 100
        data.products[100 + i] = {
            "id": 100 + i,
            "name": name,
            "slug": name.lower().replace(" ", "-"),
            "permalink": f"https://shop.example/product/{name.lower().replace(' ', '-')}/",
            "date_created": wc_time(made),
            "date_created_gmt": wc_time(made),
            "date_modified": wc_time(made),
            "date_modified_gmt": wc_time(made),
            "type": "simple",
            "status": "publish",
            "sku": f"SKU-{100 + i}",
            "price": _money(price),
            "regular_price": _money(price),
            "sale_price": "",
            "manage_stock": True,
            "stock_quantity": rng.randint(0, 80),
            "stock_status": "instock",
            "categories": [{"id": 15, "name": "Uncategorized", "slug": "uncategorized"}],
            "images": [],
            "variations": [],
            "meta_data": [],
        }
    for i in range(1, customers + 1):
        made = EPOCH + timedelta(days=i % 30, minutes=i)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower()}.{i}@example.com".replace("é", "e")
        data.customers[i] = {
            "id": i,
            "date_created": wc_time(made),
            "date_created_gmt": wc_time(made),
            "date_modified": wc_time(made),
            "date_modified_gmt": wc_time(made),
            "email": email,
            "first_name": first,
            "last_name": last,
            "role": "customer",
            "username": email.split("@")[0],
            "billing": _address(rng, first, last, email),
            "shipping": _address(rng, first, last, None),
            "is_paying_customer": True,
            "avatar_url": "https://secure.gravatar.com/avatar/?s=96&d=mm&r=g",
            "meta_data": [],
        }
    product_ids = list(data.products)
    for i in range(1, orders + 1):
        made = EPOCH + timedelta(hours=3 * i, minutes=rng.randint(0, 59))
        changed = made + timedelta(hours=rng.randint(0, 48))
        customer_id = rng.choice([0, *data.customers]) if data.customers else 0
        who = data.customers.get(customer_id)
        first = who["first_name"] if who else rng.choice(FIRST)
        last = who["last_name"] if who else rng.choice(LAST)
        email = who["email"] if who else f"guest{i}@example.com"
        items, total = [], Decimal(0)
        for n in range(rng.randint(1, 3)):
            product = data.products[rng.choice(product_ids)] if product_ids else None
            qty = rng.randint(1, 3)
            unit = Decimal(product["price"]) if product else Decimal("9.99")
            line = unit * qty
            total += line
            items.append(
                {
                    "id": i * 10 + n,
                    "name": product["name"] if product else "Item",
                    "product_id": product["id"] if product else 0,
                    "variation_id": 0,
                    "quantity": qty,
                    "subtotal": _money(line),
                    "total": _money(line),
                    "sku": product["sku"] if product else "",
                    "price": float(unit),
                }
            )
        status = rng.choice(STATUSES)
        shipping = Decimal("4.90")
        paid = made + timedelta(minutes=2) if status not in ("on-hold", "cancelled") else None
        data.orders[1000 + i] = {
            "id": 1000 + i,
            "parent_id": 0,
            "number": str(1000 + i),
            "order_key": f"wc_order_{rng.getrandbits(48):012x}",
            "created_via": "checkout",
            "version": "9.4.2",
            "status": status,
            "currency": data.currency,
            "date_created": wc_time(made),
            "date_created_gmt": wc_time(made),
            "date_modified": wc_time(changed),
            "date_modified_gmt": wc_time(changed),
            "date_paid": wc_time(paid),
            "date_paid_gmt": wc_time(paid),
            "date_completed": wc_time(changed) if status == "completed" else None,
            "date_completed_gmt": wc_time(changed) if status == "completed" else None,
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": _money(shipping),
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": _money(total + shipping),
            "total_tax": "0.00",
            "prices_include_tax": False,
            "customer_id": customer_id,
            "customer_ip_address": "",
            "customer_user_agent": "",
            "customer_note": "",
            "billing": _address(rng, first, last, email),
            "shipping": _address(rng, first, last, None),
            "payment_method": "stripe",
            "payment_method_title": "Credit card",
            "transaction_id": f"ch_{rng.getrandbits(40):010x}" if paid else "",
            "cart_hash": "",
            "meta_data": [],
            "line_items": items,
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": (
                [{"id": 9000 + i, "reason": "Customer request", "total": f"-{_money(total)}"}]
                if status == "refunded"
                else []
            ),
            "payment_url": "",
            "is_editable": status in ("pending", "on-hold"),
            "needs_payment": paid is None,
            "needs_processing": status == "processing",
        }
    return data
