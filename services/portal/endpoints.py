"""The server-rendered portal: the agency console and the client portal, under /a/{slug}/.

The pages live in `services.portal.pages`, one module (and one router) per page group.
`PAGE_ROUTERS` is the one list of them: `router` includes them all, `mount_portal` puts it
(and the static files) on the app, and the portal's isolation suite reads the routes it
checks from the same list, so a new page group is added here and nowhere else.

HTTP only: every handler reads the form, calls a service and renders a template. Access is
declared with the permission aliases of `services.portal.auth`; every form is CSRF-checked;
errors become branded pages (see `services.portal.routing`).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from services.portal.pages import (
    account,
    apps_admin,
    clients,
    invitations,
    oidc,
    passkeys,
    password,
    settings,
    signin,
    solutions,
    team,
    two_step,
    upstream,
    view_as,
)
from services.portal.routing import install_not_found_page
from services.settings import get_settings

PAGE_ROUTERS: tuple[APIRouter, ...] = (
    signin.router,  # entry, sign-in, sign-out
    two_step.router,  # the code prompt of two-step sign-in
    account.router,  # the person's own account: authenticator app, recovery codes, sessions
    clients.router,  # client records
    view_as.router,  # "View as a client user"
    team.router,  # people, invitations sent
    invitations.router,  # accepting an invitation
    password.router,  # forgot / reset password
    settings.router,  # branding, e-mail outbox
    solutions.router,  # the client portal's solutions, "Open"
    oidc.router,  # the OpenID provider's pages: authorize (and resume), consent, logout
    apps_admin.router,  # registered apps and solutions (relying parties)
    passkeys.router,  # passkeys: account, second factor, password-less
    upstream.router,  # sign-in with Google / Microsoft, and its settings
)

router = APIRouter()
for _page_router in PAGE_ROUTERS:
    router.include_router(_page_router)


def mount_portal(app: FastAPI) -> None:
    app.mount(
        "/static",
        StaticFiles(directory=get_settings().static_dir, check_dir=False),
        name="static",
    )
    app.include_router(router)
    install_not_found_page(app)
