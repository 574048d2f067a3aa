"""HTML forms ↔ the domain's own input schemas.

The portal validates with the same pydantic models the API uses (ClientCreate, ClientUpdate,
InvitationCreate, Branding); this module only turns form fields into their shapes and their
errors into one message per form field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Query
from pydantic import ValidationError
from starlette.datastructures import FormData

from services.clients.schemas import ClientCreate, ClientUpdate
from services.kit import schemas as kit_schemas
from services.kit.errors import SwitchboardError
from tenants.models import Client

DAYS = (
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
)
CLIENT_TEXT = (
    "legal_name",
    "display_name",
    "email",
    "phone",
    "website",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "timezone",
    "notes",
)
# Which form field shows an error reported for a model field.
_FIELD_OF = {"hours": "hours", "categories": "categories"}

Values = dict[str, Any]
Errors = dict[str, str]

# A short value of the query string (`?next=`, `?q=`): text without NUL, 200 characters at most.
QueryText = Annotated[kit_schemas.Text, Query(max_length=200)]


class FormErrors(Exception):
    def __init__(self, errors: Errors) -> None:
        super().__init__("invalid form")
        self.errors = errors


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _message(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("value is not a valid email address: ")
    msg = msg.replace("String should have at least 1 character", "This field is required")
    msg = msg.replace("URL input should be a valid URL", "Enter a full web address")
    msg = msg.replace("Input should be a valid URL", "Enter a web address")
    msg = msg.replace("String should have at most", "Use at most")
    return (msg[:1].upper() + msg[1:]) if msg else "Not valid"


def errors_of(exc: ValidationError) -> Errors:
    out: Errors = {}
    for err in exc.errors():
        loc = err.get("loc") or ("form",)
        name = _FIELD_OF.get(str(loc[0]), str(loc[0]))
        out.setdefault(name, _message(str(err.get("msg", "not valid"))))
    return out


def error_of(exc: SwitchboardError, default_field: str = "form") -> Errors:
    field = exc.extra.get("field") or default_field
    text = exc.detail.strip()
    return {str(field): (text[:1].upper() + text[1:]) if text else "Not valid"}


# ---- client record ------------------------------------------------------------------------------


def client_values(form: FormData) -> Values:
    """What the person typed, kept as typed (for re-rendering the form)."""
    values: Values = {name: _text(form, name) for name in CLIENT_TEXT}
    values["categories"] = _text(form, "categories")
    for day, _ in DAYS:
        values[f"hours_{day}"] = _text(form, f"hours_{day}")
    values["lifecycle_stage"] = _text(form, "lifecycle_stage")
    values["assigned_staff"] = [v for v in form.getlist("assigned_staff") if isinstance(v, str)]
    return values


def blank_client_values() -> Values:
    values: Values = {name: "" for name in CLIENT_TEXT}
    values.update({f"hours_{day}": "" for day, _ in DAYS})
    values.update(timezone="UTC", categories="", lifecycle_stage="prospect", assigned_staff=[])
    return values


def client_values_of(client: Client, staff: list[str]) -> Values:
    values: Values = {name: (getattr(client, name) or "") for name in CLIENT_TEXT}
    values["categories"] = ", ".join(client.categories or [])
    for day, _ in DAYS:
        values[f"hours_{day}"] = ", ".join((client.hours or {}).get(day, []))
    values["lifecycle_stage"] = str(client.lifecycle_stage)
    values["assigned_staff"] = staff
    return values


def _split(raw: str) -> list[str]:
    return [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]


def _hours(values: Values) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for day, _ in DAYS:
        spans = [s.replace(" ", "").replace("\u2013", "-") for s in _split(values[f"hours_{day}"])]
        if spans:
            out[day] = spans
    return out


def to_client_create(values: Values, *, can_assign: bool) -> ClientCreate:
    data: dict[str, Any] = {k: values[k] for k in CLIENT_TEXT if values[k]}
    data["legal_name"] = values["legal_name"]
    if values["categories"]:
        data["categories"] = _split(values["categories"])
    hours = _hours(values)
    if hours:
        data["hours"] = hours
    if values["lifecycle_stage"]:
        data["lifecycle_stage"] = values["lifecycle_stage"]
    if can_assign and values["assigned_staff"]:
        data["assigned_staff"] = values["assigned_staff"]
    return _validate(ClientCreate, data)


def to_client_update(values: Values, *, can_assign: bool) -> ClientUpdate:
    data: dict[str, Any] = {k: (values[k] or None) for k in CLIENT_TEXT}
    data["legal_name"] = values["legal_name"]
    data["display_name"] = values["display_name"] or values["legal_name"]
    data["timezone"] = values["timezone"] or "UTC"
    data["categories"] = _split(values["categories"])
    data["hours"] = _hours(values)
    if can_assign:
        data["assigned_staff"] = values["assigned_staff"]
    return _validate(ClientUpdate, data)


def _validate(model: Any, data: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise FormErrors(errors_of(exc)) from exc


def validate(model: Any, data: Mapping[str, Any]) -> Any:
    return _validate(model, data)
