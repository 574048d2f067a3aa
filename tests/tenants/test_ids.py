"""Opaque public ids."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.kit import ids


@given(st.uuids())
def test_round_trip(value: uuid.UUID):
    public = ids.encode("cli", value)
    assert public.startswith("cli_")
    assert ids.decode("cli", public) == value
    assert ids.decode("usr", public) is None


@given(st.text(max_size=40))
def test_decode_never_raises(text: str):
    result = ids.decode("cli", text)
    assert result is None or isinstance(result, uuid.UUID)
