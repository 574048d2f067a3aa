"""The published OpenAPI document, completed from the route table.

FastAPI documents each route's success response and a 422 body of its own shape. This adds
what every operation of the API shares, computed from the routes so a new domain gets it
without writing anything:

- errors: every 4xx is an RFC 9457 problem (`application/problem+json`), 422 included;
- authentication: a bearer token (an API key, the operator key or an OAuth access token);
- links: from each create operation (POST answering 201 with an `id`) to every operation
  whose path continues the create's path with one `{parameter}`, e.g. `POST /clients` to
  `GET /clients/{client_id}` and `POST /clients/{client_id}/lifecycle`, so a client (and
  schemathesis' stateful phase) can follow a new resource through the routes that take it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

PROBLEM_JSON = "application/problem+json"
_PARAM = re.compile(r"^\{([^/{}]+)\}")
_METHODS = ("get", "put", "post", "patch", "delete")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: what went wrong, for people and for programs.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "the input at fault, when there is one"},
        "errors": {
            "type": "array",
            "description": "validation errors, one per field",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
    "additionalProperties": True,
}


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _resolve(schema: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any]:
    while node and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node or {}


def _id_pointer(schema: dict[str, Any], body: dict[str, Any]) -> str | None:
    """Where a created resource's id sits in the create's response body: `#/id`, or one
    level down (`#/agency/id` for the operator's agency onboarding)."""
    props = _resolve(schema, body).get("properties", {})
    if "id" in props:
        return "#/id"
    for name, prop in props.items():
        if "id" in _resolve(schema, prop).get("properties", {}):
            return f"#/{name}/id"
    return None


def add_links(schema: dict[str, Any]) -> None:
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    for create_path, item in paths.items():
        create = item.get("post")
        created = (create or {}).get("responses", {}).get("201")
        if not created:
            continue
        body = created.get("content", {}).get("application/json", {}).get("schema")
        pointer = _id_pointer(schema, body) if body else None
        if pointer is None:
            continue
        links: dict[str, Any] = {}
        for path, other in paths.items():
            rest = path.removeprefix(create_path + "/")
            found = _PARAM.match(rest) if rest != path else None
            if found is None:
                continue
            for method in _METHODS:
                op = other.get(method)
                if op and op.get("operationId"):
                    links[op["operationId"]] = {
                        "operationId": op["operationId"],
                        "parameters": {f"path.{found.group(1)}": f"$response.body{pointer}"},
                    }
        if links:
            created["links"] = links


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an agency API key, the operator key or an OAuth access token",
        }
    }
    schema["security"] = [{"bearer": []}]
    for item in schema.get("paths", {}).values():
        for method in _METHODS:
            op = item.get(method)
            if not op:
                continue
            responses = op.setdefault("responses", {})
            responses["422"] = _problem_response("The request is not valid (names the fields)")
            responses["4XX"] = _problem_response("A problem: 400, 401, 403, 404, 409, 413, 429")
    add_links(schema)
    return schema


def install(app: FastAPI) -> None:
    """Serve the completed document as the app's OpenAPI (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
