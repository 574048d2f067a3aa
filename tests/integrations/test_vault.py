"""The credential vault (integrations/core/vault.py): sealed at rest under a rotatable key,
bound to what they belong to, and never shown in clear by accident."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import secrets

import orjson
import pytest
import structlog

from integrations.core import vault
from integrations.core.vault import Credentials, SealedCredentials, VaultError
from services.settings import Settings, get_settings

ACCESS = "shpat_" + "x" * 32
CONTEXT = "agency-1|connection-1"


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@pytest.fixture
def keys(monkeypatch):
    """Set SWITCHBOARD_VAULT_KEYS for the test (the settings are reloaded)."""

    def use(value: str) -> None:
        monkeypatch.setenv("SWITCHBOARD_VAULT_KEYS", value)
        get_settings.cache_clear()

    yield use
    monkeypatch.delenv("SWITCHBOARD_VAULT_KEYS", raising=False)
    get_settings.cache_clear()


def test_sealed_credentials_open_in_their_context_only():
    creds = Credentials(access_token=ACCESS, scope="read_orders")
    sealed = vault.seal(creds, context=CONTEXT)
    assert isinstance(sealed, SealedCredentials)
    assert sealed.startswith("sbv1.s0.") and ACCESS not in sealed
    assert vault.open_sealed(sealed, context=CONTEXT) == creds
    assert vault.open_sealed(sealed, context=CONTEXT)["access_token"] == ACCESS
    with pytest.raises(VaultError, match="belong elsewhere"):
        vault.open_sealed(sealed, context="agency-2|connection-1")
    # the same credentials sealed twice differ (a fresh nonce each time)
    assert vault.seal(creds, context=CONTEXT) != sealed


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1],
        lambda s: s.replace("sbv1.", "sbv2.", 1),
        lambda s: s.split(".", 2)[0] + "." + s.split(".", 2)[1] + ".",
        lambda s: s[: len("sbv1.s0.") + 10],
        lambda s: "sbv1.s0.***",
        lambda s: "not sealed",
    ],
)
def test_damaged_sealed_credentials_are_refused_without_the_value(damage):
    sealed = vault.seal(Credentials(access_token=ACCESS), context=CONTEXT)
    with pytest.raises(VaultError) as refused:
        vault.open_sealed(damage(sealed), context=CONTEXT)
    assert ACCESS not in str(refused.value)


def test_rotation_opens_old_seals_and_rekeys_them(keys):
    old, new = _key(), _key()
    keys(f"k1:{old}")
    sealed = vault.seal(Credentials(refresh_token="rt-1"), context=CONTEXT)
    assert sealed.kid == "k1" and not vault.needs_rekey(sealed)
    keys(f"k2:{new},k1:{old}")  # the new key first: it seals, both open
    assert vault.open_sealed(sealed, context=CONTEXT)["refresh_token"] == "rt-1"
    assert vault.needs_rekey(sealed)
    moved = vault.rekey(sealed, context=CONTEXT)
    assert moved.kid == "k2" and not vault.needs_rekey(moved)
    assert vault.rekey(moved, context=CONTEXT) == moved  # nothing to do
    keys(f"k2:{new}")  # the old key dropped: what it sealed no longer opens
    assert vault.open_sealed(moved, context=CONTEXT)["refresh_token"] == "rt-1"
    with pytest.raises(VaultError, match="'k1'"):
        vault.open_sealed(sealed, context=CONTEXT)


def test_a_key_cannot_open_what_another_key_of_the_same_kid_sealed(keys):
    keys(f"k1:{_key()}")
    sealed = vault.seal(Credentials(api_key="secret"), context=CONTEXT)
    keys(f"k1:{_key()}")
    with pytest.raises(VaultError):
        vault.open_sealed(sealed, context=CONTEXT)


@pytest.mark.parametrize(
    "value, complaint",
    [
        ("k1", "kid:key"),
        (":" + "A" * 43, "kid:key"),
        ("K 1:" + "A" * 43, "kid:key"),
        ("k1:short", "32 bytes"),
        ("k1:" + "!" * 43, "32 bytes"),
        ("k1:{a},k1:{b}", "appears twice"),
    ],
)
def test_bad_key_settings_are_refused_by_name(value, complaint):
    value = value.format(a=_key(), b=_key())
    with pytest.raises(ValueError, match=complaint) as refused:
        Settings(vault_keys=value)
    secret_part = value.partition(":")[2]
    assert not secret_part or secret_part not in str(refused.value)  # never the key itself


def test_plaintext_never_shows_by_accident(capfd):
    creds = Credentials(access_token=ACCESS, consumer_secret="cs_" + "y" * 40)
    for shown in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert ACCESS not in shown and "consumer_secret" in shown
    with pytest.raises(TypeError):
        json.dumps(creds)
    with pytest.raises(TypeError):
        orjson.dumps(creds)
    with pytest.raises(TypeError):
        pickle.dumps(creds)
    with pytest.raises(TypeError):
        dict(creds)  # not a mapping: nothing turns it into one by itself
    with pytest.raises(AttributeError):
        creds.extra = "x"  # type: ignore[attr-defined]
    structlog.get_logger("test").info("connector.debug", creds=creds)
    logging.getLogger("test").warning("creds %s", creds)
    out = capfd.readouterr()
    assert ACCESS not in out.err + out.out
    sealed = vault.seal(creds, context=CONTEXT)
    assert repr(sealed) == "SealedCredentials(kid='s0')"


def test_replace_returns_new_credentials():
    creds = Credentials(access_token="a1", refresh_token="r1")
    fresh = creds.replace(access_token="a2", refresh_token=None, expires_at="2027-01-01T00:00:00Z")
    assert fresh.names() == ["access_token", "expires_at"]
    assert fresh["access_token"] == "a2" and creds["access_token"] == "a1"
    with pytest.raises(TypeError):
        Credentials(token=123)  # type: ignore[arg-type]
