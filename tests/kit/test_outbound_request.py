"""The one guarded client for URLs a tenant supplies (services/kit/outbound.py `request`):
every redirect hop meets the same rule, credentials do not follow a redirect to another
origin, and a response cannot grow past its limit. Against real servers on 127.0.0.1
(loopback is allowed outside production; link-local never is)."""

from __future__ import annotations

import gzip

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.kit import outbound
from services.settings import get_settings
from tests.live import served


def _app() -> Starlette:
    async def echo(request: Request) -> Response:
        return JSONResponse(
            {
                "method": request.method,
                "host": request.headers.get("host"),
                "authorization": request.headers.get("authorization"),
                "query": dict(request.query_params),
                "body": (await request.body()).decode(),
            }
        )

    async def hop(request: Request) -> Response:
        code = int(request.query_params.get("code", "302"))
        return RedirectResponse(request.query_params["to"], status_code=code)

    async def loop(request: Request) -> Response:
        return RedirectResponse("/loop", status_code=302)

    async def big(request: Request) -> Response:
        return Response(b"x" * int(request.query_params["n"]))

    async def bomb(request: Request) -> Response:
        raw = gzip.compress(b"0" * 5_000_000)
        return Response(raw, headers={"content-encoding": "gzip"})

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/hop", hop, methods=["GET", "POST"]),
            Route("/loop", loop),
            Route("/big", big),
            Route("/bomb", bomb),
        ]
    )


@pytest.fixture(scope="module")
def servers():
    with served(_app()) as a, served(_app()) as b:
        yield a, b


async def test_a_plain_request_reaches_the_checked_address(servers):
    a, _ = servers
    resp = await outbound.request(
        "GET", f"{a}/echo", params={"q": "1"}, headers={"X-Test": "y"}, timeout_seconds=5
    )
    assert resp.status_code == 200
    seen = resp.json()
    assert seen["host"] == a.removeprefix("http://") and seen["query"] == {"q": "1"}


async def test_redirects_are_followed_only_when_asked_and_each_hop_is_checked(servers):
    a, _ = servers
    to_echo = f"{a}/hop?to={a}/echo"
    assert (await outbound.request("GET", to_echo, timeout_seconds=5)).status_code == 302
    followed = await outbound.request("GET", to_echo, timeout_seconds=5, max_redirects=3)
    assert followed.status_code == 200 and followed.json()["method"] == "GET"
    # a hop to the cloud metadata address is refused before anything is sent there
    for where in ("https://169.254.169.254/latest/meta-data/", "http://169.254.169.254/"):
        with pytest.raises(outbound.Refused):
            await outbound.request("GET", f"{a}/hop?to={where}", timeout_seconds=5, max_redirects=3)
    # and so is a hop to a scheme the rule does not take
    with pytest.raises(outbound.Refused):
        await outbound.request(
            "GET", f"{a}/hop?to=file:///etc/passwd", timeout_seconds=5, max_redirects=3
        )
    with pytest.raises(httpx.TooManyRedirects):
        await outbound.request("GET", f"{a}/loop", timeout_seconds=5, max_redirects=2)


async def test_a_post_becomes_a_get_on_303_and_keeps_its_body_on_307(servers):
    a, _ = servers
    for code, method, body in ((303, "GET", ""), (307, "POST", "k=v")):
        resp = await outbound.request(
            "POST",
            f"{a}/hop?code={code}&to={a}/echo",
            data={"k": "v"},
            timeout_seconds=5,
            max_redirects=1,
        )
        assert (resp.json()["method"], resp.json()["body"]) == (method, body), code


async def test_credentials_do_not_follow_a_redirect_to_another_origin(servers):
    a, b = servers
    auth = {"Authorization": "Basic Y2s6Y3M="}
    same = await outbound.request(
        "GET", f"{a}/hop?to={a}/echo", headers=auth, timeout_seconds=5, max_redirects=1
    )
    assert same.json()["authorization"] == auth["Authorization"]
    other = await outbound.request(
        "GET", f"{a}/hop?to={b}/echo", headers=auth, timeout_seconds=5, max_redirects=1
    )
    assert other.json()["authorization"] is None
    assert other.json()["host"] == b.removeprefix("http://")


async def test_a_response_cannot_grow_past_its_limit(servers):
    a, _ = servers
    ok = await outbound.request("GET", f"{a}/big?n=1000", timeout_seconds=5, max_bytes=1000)
    assert ok.content == b"x" * 1000
    with pytest.raises(outbound.TooLarge):
        await outbound.request("GET", f"{a}/big?n=1001", timeout_seconds=5, max_bytes=1000)
    with pytest.raises(outbound.TooLarge):  # counted decompressed: 5 MB from a 5 kB body
        await outbound.request("GET", f"{a}/bomb", timeout_seconds=5, max_bytes=1_000_000)


async def test_in_production_loopback_is_refused_also_behind_a_redirect(servers, monkeypatch):
    a, _ = servers
    monkeypatch.setenv("SWITCHBOARD_ENV", "production")
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", "p" * 40)
    get_settings.cache_clear()
    try:
        with pytest.raises(outbound.Refused):
            await outbound.request("GET", f"{a}/echo", timeout_seconds=5)

        # a public name that resolves to a loopback or private address is refused when it is
        # resolved, before anything is sent
        async def resolves_inward(host, port, **kw):  # type: ignore[no-untyped-def]
            return [(2, 1, 6, "", ("10.0.0.7" if host == "inner.example" else "127.0.0.1", port))]

        monkeypatch.setattr(outbound.anyio, "getaddrinfo", resolves_inward)
        for host in ("store.example", "inner.example"):
            with pytest.raises(outbound.Refused, match="resolves to an address"):
                await outbound.request("GET", f"https://{host}/", timeout_seconds=5)
    finally:
        get_settings.cache_clear()
