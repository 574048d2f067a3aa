"""Sending vendor requests (integrations/core/retry.py): retried only when retrying can
help, with backoff or the vendor's Retry-After, and never past the budget."""

from __future__ import annotations

import httpx
import pytest

from integrations.core import retry
from integrations.core.ratelimit import Limits, MemoryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _answers(*items):  # type: ignore[no-untyped-def]
    sent: list[float] = []
    queue = list(items)

    async def request() -> httpx.Response:
        sent.append(clock.now)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        status, headers = item if isinstance(item, tuple) else (item, {})
        return httpx.Response(status, headers=headers)

    return request, sent


clock = Clock()


@pytest.fixture(autouse=True)
def _fresh_clock():
    clock.now, clock.sleeps = 0.0, []


def _jitter(low: float, high: float) -> float:
    return high  # the worst case: deterministic


async def test_a_plain_answer_is_returned_at_once():
    for status in (200, 201, 400, 401, 403, 404, 422):
        request, sent = _answers(status)
        resp = await retry.send(request, sleep=clock.sleep, jitter=_jitter)
        assert resp.status_code == status and len(sent) == 1


async def test_server_errors_and_network_failures_are_retried_with_backoff():
    request, _ = _answers(500, httpx.ConnectError("down"), 502, httpx.ReadTimeout("slow"), 200)
    seen = retry.Attempts()
    resp = await retry.send(request, sleep=clock.sleep, jitter=_jitter, base_delay=0.5, record=seen)
    assert resp.status_code == 200 and seen.tries == 5
    assert seen.backoff == [0.5, 1.0, 2.0, 4.0]


async def test_backoff_is_capped_and_the_last_answer_is_returned():
    request, _ = _answers(503, 503, 503)
    seen = retry.Attempts()
    resp = await retry.send(
        request, attempts=3, sleep=clock.sleep, jitter=_jitter, max_delay=0.75, record=seen
    )
    assert resp.status_code == 503 and seen.backoff == [0.5, 0.75]


async def test_network_failures_on_every_try_raise():
    request, _ = _answers(*(httpx.ConnectError("down") for _ in range(3)))
    with pytest.raises(httpx.ConnectError):
        await retry.send(request, attempts=3, sleep=clock.sleep, jitter=_jitter)


async def test_retry_after_pauses_the_whole_account_and_no_request_goes_meanwhile():
    budget = MemoryBudget(Limits(40, 2), clock=clock, sleep=clock.sleep)
    request, sent = _answers((429, {"Retry-After": "2.0"}), 200)
    seen = retry.Attempts()
    resp = await retry.send(request, budget=budget, sleep=clock.sleep, record=seen)
    assert resp.status_code == 200 and seen.paused == [2.0]
    assert sent == [0.0, 2.0]  # the second try waited the pause out, not less
    other, other_sent = _answers(200)
    clock.now = 1.0  # another request of the account during a pause waits too
    await budget.pause(1.5)
    await retry.send(other, budget=budget, sleep=clock.sleep)
    assert other_sent == [2.5]


async def test_requests_spend_the_budget():
    budget = MemoryBudget(Limits(2, 1), clock=clock, sleep=clock.sleep)
    request, sent = _answers(200, 200, 200)
    for _ in range(3):
        await retry.send(request, budget=budget, sleep=clock.sleep)
    assert sent == [0.0, 0.0, 1.0]


def test_the_next_page_comes_from_the_link_header():
    linked = httpx.Response(
        200,
        headers={
            "Link": "<https://s.myshopify.com/admin/api/2025-10/orders.json?page_info=abc>; "
            'rel="next", <https://s.myshopify.com/x?page_info=zz>; rel="previous"'
        },
    )
    assert retry.next_link(linked).endswith("page_info=abc")
    assert retry.next_link(httpx.Response(200)) is None
    last = httpx.Response(200, headers={"Link": '<https://w.example/x?page=1>; rel="prev"'})
    assert retry.next_link(last) is None
