"""Opaque public ids: a type prefix plus the base-58 form of the internal UUID.

`cli_6XB5xQ...` says what kind of object it names and nothing about ordering, tenant or
count. The mapping is pure, so no extra column or lookup is needed.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(_ALPHABET)}


@lru_cache(maxsize=8192)
def _b58(n: int) -> str:  # pure; the same few ids recur in every token and page
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_ALPHABET[r])
    return "".join(reversed(out)) or "1"


def encode(prefix: str, value: uuid.UUID) -> str:
    return f"{prefix}_{_b58(value.int)}"


def decode(prefix: str, public_id: str) -> uuid.UUID | None:
    """The UUID behind a public id of the given kind, or None when it is not one."""
    head, sep, body = public_id.partition("_")
    if sep != "_" or head != prefix or not body or len(body) > 23:
        return None
    n = 0
    for ch in body:
        i = _INDEX.get(ch)
        if i is None:
            return None
        n = n * 58 + i
    if n >= 1 << 128:
        return None
    return uuid.UUID(int=n)
