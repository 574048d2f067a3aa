"""All queries of the OpenID Connect provider.

They are synchronous on purpose: Authlib's server side is synchronous, so the provider runs
on the request's own session through `AsyncSession.run_sync` (same transaction, same tenant
scoping and RLS settings, committed at the edge). Async callers use
`await session.run_sync(repository.fn, ...)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.identity.models import UserSession
from services.kit.errors import TenantScopeMissing
from services.oauth2.models import (
    AuthorizationCode,
    ClientSolution,
    Consent,
    KeyStatus,
    OAuthClient,
    OAuthToken,
    SessionClient,
    SigningKey,
    TokenKind,
)
from tenants.models import Client, Membership, User
from tenants.scoping import current_tenant, prepared

_NO_SYNC = {"synchronize_session": False}

# ---- relying parties ---------------------------------------------------------------------


def client(s: Session, client_id: uuid.UUID) -> OAuthClient | None:
    return s.execute(select(OAuthClient).where(OAuthClient.id == client_id)).scalar_one_or_none()


def clients(s: Session) -> Sequence[OAuthClient]:
    stmt = select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id)
    return s.execute(stmt).scalars().all()


# ---- solutions enabled per client ----------------------------------------------------------


def client_solutions(s: Session, client_id: uuid.UUID) -> Sequence[tuple[OAuthClient, Any]]:
    stmt = (
        select(OAuthClient, ClientSolution.created_at)
        .join(
            ClientSolution,
            (ClientSolution.agency_id == OAuthClient.agency_id)
            & (ClientSolution.oauth_client_id == OAuthClient.id),
        )
        .where(ClientSolution.client_id == client_id, OAuthClient.solution.is_(True))
        .order_by(OAuthClient.name, OAuthClient.id)
    )
    return [(row[0], row[1]) for row in s.execute(stmt).all()]


def client_solution(
    s: Session, client_id: uuid.UUID, oauth_client_id: uuid.UUID
) -> ClientSolution | None:
    stmt = select(ClientSolution).where(
        ClientSolution.client_id == client_id, ClientSolution.oauth_client_id == oauth_client_id
    )
    return s.execute(stmt).scalar_one_or_none()


def solutions(s: Session, client_ids: Sequence[uuid.UUID] | None) -> Sequence[OAuthClient]:
    """The solutions of the agency (client_ids None), or those enabled for any of client_ids."""
    stmt = select(OAuthClient).where(OAuthClient.solution.is_(True))
    if client_ids is not None:
        enabled = select(ClientSolution.oauth_client_id).where(
            ClientSolution.client_id.in_(list(client_ids))
        )
        stmt = stmt.where(OAuthClient.id.in_(enabled))
    return s.execute(stmt.order_by(OAuthClient.name, OAuthClient.id)).scalars().all()


def clients_with_solution(s: Session, oauth_client_id: uuid.UUID) -> set[uuid.UUID]:
    stmt = select(ClientSolution.client_id).where(ClientSolution.oauth_client_id == oauth_client_id)
    return set(s.execute(stmt).scalars().all())


def solution_client_counts(s: Session) -> dict[uuid.UUID, int]:
    stmt = select(ClientSolution.oauth_client_id, func.count()).group_by(
        ClientSolution.oauth_client_id
    )
    return {row[0]: int(row[1]) for row in s.execute(stmt).all()}


def may_use_solution(s: Session, oauth_client_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Agency staff may use every solution; a client's people only those enabled for one of
    their businesses."""
    agency_member = select(Membership.id).where(
        Membership.user_id == user_id, Membership.client_id.is_(None)
    )
    if s.execute(agency_member.limit(1)).first() is not None:
        return True
    enabled = (
        select(ClientSolution.id)
        .join(
            Membership,
            (Membership.agency_id == ClientSolution.agency_id)
            & (Membership.client_id == ClientSolution.client_id),
        )
        .where(Membership.user_id == user_id, ClientSolution.oauth_client_id == oauth_client_id)
    )
    return s.execute(enabled.limit(1)).first() is not None


# ---- signing keys -------------------------------------------------------------------------


def active_keys(s: Session, alg: str) -> Sequence[SigningKey]:
    """Active keys of one algorithm, newest first (the first one signs)."""
    stmt = (
        select(SigningKey)
        .where(SigningKey.status == KeyStatus.ACTIVE, SigningKey.alg == alg)
        .order_by(SigningKey.created_at.desc(), SigningKey.id)
    )
    return s.execute(stmt).scalars().all()


def published_keys(s: Session, now: datetime) -> Sequence[SigningKey]:
    """Keys in the JWKS: every active key, and retired keys whose tokens may still be alive."""
    stmt = (
        select(SigningKey)
        .where(
            or_(
                SigningKey.status == KeyStatus.ACTIVE,
                SigningKey.publish_until.is_(None),
                SigningKey.publish_until > now,
            )
        )
        .order_by(SigningKey.created_at.desc(), SigningKey.id)
    )
    return s.execute(stmt).scalars().all()


def all_keys(s: Session) -> Sequence[SigningKey]:
    stmt = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.id)
    return s.execute(stmt).scalars().all()


# ---- authorization codes -----------------------------------------------------------------


def code_by_hash(s: Session, code_hash: str) -> AuthorizationCode | None:
    stmt = select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
    return s.execute(stmt).scalar_one_or_none()


def nonce_used(s: Session, client_id: uuid.UUID, nonce: str) -> bool:
    stmt = select(AuthorizationCode.id).where(
        AuthorizationCode.client_id == client_id, AuthorizationCode.nonce == nonce
    )
    return s.execute(stmt.limit(1)).first() is not None


# The token endpoint's statements, built once (values bound per call): see
# tenants.scoping.prepared.
_CLAIM_CODE = prepared(
    update(AuthorizationCode)
    .where(
        AuthorizationCode.code_hash == bindparam("p_hash"),
        AuthorizationCode.client_id == bindparam("p_client"),
        AuthorizationCode.used_at.is_(None),
        AuthorizationCode.expires_at > bindparam("p_now"),
    )
    .values(used_at=bindparam("p_now"))
    .returning(AuthorizationCode)
    .execution_options(**_NO_SYNC)
)


def claim_code_by_hash(
    s: Session, code_hash: str, client_id: uuid.UUID, now: datetime
) -> AuthorizationCode | None:
    """The token endpoint's one statement for a good code: mark it used, atomically, if it is
    this client's, unused and unexpired, and return it. None: look it up (`code_by_hash`) to
    tell why (a used code is a replay)."""
    params = {"p_hash": code_hash, "p_client": client_id, "p_now": now}
    return s.execute(_CLAIM_CODE, params).scalar_one_or_none()


def release_claim(
    s: Session, model: type[AuthorizationCode | OAuthToken], row_id: uuid.UUID
) -> None:
    """Undo a claim of this transaction (the request failed after it: a wrong PKCE verifier,
    a scope the grant does not cover), so that the code or token still works. PostgreSQL
    holds the row's lock until the commit, so nobody else saw or took the claim meanwhile."""
    stmt = (
        update(model)
        .where(model.id == row_id)  # type: ignore[arg-type]
        .values(used_at=None)
        .execution_options(**_NO_SYNC)
    )
    s.execute(stmt)


def claim_code(s: Session, code_id: uuid.UUID, now: datetime) -> bool:
    """Mark a code used, atomically: False when someone else used it first."""
    stmt = (
        update(AuthorizationCode)
        .where(AuthorizationCode.id == code_id, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(**_NO_SYNC)
    )
    return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]


# ---- tokens ---------------------------------------------------------------------------------


def token_by_hash(s: Session, token_hash: str, kind: TokenKind | None = None) -> OAuthToken | None:
    stmt = select(OAuthToken).where(OAuthToken.token_hash == token_hash)
    if kind is not None:
        stmt = stmt.where(OAuthToken.kind == kind)
    return s.execute(stmt).scalar_one_or_none()


_INSERT_TOKENS = insert(OAuthToken.__table__)  # type: ignore[attr-defined]


def insert_tokens(s: Session, rows: list[dict[str, Any]]) -> None:
    """New tokens of a grant, in one INSERT and without building ORM objects (the hot path:
    every code exchange and refresh). Written in the session's tenant only: the tenant guard
    of a flush does not see a bulk insert, so it is checked here (and on PostgreSQL the RLS
    policy checks it again); tokens are not audited (`OAuthToken.__audited__`)."""
    ctx = current_tenant(s)
    if ctx is None or ctx.is_unscoped or any(r["agency_id"] != ctx.agency_id for r in rows):
        raise TenantScopeMissing("tokens written outside the session's tenant")
    s.execute(_INSERT_TOKENS, rows)  # a Core INSERT: the kernel's write guard checks it too


_CLAIM_REFRESH = prepared(
    update(OAuthToken)
    .where(
        OAuthToken.token_hash == bindparam("p_hash"),
        OAuthToken.kind == TokenKind.REFRESH,
        OAuthToken.client_id == bindparam("p_client"),
        OAuthToken.used_at.is_(None),
        OAuthToken.revoked_at.is_(None),
        OAuthToken.expires_at > bindparam("p_now"),
    )
    .values(used_at=bindparam("p_now"))
    .returning(OAuthToken)
    .execution_options(**_NO_SYNC)
)


def claim_refresh_by_hash(
    s: Session, token_hash: str, client_id: uuid.UUID, now: datetime
) -> OAuthToken | None:
    """The token endpoint's one statement for a good refresh token: mark it rotated,
    atomically, if it is this client's, unused, unrevoked and unexpired, and return it. None:
    look it up (`token_by_hash`) to tell why (a rotated token is a replay)."""
    params = {"p_hash": token_hash, "p_client": client_id, "p_now": now}
    return s.execute(_CLAIM_REFRESH, params).scalar_one_or_none()


def claim_refresh(s: Session, token_id: uuid.UUID, now: datetime) -> bool:
    """Mark a refresh token rotated, atomically: False when it was rotated already."""
    stmt = (
        update(OAuthToken)
        .where(OAuthToken.id == token_id, OAuthToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(**_NO_SYNC)
    )
    return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]


def _revoke_where(s: Session, condition: object, now: datetime) -> int:
    s.flush()  # tokens added in this unit of work are revoked too
    stmt = (
        update(OAuthToken)
        .where(condition, OAuthToken.revoked_at.is_(None))  # type: ignore[arg-type]
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")  # rows in this session see it too
    )
    return int(s.execute(stmt).rowcount)  # type: ignore[attr-defined]


def revoke_family(s: Session, family_id: uuid.UUID, now: datetime) -> int:
    return _revoke_where(s, OAuthToken.family_id == family_id, now)


def revoke_token(s: Session, token_id: uuid.UUID, now: datetime) -> int:
    return _revoke_where(s, OAuthToken.id == token_id, now)


def revoke_code_tokens(s: Session, code_id: uuid.UUID, now: datetime) -> int:
    return _revoke_where(s, OAuthToken.code_id == code_id, now)


def revoke_session_tokens(s: Session, session_id: uuid.UUID, now: datetime) -> int:
    return _revoke_where(s, OAuthToken.session_id == session_id, now)


def live_session_tokens(s: Session, session_ids: Sequence[uuid.UUID]) -> Sequence[OAuthToken]:
    stmt = select(OAuthToken).where(
        OAuthToken.session_id.in_(session_ids),  # type: ignore[union-attr]
        OAuthToken.revoked_at.is_(None),  # type: ignore[union-attr]
    )
    return s.execute(stmt).scalars().all()


def revoke_tokens(s: Session, token_ids: Sequence[uuid.UUID], now: datetime) -> int:
    if not token_ids:
        return 0
    return _revoke_where(s, OAuthToken.id.in_(token_ids), now)  # type: ignore[attr-defined]


# ---- the relying parties a browser session signed in to (back-channel logout) ------------


def remember_session_client(
    s: Session,
    agency_id: uuid.UUID,
    session_id: uuid.UUID,
    client_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    stmt = select(SessionClient.id).where(
        SessionClient.session_id == session_id, SessionClient.client_id == client_id
    )
    if s.execute(stmt).first() is not None:
        return
    try:
        with s.begin_nested():  # two sign-ins of one session at once: the second loses
            s.add(
                SessionClient(
                    agency_id=agency_id, session_id=session_id, client_id=client_id, user_id=user_id
                )
            )
    except IntegrityError:
        pass  # the same row, recorded by the other one


def logout_targets(
    s: Session, session_ids: Sequence[uuid.UUID]
) -> Sequence[tuple[SessionClient, OAuthClient]]:
    """The relying parties with a back-channel logout URI that these sessions signed in to."""
    stmt = (
        select(SessionClient, OAuthClient)
        .join(OAuthClient, OAuthClient.id == SessionClient.client_id)
        .where(
            SessionClient.session_id.in_(session_ids),  # type: ignore[attr-defined]
            OAuthClient.backchannel_logout_uri.is_not(None),  # type: ignore[union-attr]
        )
        .order_by(SessionClient.created_at)
    )
    return [(sc, c) for sc, c in s.execute(stmt).all()]


# ---- consent ------------------------------------------------------------------------------


def consent(s: Session, user_id: uuid.UUID, client_id: uuid.UUID) -> Consent | None:
    stmt = select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
    return s.execute(stmt).scalar_one_or_none()


# ---- people (read-only views of the identity tables, for claims) -----------------------------


def user(s: Session, user_id: uuid.UUID) -> User | None:
    return s.execute(select(User).where(User.id == user_id)).scalar_one_or_none()


_USER_WITH_MEMBERSHIPS = prepared(
    select(User, Membership, Client.display_name)
    .outerjoin(
        Membership,
        (Membership.agency_id == User.agency_id) & (Membership.user_id == User.id),
    )
    .outerjoin(
        Client,
        (Client.agency_id == Membership.agency_id) & (Client.id == Membership.client_id),
    )
    .where(User.id == bindparam("p_user"))
    .order_by(Membership.created_at, Membership.id)
)


def user_with_memberships(
    s: Session, user_id: uuid.UUID
) -> tuple[User | None, list[tuple[Membership, str | None]]]:
    """The person and their roles (each with its client's display name) in one statement: a
    token request checks the person and, for the `switchboard:memberships` scope, lists the
    roles in the ID token."""
    found: User | None = None
    roles: list[tuple[Membership, str | None]] = []
    for person, membership, client_name in s.execute(
        _USER_WITH_MEMBERSHIPS, {"p_user": user_id}
    ).all():
        found = person
        if membership is not None:
            roles.append((membership, client_name))
    return found, roles


def browser_session(s: Session, session_id: uuid.UUID) -> UserSession | None:
    stmt = select(UserSession).where(UserSession.id == session_id)
    return s.execute(stmt).scalar_one_or_none()
