"""Health, readiness, metrics, request ids and structured logs."""

from __future__ import annotations

import json


async def test_health_ready_metrics(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    await client.get("/api/v1/clients")
    metrics = await client.get("/metrics")
    assert "switchboard_http_requests_total" in metrics.text
    assert 'route="/api/v1/clients"' in metrics.text


async def test_openapi_has_stable_operation_ids(client):
    spec = (await client.get("/openapi.json")).json()
    op_ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert "clients_get" in op_ids and "api_keys_create" in op_ids
    assert len(op_ids) == len(set(op_ids))


async def test_request_id_and_json_logs_without_secrets(client, make_agency, capfd):
    agency = await make_agency()
    capfd.readouterr()
    resp = await client.get(
        "/api/v1/clients", headers={**agency.headers, "X-Request-ID": "req-abc"}
    )
    assert resp.headers["x-request-id"] == "req-abc"
    bad = await client.post("/api/v1/api-keys", headers=agency.headers, json={"name": "n"})
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [
        x for x in lines if x.get("event") == "http.request" and x.get("request_id") == "req-abc"
    ]
    assert access and access[0]["agency_id"] == str(agency.id)
    assert access[0]["route"] == "/api/v1/clients" and access[0]["status"] == 200
    assert agency.api_key not in err and bad.json()["key"] not in err


async def test_single_use_link_tokens_never_reach_the_logs(client, make_agency, capfd):
    agency = await make_agency()
    capfd.readouterr()
    token = "tok3nS3cretValue1234567890"
    await client.get(f"/a/{agency.slug}/invite/{token}")
    err = capfd.readouterr().err
    assert "/invite/[redacted]" in err
    assert token not in err
