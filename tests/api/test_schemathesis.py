"""Property-based fuzzing of the whole published API with schemathesis, on the test database
(SQLite, or PostgreSQL with SWITCHBOARD_TEST_PG_URL).

Two phases, both against the app in process and as authenticated principals (the operator key
for `/api/v1/agencies`, a fresh agency owner's API key for everything else):

- every operation with schema-valid (positive) and schema-invalid (negative) requests;
- the stateful phase: sequences that follow the OpenAPI links from each create operation to
  the routes that take its id (services.kit.openapi), so the routes behind an id are reached
  with ids that exist.

Each response must not be a 5xx, must have a documented status code and content type, and
must match its documented schema. Hypothesis is derandomized: the same seed gives the same
run; SWITCHBOARD_FUZZ_SEED changes the seed, SWITCHBOARD_FUZZ_EXAMPLES / _STEPS the size.
Skipped in the Celery worker CI run (the PostgreSQL run has already fuzzed the same code)
unless SWITCHBOARD_TEST_FUZZ=1.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import BROKER_URL

# Modules schemathesis imports lazily while a run is under way, imported here in the main
# thread: imported from Hypothesis' thread, pytest's assertion rewriting of them can trip
# CPython 3.11's "AST constructor recursion depth mismatch".
for _lazy in (
    "schemathesis.engine.errors",
    "schemathesis.generation.body_overrides",
    "schemathesis.generation.dictionaries",
    "schemathesis.transport.asgi",
    "schemathesis.transport.wsgi",
):
    importlib.import_module(_lazy)

SEED = int(os.environ.get("SWITCHBOARD_FUZZ_SEED", "7"))
EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "8"))
STEPS = int(os.environ.get("SWITCHBOARD_FUZZ_STEPS", "8"))
SCENARIOS = int(os.environ.get("SWITCHBOARD_FUZZ_SCENARIOS", "30"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BASE = "http://testserver"

pytestmark = [
    pytest.mark.skipif(
        bool(BROKER_URL) and os.environ.get("SWITCHBOARD_TEST_FUZZ") != "1",
        reason="fuzzed in the SQLite and PostgreSQL runs; SWITCHBOARD_TEST_FUZZ=1 to run here",
    ),
    # schemathesis draws some values with `random`; Hypothesis seeds it for every example
    pytest.mark.filterwarnings("ignore:Do not use the `random` module"),
]


def _settings(**kw: Any) -> settings:
    return settings(
        deadline=None,
        derandomize=False,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
        **kw,
    )


class Bridge:
    """Sends schemathesis' requests through the test's httpx client on the test's event loop
    (the app's engines and caches belong to that loop), from the thread Hypothesis runs in."""

    def __init__(self, client: httpx.AsyncClient, agency_headers: dict, operator_headers: dict):
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.agency_headers = agency_headers
        self.operator_headers = operator_headers
        self.calls = 0
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)

    def headers_for(self, case: schemathesis.Case) -> dict[str, str]:
        operator = case.path.startswith("/api/v1/agencies")
        return self.operator_headers if operator else self.agency_headers

    def send(self, case: schemathesis.Case) -> schemathesis.Response:
        kw = case.as_transport_kwargs(base_url=BASE)
        headers = {
            k: v for k, v in (kw.get("headers") or {}).items() if k.lower() != "authorization"
        }
        request: dict[str, Any] = {
            "method": kw["method"],
            "url": kw["url"],
            "headers": {**headers, **self.headers_for(case)},  # the principal, not a made-up token
            "params": kw.get("params"),
        }
        if kw.get("cookies"):
            request["headers"] = {
                **(request["headers"] or {}),
                "cookie": "; ".join(f"{k}={v}" for k, v in kw["cookies"].items()),
            }
        if "json" in kw:
            request["json"] = kw["json"]
        elif kw.get("data") is not None:
            data = kw["data"]
            request["content" if isinstance(data, bytes | str) else "data"] = data
        future = asyncio.run_coroutine_threadsafe(self.client.request(**request), self.loop)
        response = future.result(timeout=60)
        self.calls += 1
        self.statuses[case.operation.label][response.status_code] += 1
        return schemathesis.Response.from_httpx(response, verify=False)

    def reached(self) -> set[str]:
        """The operations that answered a 2xx at least once."""
        return {op for op, seen in self.statuses.items() if any(200 <= s < 300 for s in seen)}

    def report(self) -> str:
        return "\n".join(f"{op}: {dict(seen)}" for op, seen in sorted(self.statuses.items()))

    def check(self, case: schemathesis.Case) -> None:
        case.validate_response(self.send(case), checks=CHECKS)


@pytest.fixture
async def bridge(client, make_agency, make_client, operator_headers):
    agency = await make_agency()
    await make_client(agency)  # something to list, page and find
    return Bridge(client, agency.headers, operator_headers)


@pytest.fixture
def api_schema(app):
    # Only the links the API publishes: the stateful phase is there to prove they work.
    config = schemathesis.Config.from_dict(
        {"phases": {"stateful": {"inference": {"algorithms": []}}}}
    )
    return schemathesis.openapi.from_dict(app.openapi(), config=config)


def _operations(schema) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_links_every_create_to_the_routes_behind_its_id(api_schema):
    links = {
        op.label: {
            name: link["parameters"]
            for name, link in op.definition.raw["responses"].get("201", {}).get("links", {}).items()
        }
        for op in _operations(api_schema)
        if op.method.upper() == "POST"
    }
    assert {"clients_get", "clients_update", "clients_change_lifecycle"} <= set(
        links["POST /api/v1/clients"]
    )
    assert links["POST /api/v1/agencies"]["agencies_update"] == {
        "path.agency_id": "$response.body#/agency/id"
    }
    for op in _operations(api_schema):  # every route behind a created id is reachable
        path = op.path
        for create, targets in links.items():
            prefix = create.split(" ", 1)[1] + "/{"
            if path.startswith(prefix):
                assert op.definition.raw["operationId"] in targets, (create, op.label)


async def test_every_operation_answers_within_its_schema(api_schema, bridge):
    operations = _operations(api_schema)
    assert len(operations) >= 40
    for op in operations:  # each operation gets its own examples, both kinds
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @seed(SEED)
            @_settings(max_examples=EXAMPLES)
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                bridge.check(case)

            await asyncio.to_thread(run)
    print(bridge.report())
    assert set(bridge.statuses) == {op.label for op in operations}, bridge.report()


async def test_stateful_sequences_follow_the_links(api_schema, bridge):
    base = api_schema.as_state_machine()

    class Workflow(base):  # type: ignore[misc, valid-type]
        def call(self, case, **kwargs):
            return bridge.send(case)

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)

    seed(SEED)(Workflow)
    options = _settings(max_examples=SCENARIOS, stateful_step_count=STEPS)
    await asyncio.to_thread(Workflow.run, settings=options)
    print(bridge.report())
    # the links carry real ids: routes behind a created id answer 2xx, not only 404
    behind_ids = {
        op.label for op in _operations(api_schema) if "{" in op.path and op.path.count("{") == 1
    }
    reached = bridge.reached() & behind_ids
    assert len(reached) >= 5, bridge.report()
