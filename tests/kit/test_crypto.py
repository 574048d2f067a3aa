"""`mint_agency_token` / `agency_of_token`: the one routine behind API keys and SCIM tokens."""

from __future__ import annotations

import uuid


def test_a_minted_token_names_its_agency_for_its_own_kind_only():
    from services.kit.crypto import agency_of_token, mint_agency_token, sha256_hex

    agency_id = uuid.uuid4()
    raw, display, digest = mint_agency_token("sbs", agency_id)
    assert raw.startswith("sbs_") and digest == sha256_hex(raw)
    assert display == f"sbs_…{raw[-6:]}"
    assert agency_of_token("sbs", raw) == agency_id
    assert agency_of_token("sbk", raw) is None  # a SCIM token is no API key
    assert agency_of_token("sbs", raw[:-40]) is None  # a truncated secret
    assert agency_of_token("sbs", "sbs_nonsense") is None
    assert mint_agency_token("sbs", agency_id).raw != raw
