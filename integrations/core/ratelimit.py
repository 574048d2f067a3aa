"""Request budgets that follow each vendor's own rate-limit signals.

One budget per vendor account (a Shopify store, a Mailchimp account): a bucket of
`capacity` units refilled at `refill_per_second`, from which each request takes its cost (1
for a REST call; the query cost for Shopify's GraphQL). On top of the bucket:

* `observe(available=..., capacity=..., refill_per_second=...)`: the vendor's own numbers
  (Shopify's `extensions.cost.throttleStatus`, `X-Shopify-Shop-Api-Call-Limit`) replace the
  estimate, so a budget shared with other apps or a plan change is followed at once;
* `pause(seconds)`: a `Retry-After` (or a throttled answer) holds every request of the
  account until it has passed;
* `max_in_flight`: a concurrency cap (Mailchimp's 10 connections), held while a request runs.

`MemoryBudget` lives in one process. `RedisBudget` keeps the same state in Redis, updated
atomically by one script per call with Redis's own clock, so every worker process that
shares the broker shares the budget (`budget_for` picks it when the broker is Redis).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from integrations.core.manifest import RateLimit, RateLimitModel


@asynccontextmanager
async def _held(slots: asyncio.Semaphore | None) -> AsyncIterator[None]:
    """A concurrency slot for the length of a request (none to take without a cap)."""
    if slots is None:
        yield
        return
    async with slots:
        yield


class CostTooHigh(ValueError):
    """A single request costs more than the whole bucket: it could never be sent."""


@dataclass(frozen=True)
class Limits:
    capacity: float
    refill_per_second: float
    max_in_flight: int | None = None

    @classmethod
    def of(cls, limit: RateLimit) -> Limits | None:
        """The budget a manifest's rate limit implies (None: the vendor sets none)."""
        if limit.model in (RateLimitModel.LEAKY_BUCKET, RateLimitModel.COST_BUDGET):
            assert limit.capacity is not None and limit.refill_per_second is not None
            return cls(limit.capacity, limit.refill_per_second, limit.max_concurrency)
        if limit.model is RateLimitModel.CONCURRENCY:
            return cls(float("inf"), float("inf"), limit.max_concurrency)
        return None


class Budget(Protocol):
    async def acquire(self, cost: float = 1.0) -> float: ...
    async def observe(
        self,
        *,
        available: float | None = None,
        capacity: float | None = None,
        refill_per_second: float | None = None,
    ) -> None: ...
    async def pause(self, seconds: float) -> None: ...
    def in_flight(self) -> Any: ...


class MemoryBudget:
    """A budget in this process. `clock` and `sleep` are injectable for tests."""

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.capacity = limits.capacity
        self.refill = limits.refill_per_second
        self.tokens = limits.capacity
        self._clock, self._sleep = clock, sleep
        self._at = clock()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(limits.max_in_flight) if limits.max_in_flight else None

    def _refresh(self, now: float) -> None:
        if self.capacity != float("inf"):
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.refill)
        self._at = now

    def _wait_for(self, cost: float, now: float) -> float:
        """Seconds until `cost` can be taken (0: take it now)."""
        self._refresh(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if self.tokens >= cost:
            return 0.0
        return (cost - self.tokens) / self.refill

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait until the request may go, take its cost; returns the seconds waited."""
        if cost > self.capacity:
            raise CostTooHigh(f"a request costing {cost} exceeds the bucket ({self.capacity})")
        waited = 0.0
        while True:
            async with self._lock:
                wait = self._wait_for(cost, self._clock())
                if wait <= 0:
                    self.tokens -= cost
                    return waited
            await self._sleep(wait)
            waited += wait

    async def observe(
        self,
        *,
        available: float | None = None,
        capacity: float | None = None,
        refill_per_second: float | None = None,
    ) -> None:
        async with self._lock:
            self._refresh(self._clock())
            if capacity is not None and capacity > 0:
                self.capacity = capacity
            if refill_per_second is not None and refill_per_second > 0:
                self.refill = refill_per_second
            if available is not None:
                self.tokens = max(0.0, min(self.capacity, available))

    async def pause(self, seconds: float) -> None:
        async with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + max(0.0, seconds))

    def in_flight(self) -> Any:
        return _held(self._slots)


# One script: refill from the last update by Redis's clock, honour a pause, then take the
# cost or say how long to wait. State: a hash {tokens, at, until, capacity, refill}.
_ACQUIRE = """
local key = KEYS[1]
local cost = tonumber(ARGV[1])
local default_capacity = tonumber(ARGV[2])
local default_refill = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', key, 'tokens', 'at', 'until', 'capacity', 'refill')
local capacity = tonumber(s[4]) or default_capacity
local refill = tonumber(s[5]) or default_refill
local tokens = tonumber(s[1]) or capacity
local at = tonumber(s[2]) or now
local blocked = tonumber(s[3]) or 0
tokens = math.min(capacity, tokens + math.max(0, now - at) * refill)
local wait = 0
if now < blocked then
  wait = blocked - now
elseif tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / refill
end
redis.call('HSET', key, 'tokens', tokens, 'at', now, 'capacity', capacity, 'refill', refill)
redis.call('EXPIRE', key, 86400)
return tostring(wait)
"""

_OBSERVE = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', key, 'tokens', 'at', 'capacity', 'refill')
local capacity = tonumber(ARGV[2]) or tonumber(s[3]) or tonumber(ARGV[4])
local refill = tonumber(ARGV[3]) or tonumber(s[4]) or tonumber(ARGV[5])
local tokens = tonumber(s[1]) or capacity
local at = tonumber(s[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * refill)
if ARGV[1] ~= '' then tokens = math.max(0, math.min(capacity, tonumber(ARGV[1]))) end
redis.call('HSET', key, 'tokens', tokens, 'at', now, 'capacity', capacity, 'refill', refill)
redis.call('EXPIRE', key, 86400)
return 1
"""

_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local current = tonumber(redis.call('HGET', KEYS[1], 'until')) or 0
redis.call('HSET', KEYS[1], 'until', math.max(current, now + tonumber(ARGV[1])))
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""


class RedisBudget:
    """The same budget kept in Redis, shared by every process using `key`."""

    def __init__(
        self,
        redis: Any,  # redis.asyncio.Redis
        key: str,
        limits: Limits,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.redis, self.key, self.limits = redis, key, limits
        self._sleep = sleep
        self._acquire = redis.register_script(_ACQUIRE)
        self._observe = redis.register_script(_OBSERVE)
        self._pause = redis.register_script(_PAUSE)
        self._slots = asyncio.Semaphore(limits.max_in_flight) if limits.max_in_flight else None

    async def acquire(self, cost: float = 1.0) -> float:
        if cost > self.limits.capacity:
            raise CostTooHigh(
                f"a request costing {cost} exceeds the bucket ({self.limits.capacity})"
            )
        waited = 0.0
        args = [cost, self.limits.capacity, self.limits.refill_per_second]
        while True:
            wait = float(await self._acquire(keys=[self.key], args=args))
            if wait <= 0:
                return waited
            await self._sleep(wait)
            waited += wait

    async def observe(
        self,
        *,
        available: float | None = None,
        capacity: float | None = None,
        refill_per_second: float | None = None,
    ) -> None:
        def arg(v: float | None) -> str:
            return "" if v is None or v < 0 else repr(float(v))

        await self._observe(
            keys=[self.key],
            args=[
                arg(available),
                arg(capacity) if capacity else "",
                arg(refill_per_second) if refill_per_second else "",
                self.limits.capacity,
                self.limits.refill_per_second,
            ],
        )

    async def pause(self, seconds: float) -> None:
        await self._pause(keys=[self.key], args=[max(0.0, seconds)])

    def in_flight(self) -> Any:
        # the cap is per process: a connection's sync runs in one worker at a time
        return _held(self._slots)


def parse_retry_after(value: str | None, *, default: float = 1.0, ceiling: float = 3600) -> float:
    """Seconds to wait from a `Retry-After` header: a number of seconds (Shopify sends
    `2.0`) or an HTTP date; `default` when absent or unreadable, at most `ceiling`."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = when.timestamp() - time.time()
    return max(0.0, min(ceiling, seconds))


# ---- one budget per vendor account ------------------------------------------------------

_MEMORY: dict[tuple[str, str], MemoryBudget] = {}
_MEMORY_KEPT = 10_000
_REDIS: dict[int, Any] = {}  # one client per event loop (a client is bound to its loop)


def _redis_client(url: str) -> Any:
    import redis.asyncio as aioredis

    loop = id(asyncio.get_running_loop())
    client = _REDIS.get(loop)
    if client is None:
        client = _REDIS[loop] = aioredis.from_url(url, decode_responses=True)
    return client


def budget_for(vendor: str, account: str, limits: Limits) -> Budget:
    """The budget of one vendor account: in Redis, shared by every worker, when the broker is
    Redis; otherwise this process's own (the embedded default runs tasks in-process)."""
    from services.settings import get_settings

    broker = get_settings().broker_url
    if broker.startswith(("redis://", "rediss://")):
        return RedisBudget(_redis_client(broker), f"sb:ratelimit:{vendor}:{account}", limits)
    key = (vendor, account)
    found = _MEMORY.get(key)
    if found is None:
        if len(_MEMORY) >= _MEMORY_KEPT:
            _MEMORY.pop(next(iter(_MEMORY)))
        found = _MEMORY[key] = MemoryBudget(limits)
    return found
