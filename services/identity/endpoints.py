"""HTTP for people and credentials: users, memberships, invitations, API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.identity import apikeys, invitations, users
from services.identity.auth import require
from services.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    InvitationCreate,
    InvitationCreated,
    InvitationOut,
    MembershipCreate,
    MembershipOut,
    MembershipUpdate,
    UserOut,
    UserPage,
    UserUpdate,
)
from services.kit.schemas import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    body_id,
    decode_keyset,
    paginate,
    path_id,
)
from services.kit.types import utcnow
from services.kit.web import DBSession
from tenants.models import UserStatus
from tenants.principal import Principal
from tenants.roles import Permission

router = APIRouter(tags=["people"])

UsersRead = Annotated[Principal, Depends(require(Permission.USERS_READ))]
UsersInvite = Annotated[Principal, Depends(require(Permission.USERS_INVITE))]
UsersManage = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]
ApiKeysManage = Annotated[Principal, Depends(require(Permission.APIKEYS_MANAGE))]


# ---- users -------------------------------------------------------------------------------


@router.get("/users", response_model=UserPage, name="users_list")
async def list_users(
    principal: UsersRead,
    session: DBSession,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> UserPage:
    rows, nxt = paginate(
        await users.users_page(session, after=decode_keyset(cursor), limit=limit + 1),
        limit,
        lambda u: u.created_at,
    )
    by_user = await users.memberships_by_user(session, rows)
    return UserPage(items=[UserOut.of(u, by_user.get(u.id, [])) for u in rows], next_cursor=nxt)


@router.get("/users/{user_id}", response_model=UserOut, name="users_get")
async def get_user(user_id: str, principal: UsersRead, session: DBSession) -> UserOut:
    return UserOut.of(*await users.user_with_memberships(session, path_id("usr", user_id, "user")))


@router.patch("/users/{user_id}", response_model=UserOut, name="users_update")
async def update_user(
    user_id: str,
    body: UserUpdate,
    principal: UsersManage,
    session: DBSession,
) -> UserOut:
    user = await users.update_user(
        session,
        principal,
        path_id("usr", user_id, "user"),
        name=body.name,
        status=UserStatus(body.status) if body.status is not None else None,
    )
    return UserOut.of(user, await users.memberships_of(session, user.id))


# ---- memberships ---------------------------------------------------------------------------


@router.post(
    "/memberships", status_code=201, response_model=MembershipOut, name="memberships_create"
)
async def create_membership(
    body: MembershipCreate,
    principal: UsersManage,
    session: DBSession,
) -> MembershipOut:
    m = await users.add_membership(
        session,
        principal,
        user_id=body_id("usr", body.user_id, "user_id"),
        role=body.role,
        client_id=body_id("cli", body.client_id, "client_id") if body.client_id else None,
    )
    return MembershipOut.of(m)


@router.patch(
    "/memberships/{membership_id}", response_model=MembershipOut, name="memberships_update"
)
async def update_membership(
    membership_id: str,
    body: MembershipUpdate,
    principal: UsersManage,
    session: DBSession,
) -> MembershipOut:
    mid = path_id("mem", membership_id, "membership")
    return MembershipOut.of(await users.change_membership(session, principal, mid, body.role))


@router.delete("/memberships/{membership_id}", status_code=204, name="memberships_delete")
async def delete_membership(
    membership_id: str,
    principal: UsersManage,
    session: DBSession,
) -> Response:
    await users.remove_membership(session, principal, path_id("mem", membership_id, "membership"))
    return Response(status_code=204)


# ---- invitations ---------------------------------------------------------------------------


@router.post(
    "/invitations", status_code=201, response_model=InvitationCreated, name="invitations_create"
)
async def create_invitation(
    body: InvitationCreate,
    principal: UsersInvite,
    session: DBSession,
) -> InvitationCreated:
    issued = await invitations.invite(
        session,
        principal,
        email=str(body.email),
        name=body.name,
        role=body.role,
        client_id=body_id("cli", body.client_id, "client_id") if body.client_id else None,
    )
    out = InvitationOut.of(issued.invitation, utcnow())
    url = invitations.invitation_url(principal.agency_slug or "", issued.token)
    return InvitationCreated(**out.model_dump(), url=url)


@router.get("/invitations", response_model=list[InvitationOut], name="invitations_list")
async def list_invitations(principal: UsersInvite, session: DBSession) -> list[InvitationOut]:
    now = utcnow()
    return [InvitationOut.of(i, now) for i in await invitations.list_invitations(session)]


@router.get("/invitations/{invitation_id}", response_model=InvitationOut, name="invitations_get")
async def get_invitation(
    invitation_id: str, principal: UsersInvite, session: DBSession
) -> InvitationOut:
    found = path_id("inv", invitation_id, "invitation")
    return InvitationOut.of(await invitations.get_invitation(session, found), utcnow())


@router.delete("/invitations/{invitation_id}", status_code=204, name="invitations_revoke")
async def revoke_invitation(
    invitation_id: str, principal: UsersInvite, session: DBSession
) -> Response:
    invitation = path_id("inv", invitation_id, "invitation")
    await invitations.revoke_invitation(session, principal, invitation)
    return Response(status_code=204)


# ---- API keys -------------------------------------------------------------------------------


@router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, name="api_keys_create")
async def create_api_key(
    body: ApiKeyCreate, principal: ApiKeysManage, session: DBSession
) -> ApiKeyCreated:
    key, raw = await apikeys.create_api_key(
        session,
        principal,
        name=body.name,
        role=body.role,
        client_id=body_id("cli", body.client_id, "client_id") if body.client_id else None,
        expires_at=body.expires_at,
    )
    return ApiKeyCreated(**ApiKeyOut.of(key).model_dump(), key=raw)


@router.get("/api-keys", response_model=list[ApiKeyOut], name="api_keys_list")
async def list_api_keys(principal: ApiKeysManage, session: DBSession) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(k) for k in await apikeys.list_api_keys(session)]


@router.get("/api-keys/{key_id}", response_model=ApiKeyOut, name="api_keys_get")
async def get_api_key(key_id: str, principal: ApiKeysManage, session: DBSession) -> ApiKeyOut:
    return ApiKeyOut.of(await apikeys.get_api_key(session, path_id("key", key_id, "API key")))


@router.delete("/api-keys/{key_id}", status_code=204, name="api_keys_revoke")
async def revoke_api_key(key_id: str, principal: ApiKeysManage, session: DBSession) -> Response:
    await apikeys.revoke_api_key(session, principal, path_id("key", key_id, "API key"))
    return Response(status_code=204)
