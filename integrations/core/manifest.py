"""What a connector declares about its vendor, checked when the connector is imported (so a
bad manifest stops the process at start-up, naming the field).

A manifest says how a connection authenticates (`auth`, `scopes`), which streams it reads
and by which cursor, which webhook topics it takes and what each one means, how the vendor
limits request rates, and where the vendor lives (`base_urls`: the real vendor's address
by default, each overridable by a setting so that the demo and the tests point it at the
sandbox).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

SLUG = r"^[a-z][a-z0-9_]{1,39}$"
Slug = Annotated[str, Field(pattern=SLUG)]


class AuthKind(StrEnum):
    OAUTH2 = "oauth2"  # authorization-code grant; tokens refreshed ahead of expiry
    KEY_PAIR = "key_pair"  # a key and a secret the client pastes or the vendor hands over
    API_KEY = "api_key"  # one key


class RateLimitModel(StrEnum):
    LEAKY_BUCKET = "leaky_bucket"  # requests drain from a bucket at a fixed rate
    COST_BUDGET = "cost_budget"  # each request costs points from a refilling budget
    CONCURRENCY = "concurrency"  # at most N requests in flight
    NONE = "none"  # the vendor publishes no limit (the host may still answer 429/503)


class WebhookEffect(StrEnum):
    UPSERT = "upsert"  # the body carries the current record of `stream`
    DELETE = "delete"  # the record named by the body is gone
    DISCONNECT = "disconnect"  # the merchant removed our access
    DATA_REQUEST = "data_request"  # privacy: export what we hold on a person
    REDACT_CUSTOMER = "redact_customer"  # privacy: erase a person's data
    REDACT_SHOP = "redact_shop"  # privacy: purge everything of the store


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stream(_Strict):
    name: Slug
    cursor_field: str = Field(min_length=1, max_length=60)  # the field sync resumes after
    primary_key: str = Field(default="id", min_length=1, max_length=60)
    max_page_size: int = Field(ge=1, le=10_000)


class WebhookTopic(_Strict):
    topic: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_./-]+$")
    effect: WebhookEffect
    stream: Slug | None = None  # the stream an upsert or delete applies to

    @model_validator(mode="after")
    def _stream_when_needed(self) -> WebhookTopic:
        needs = self.effect in (WebhookEffect.UPSERT, WebhookEffect.DELETE)
        if needs != (self.stream is not None):
            raise ValueError(
                f"webhook {self.topic!r}: upsert and delete topics name their stream, others none"
            )
        return self


class RateLimit(_Strict):
    model: RateLimitModel
    # leaky bucket: capacity in requests, refill per second; cost budget: points and points/s
    capacity: float | None = Field(default=None, gt=0)
    refill_per_second: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    max_cost_per_request: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _parameters_of_the_model(self) -> RateLimit:
        bucket = self.model in (RateLimitModel.LEAKY_BUCKET, RateLimitModel.COST_BUDGET)
        if bucket and (self.capacity is None or self.refill_per_second is None):
            raise ValueError(f"a {self.model.value} limit needs capacity and refill_per_second")
        if self.model is RateLimitModel.CONCURRENCY and self.max_concurrency is None:
            raise ValueError("a concurrency limit needs max_concurrency")
        return self


class Manifest(_Strict):
    vendor: Slug
    display_name: str = Field(min_length=1, max_length=60)
    auth: AuthKind
    scopes: tuple[str, ...] = ()
    streams: tuple[Stream, ...] = Field(min_length=1)
    webhooks: tuple[WebhookTopic, ...] = ()
    rate_limit: RateLimit
    # name -> the real vendor's address, `{shop}`-style placeholders allowed (Shopify's is
    # per shop); the setting `<vendor>_<name>_url` overrides it. Empty for a vendor whose
    # address each client supplies (a WooCommerce store): then `tenant_supplied_address`.
    base_urls: dict[str, str] = Field(default_factory=dict)
    tenant_supplied_address: bool = False
    write_back: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise ValueError("stream names must be unique")
        topics = [w.topic for w in self.webhooks]
        if len(set(topics)) != len(topics):
            raise ValueError("webhook topics must be unique")
        for hook in self.webhooks:
            if hook.stream is not None and hook.stream not in names:
                raise ValueError(f"webhook {hook.topic!r} names an unknown stream {hook.stream!r}")
        if self.auth is AuthKind.OAUTH2 and not self.scopes:
            raise ValueError("an oauth2 connector declares the scopes it asks for")
        if not self.base_urls and not self.tenant_supplied_address:
            raise ValueError("a connector names its vendor's base address(es)")
        for name, url in self.base_urls.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,29}", name):
                raise ValueError(f"base address name {name!r}: lowercase letters, digits, '_'")
            HttpUrl(re.sub(r"\{[a-z_]+\}", "x", url))  # raises: not an http(s) URL
        return self

    def stream(self, name: str) -> Stream:
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"{self.vendor} has no stream {name!r}")

    def topic(self, name: str) -> WebhookTopic | None:
        return next((w for w in self.webhooks if w.topic == name), None)

    def setting_name(self, base: str) -> str:
        """The environment variable that points `base` elsewhere (a sandbox)."""
        return f"SWITCHBOARD_{self.vendor.upper()}_{base.upper()}_URL"
