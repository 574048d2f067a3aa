"""The token endpoint reads urlencoded bodies itself (the streaming parser costs more than the
rest of a small request's parsing): it must read them exactly as Starlette's form parser does,
which the other endpoints and the browser pages use."""

from __future__ import annotations

import random

import pytest
from starlette.formparsers import FormParser

from services.kit.errors import BadRequest
from services.oauth2.http import MAX_FORM_FIELDS, parse_urlencoded

TRICKY = [
    b"",
    b"grant_type=refresh_token&refresh_token=abc",
    b"a=1&a=2&b=",
    b"novalue&x=1",
    b"sp+ace=a+b&pct=%41%2B%20",
    b"utf8=%C3%A9t%C3%A9&raw=\xe9t\xe9",
    b"bad=%ZZ&half=%4",
    b"invalid_utf8=%FF%FE",
    b"&&a=1&&",
    b"eq=a=b=c",
    b"semi=a;b=c",
    b"nul=%00&ctl=%0D%0A",
]


async def _starlette(body: bytes) -> list[tuple[str, str]]:
    async def stream():
        yield body

    data = await FormParser(headers=None, stream=stream()).parse()  # type: ignore[arg-type]
    return [(k, v) for k, v in data.multi_items() if isinstance(v, str)]


@pytest.mark.parametrize("body", TRICKY)
async def test_reads_bodies_as_starlette_does(body):
    assert parse_urlencoded(body) == await _starlette(body)


async def test_random_bodies_read_as_starlette_does():
    rng = random.Random(7)
    alphabet = b"abc=&+%2041FFC3A9;\x00\xe9 "
    for _ in range(2000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert parse_urlencoded(body) == await _starlette(body), body


def test_too_many_fields_is_a_bad_request():
    with pytest.raises(BadRequest):
        parse_urlencoded(b"&".join([b"a=1"] * (MAX_FORM_FIELDS + 1)))
