"""Request budgets (integrations/core/ratelimit.py): requests wait for their cost, follow
the vendor's own numbers, stop while a Retry-After holds; shared through Redis by every
process when the broker is Redis."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from integrations.core.ratelimit import (
    CostTooHigh,
    Limits,
    MemoryBudget,
    RedisBudget,
    parse_retry_after,
)
from integrations.shopify.manifest import MANIFEST as SHOPIFY
from integrations.woocommerce.manifest import MANIFEST as WOOCOMMERCE

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def _memory(capacity: float, refill: float, **kw) -> tuple[MemoryBudget, FakeTime]:  # type: ignore[no-untyped-def]
    t = FakeTime()
    return MemoryBudget(Limits(capacity, refill, **kw), clock=t.clock, sleep=t.sleep), t


async def test_requests_take_their_cost_and_wait_for_the_refill():
    budget, _ = _memory(capacity=40, refill=2)  # Shopify REST, Standard plan
    for _ in range(40):
        assert await budget.acquire() == 0
    assert await budget.acquire() == pytest.approx(0.5)  # one unit at 2/s
    assert await budget.acquire(cost=3) == pytest.approx(1.5)
    with pytest.raises(CostTooHigh):
        await budget.acquire(cost=41)


async def test_the_vendors_numbers_replace_the_estimate():
    budget, _ = _memory(capacity=1000, refill=50)
    await budget.observe(available=100, capacity=2000, refill_per_second=100)
    assert budget.capacity == 2000 and budget.refill == 100
    assert await budget.acquire(cost=100) == 0
    assert await budget.acquire(cost=50) == pytest.approx(0.5)  # at the observed 100/s
    await budget.observe(available=5000)  # never above the capacity
    assert budget.tokens == 2000


async def test_a_retry_after_holds_every_request_until_it_has_passed():
    budget, _ = _memory(capacity=10, refill=10)
    await budget.pause(2.0)
    assert await budget.acquire() == pytest.approx(2.0)
    await budget.pause(1.0)
    await budget.pause(0.5)  # a shorter pause does not shorten the longer one
    assert await budget.acquire() == pytest.approx(1.0)


async def test_concurrency_is_capped_while_requests_run():
    budget, _ = _memory(capacity=float("inf"), refill=float("inf"), max_in_flight=2)
    running, peak = 0, 0

    async def call() -> None:
        nonlocal running, peak
        async with budget.in_flight():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(call() for _ in range(6)))
    assert peak == 2


def test_limits_follow_the_manifests():
    shopify = Limits.of(SHOPIFY.rate_limit)
    assert shopify == Limits(1000, 100, None)
    assert Limits.of(WOOCOMMERCE.rate_limit) is None


@pytest.mark.parametrize(
    "header, seconds",
    [("2.0", 2.0), ("7", 7.0), (None, 1.0), ("soon", 1.0), ("-3", 0.0), ("99999", 3600.0)],
)
def test_retry_after_is_read_as_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date():
    import time
    from email.utils import formatdate

    assert 8 <= parse_retry_after(formatdate(time.time() + 10, usegmt=True)) <= 10


@pytest.fixture
async def redis_client():
    redis = pytest.importorskip("redis.asyncio")
    client = redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield client
    await client.aclose()


async def test_a_redis_budget_is_shared_by_every_process(redis_client):
    key = f"sb:test:ratelimit:{uuid.uuid4().hex}"
    limits = Limits(capacity=5, refill_per_second=1000)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    # two "processes": two budgets over the same key
    a = RedisBudget(redis_client, key, Limits(5, 0.001), sleep=sleep)
    b = RedisBudget(redis_client, key, Limits(5, 0.001), sleep=sleep)
    for budget in (a, b, a, b, a):
        assert await budget.acquire() == 0
    assert float(await redis_client.hget(key, "tokens")) < 1
    # the vendor says more is available: both see it
    await b.observe(available=3)
    assert await a.acquire() == 0 and await a.acquire() == 0 and await b.acquire() == 0
    # a pause set by one holds the other
    fast = RedisBudget(redis_client, key, limits, sleep=sleep)
    await fast.observe(available=5, refill_per_second=1000)
    await a.pause(0.2)
    waited = await fast.acquire()
    assert 0.1 <= waited <= 0.3, waited
    await redis_client.delete(key)
