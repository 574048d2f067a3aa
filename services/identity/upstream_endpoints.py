"""HTTP for the agency's upstream sign-in providers: `/api/v1/agency/sign-in-providers/{provider}`
(GET, PUT, DELETE; agency:manage). The path names the caller's own agency's provider (`google`
or `microsoft`), never another tenant's object. The client secret goes in and never comes out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import Field

from services.identity import upstream
from services.identity.auth import AgencyManage
from services.identity.models import UpstreamProvider
from services.kit.errors import NotFound
from services.kit.schemas import Output, StrictInput
from services.kit.web import DBSession

router = APIRouter(tags=["agencies"])

ProviderName = Annotated[
    str,
    Path(
        description="`google` or `microsoft` (anything else: 404)",
        examples=["google", "microsoft"],
        max_length=20,
    ),
]


class SignInProviderIn(StrictInput):
    client_id: str = Field(min_length=1, max_length=200)
    client_secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="required the first time; leave out to keep the saved one",
    )
    tenant: str | None = Field(
        default=None,
        max_length=64,
        description="Microsoft only: `common` (default), `organizations` or a directory id",
    )
    enabled: bool = True


class SignInProviderOut(Output):
    provider: str
    client_id: str
    client_secret_set: bool = Field(description="the secret itself is never returned")
    tenant: str | None
    enabled: bool
    redirect_uri: str = Field(description="register exactly this address at the provider")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: UpstreamProvider, slug: str) -> SignInProviderOut:
        return cls(
            provider=row.provider,
            client_id=row.client_id,
            client_secret_set=bool(row.client_secret_sealed),
            tenant=row.tenant,
            enabled=row.enabled,
            redirect_uri=upstream.redirect_uri(slug, row.provider),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@router.get(
    "/agency/sign-in-providers/{provider}",
    response_model=SignInProviderOut,
    name="sign_in_providers_get",
)
async def get_provider(
    provider: ProviderName, principal: AgencyManage, session: DBSession
) -> SignInProviderOut:
    row = await upstream.config(session, provider)
    if row is None:
        raise NotFound("this sign-in provider is not set up")
    return SignInProviderOut.of(row, principal.agency_slug or "")


@router.put(
    "/agency/sign-in-providers/{provider}",
    response_model=SignInProviderOut,
    name="sign_in_providers_put",
)
async def put_provider(
    provider: ProviderName, body: SignInProviderIn, principal: AgencyManage, session: DBSession
) -> SignInProviderOut:
    assert principal.agency_id is not None
    row = await upstream.save_config(
        session,
        principal.agency_id,
        provider,
        client_id=body.client_id,
        client_secret=body.client_secret,
        tenant=body.tenant,
        enabled=body.enabled,
    )
    return SignInProviderOut.of(row, principal.agency_slug or "")


@router.delete(
    "/agency/sign-in-providers/{provider}", status_code=204, name="sign_in_providers_delete"
)
async def delete_provider(
    provider: ProviderName, principal: AgencyManage, session: DBSession
) -> Response:
    await upstream.delete_config(session, provider)
    return Response(status_code=204)
