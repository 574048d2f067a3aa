"""The team: the agency's people and their roles, inviting someone, revoking an invitation.
Which roles the form offers is the identity domain's rule (`portal.grantable_roles` asks
`services.identity.access`); the invitation itself is checked again by the identity service."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.identity import service as identity
from services.identity.schemas import InvitationCreate
from services.kit import ids
from services.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from services.kit.schemas import path_id
from services.kit.web import DBSession
from services.portal import forms, security
from services.portal import service as portal
from services.portal.auth import CsrfChecked, PortalAgency, UsersInvite, UsersRead
from services.portal.rendering import page
from services.portal.routing import FormRejected, PortalRoute
from tenants.principal import Principal
from tenants.roles import CLIENT_ROLES, Role

router = APIRouter(prefix="/a/{slug}", route_class=PortalRoute, include_in_schema=False)


async def _team_page(
    request: Request,
    principal: Principal,
    session: DBSession,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    roles = portal.grantable_roles(principal)
    clients = await portal.client_choices(session) if any(r in CLIENT_ROLES for r in roles) else []
    return page(
        request,
        "team.html",
        {
            "nav": "team",
            "team": await portal.team(session, principal),
            "roles": roles,
            "client_roles": [r.value for r in roles if r in CLIENT_ROLES],
            "clients": clients,
            "values": values or {"email": "", "name": "", "role": "", "client_id": ""},
            "errors": errors or {},
        },
        status=status,
    )


@router.get("/team", name="portal_team")
async def team(request: Request, principal: UsersRead, session: DBSession) -> Response:
    return await _team_page(request, principal, session)


@router.post("/team/invitations", name="portal_invite", dependencies=[CsrfChecked])
async def invite(
    request: Request, agency: PortalAgency, principal: UsersInvite, session: DBSession
) -> Response:
    form = await request.form()
    values = {k: forms._text(form, k) for k in ("email", "name", "role", "client_id")}
    errors: dict[str, str] = {}
    try:
        role = Role(values["role"])
    except ValueError:
        role = None
        errors["role"] = "Choose a role."
    client_uuid = None
    if role in CLIENT_ROLES:
        client_uuid = ids.decode("cli", values["client_id"]) if values["client_id"] else None
        if client_uuid is None:
            errors["client_id"] = "Choose the client this person will work with."
    try:
        data = forms.validate(
            InvitationCreate,
            {
                "email": values["email"],
                "name": values["name"],
                "role": values["role"] or None,
            },
        )
    except forms.FormErrors as exc:
        errors = {**exc.errors, **errors}
    if not errors and role is not None:
        try:
            await identity.invite(
                session,
                principal,
                email=str(data.email),
                name=data.name,
                role=role,
                client_id=client_uuid,
            )
        except (ValidationFailed, Conflict) as exc:
            errors = forms.error_of(exc, "email")
        except Forbidden as exc:
            errors = forms.error_of(exc, "role")
        except NotFound:
            errors = {"client_id": "Choose the client this person will work with."}
        else:
            return security.see_other(f"/a/{agency.slug}/team", agency.slug, "invited")
    raise FormRejected(
        await _team_page(request, principal, session, values=values, errors=errors, status=422)
    )


@router.post(
    "/team/invitations/{invitation_id}/revoke",
    name="portal_invitation_revoke",
    dependencies=[CsrfChecked],
)
async def revoke_invitation(
    agency: PortalAgency, invitation_id: str, principal: UsersInvite, session: DBSession
) -> Response:
    await identity.revoke_invitation(
        session, principal, path_id("inv", invitation_id, "invitation")
    )
    return security.see_other(f"/a/{agency.slug}/team", agency.slug, "invitation_revoked")
