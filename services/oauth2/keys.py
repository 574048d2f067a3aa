"""Per-agency signing keys: generation, encryption at rest, the JWKS, rotation.

* Keys are tenant rows: an agency's tokens verify only against that agency's keys.
* The private key (PEM) is encrypted with AES-256-GCM under a key derived from the
  installation's `SWITCHBOARD_SECRET_KEY` with HKDF-SHA256; the agency id and `kid` are the
  associated data, so a ciphertext moved to another row or agency does not decrypt.
* Rotation makes a new key active and retires the old one; a retired key stays in the JWKS
  until every token it signed has expired (`publish_until`), then disappears from it.
* An agency gets its first RS256 key on first use (discovery, JWKS or a token).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy.orm import Session

from services.identity.keycache import principal_cache
from services.kit.cache import FollowerCache
from services.kit.crypto import new_token, seal, unseal
from services.kit.types import utcnow
from services.oauth2 import repository as repo
from services.oauth2.models import KeyStatus, SigningKey
from services.settings import get_settings

SUPPORTED_ALGS = ("RS256", "ES256")
DEFAULT_ALG = "RS256"
RSA_BITS = 2048
# Clock skew allowance on top of the longest token lifetime before a retired key is dropped.
RETENTION_LEEWAY = timedelta(minutes=5)
_PURPOSE = "oauth2/signing-keys"

PrivateKey = RSAKey | ECKey


# ---- encryption at rest -----------------------------------------------------------------------


def _context(agency_id: uuid.UUID, kid: str) -> str:
    return f"{agency_id}|{kid}"


def encrypt_private_key(pem: bytes, agency_id: uuid.UUID, kid: str) -> str:
    return seal(pem, purpose=_PURPOSE, context=_context(agency_id, kid))


def decrypt_private_key(blob: str, agency_id: uuid.UUID, kid: str) -> bytes:
    return unseal(blob, purpose=_PURPOSE, context=_context(agency_id, kid))


@lru_cache(maxsize=512)
def _load_private(blob: str, agency_id: uuid.UUID, kid: str, alg: str) -> PrivateKey:
    pem = decrypt_private_key(blob, agency_id, kid)
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.import_key(pem, parameters=params)  # type: ignore[arg-type]
    return RSAKey.import_key(pem, parameters=params)  # type: ignore[arg-type]


def private_key_of(row: SigningKey) -> PrivateKey:
    return _load_private(row.private_key_encrypted, row.agency_id, row.kid, row.alg)


# ---- lifecycle -------------------------------------------------------------------------------


def _generate(alg: str, kid: str) -> PrivateKey:
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)  # type: ignore[arg-type]
    return RSAKey.generate_key(RSA_BITS, parameters=params, private=True)  # type: ignore[arg-type]


def create_key(s: Session, agency_id: uuid.UUID, alg: str = DEFAULT_ALG) -> SigningKey:
    if alg not in SUPPORTED_ALGS:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    kid = new_token(12)
    key = _generate(alg, kid)
    public: dict[str, Any] = dict(key.as_dict(private=False))
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    row = SigningKey(
        agency_id=agency_id,
        kid=kid,
        alg=alg,
        status=KeyStatus.ACTIVE,
        public_jwk=public,
        private_key_encrypted=encrypt_private_key(key.as_pem(private=True), agency_id, kid),
    )
    s.add(row)
    s.flush()
    return row


def max_token_lifetime() -> timedelta:
    st = get_settings()
    return timedelta(
        seconds=max(st.oauth2_access_token_ttl_seconds, st.oauth2_id_token_ttl_seconds)
    )


def rotate(s: Session, agency_id: uuid.UUID, alg: str = DEFAULT_ALG) -> SigningKey:
    """A new active key for `alg`; the previous ones retire and stay published until the
    tokens they signed have expired."""
    now = utcnow()
    for old in repo.active_keys(s, alg):
        old.status = KeyStatus.RETIRED
        old.retired_at = now
        old.publish_until = now + max_token_lifetime() + RETENTION_LEEWAY
    s.flush()
    return create_key(s, agency_id, alg)


# The active signing key per (agency, alg), decrypted: a token request signs with it without
# a query. Rotation invalidates it on commit (it follows the API-key cache: services/kit/cache.py,
# services/identity/keycache.py); until every process has followed, tokens signed with the
# retired key still verify (it stays published).
_active: FollowerCache[tuple[uuid.UUID, str], PrivateKey] = FollowerCache(principal_cache)


def signing_key(s: Session, agency_id: uuid.UUID, alg: str = DEFAULT_ALG) -> PrivateKey:
    """The key that signs new tokens (created on first use)."""
    cached = _active.get((agency_id, alg))
    if cached is not None:
        return cached
    generation = _active.generation()
    rows = repo.active_keys(s, alg)
    if not rows:  # a key made in this transaction is cached once it is committed and read
        return private_key_of(create_key(s, agency_id, alg))
    key = private_key_of(rows[0])
    _active.put((agency_id, alg), key, generation)
    return key


def jwks(s: Session, agency_id: uuid.UUID, now: datetime | None = None) -> dict[str, Any]:
    """The agency's public JSON Web Key Set (with at least one RS256 key)."""
    rows = list(repo.published_keys(s, now or utcnow()))
    if not any(r.alg == DEFAULT_ALG and r.status == KeyStatus.ACTIVE for r in rows):
        rows.insert(0, create_key(s, agency_id, DEFAULT_ALG))
    return {"keys": [dict(r.public_jwk) for r in rows]}


def verification_keys(s: Session, now: datetime | None = None) -> KeySet | None:
    """This agency's published public keys, for verifying tokens it issued (None: no keys,
    so nothing verifies)."""
    rows = repo.published_keys(s, now or utcnow())
    if not rows:
        return None
    return KeySet.import_key_set({"keys": [dict(r.public_jwk) for r in rows]})
