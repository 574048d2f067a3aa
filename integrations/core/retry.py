"""Sending a vendor request: its budget first, then retries with jittered backoff for the
failures worth retrying, and nothing else.

Retried: network failures and timeouts (`httpx.TransportError`), 429, 500, 502, 503 and
504. A 429 or 503 with `Retry-After` pauses the account's whole budget for that long, so no
other request of the account is sent meanwhile; other retries wait a full-jitter backoff
(random between 0 and `base * 2^attempt`, at most `max_delay`). Every other answer (a 401 for
a revoked token, a 404, a 422) is returned at once: sending it again would change nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from integrations.core.ratelimit import Budget, parse_retry_after

RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})
PAUSING_STATUS = frozenset({429, 503})


@dataclass
class Attempts:
    """What sending took: for the connection's health and the logs."""

    tries: int = 0
    waited_for_budget: float = 0.0
    backoff: list[float] = field(default_factory=list)
    paused: list[float] = field(default_factory=list)


async def send(
    request: Callable[[], Awaitable[httpx.Response]],
    *,
    budget: Budget | None = None,
    cost: float = 1.0,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    jitter: Callable[[float, float], float] = random.uniform,
    record: Attempts | None = None,
) -> httpx.Response:
    """The vendor's answer to `request()` (called once per try). Raises the last
    `httpx.TransportError` when every try failed on the network."""
    seen = record if record is not None else Attempts()
    for attempt in range(attempts):
        seen.tries += 1
        if budget is not None:
            seen.waited_for_budget += await budget.acquire(cost)
        try:
            if budget is not None:
                async with budget.in_flight():
                    response = await request()
            else:
                response = await request()
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
            await _backoff(attempt, base_delay, max_delay, sleep, jitter, seen)
            continue
        if response.status_code not in RETRIABLE_STATUS or attempt == attempts - 1:
            return response
        retry_after = response.headers.get("retry-after")
        if response.status_code in PAUSING_STATUS and retry_after is not None:
            pause = parse_retry_after(retry_after)
            seen.paused.append(pause)
            if budget is not None:
                await budget.pause(pause)  # the next acquire waits it out, as do all others
            else:
                await sleep(pause)
            continue
        await _backoff(attempt, base_delay, max_delay, sleep, jitter, seen)
    raise AssertionError("unreachable")  # the last attempt returns or raises


async def _backoff(
    attempt: int,
    base: float,
    ceiling: float,
    sleep: Callable[[float], Awaitable[None]],
    jitter: Callable[[float, float], float],
    seen: Attempts,
) -> None:
    delay = jitter(0.0, min(ceiling, base * 2**attempt))
    seen.backoff.append(delay)
    await sleep(delay)


def next_link(response: httpx.Response) -> str | None:
    """The `rel="next"` address of a `Link` header (Shopify REST, WooCommerce), if any."""
    link = response.links.get("next")
    return link.get("url") if link else None
