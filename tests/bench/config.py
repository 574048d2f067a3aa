"""Run parameters: the full benchmark and the `--quick` smoke run."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class BenchConfig:
    quick: bool
    admin_url: str
    db_name: str
    # data set
    agencies: int
    clients_per_agency: int
    users_per_agency: int  # 1 owner, `staff_per_agency` staff, the rest client users
    staff_per_agency: int
    audit_events_per_agency: int
    assigned_share: float  # share of clients with one assigned staff member
    large_agency_clients: int  # one extra, large tenant: how list queries scale
    # throughput
    workers: int
    wrk_threads: int
    connections: int
    warmup_seconds: int
    duration_seconds: int
    rounds: int
    request_pairs: int  # distinct (agency, client) requests the load generator picks from
    # RLS latency
    rls_iterations: int
    # token endpoint (tests/bench/tokens.py)
    tokens_connections: int  # concurrent keep-alive connections of its load generator
    tokens_requests: int  # per grant and round: codes exchanged, refresh tokens rotated
    tokens_rounds: int
    tokens_warmup: int  # per grant, before the first round (not measured)
    tokens_sign_iterations: int  # per round: in-process signing baseline
    tokens_validations: int  # per variant: in-process ID-token validation
    output: Path

    @property
    def target_url(self) -> str:
        from sqlalchemy.engine import make_url

        return (
            make_url(self.admin_url)
            .set(database=self.db_name)
            .render_as_string(hide_password=False)
        )


def make_config(
    *,
    quick: bool,
    workers: int | None = None,
    connections: int | None = None,
    wrk_threads: int | None = None,
    duration: int | None = None,
    rounds: int | None = None,
    output: Path | None = None,
) -> BenchConfig:
    cores = os.cpu_count() or 1
    cfg = BenchConfig(
        quick=quick,
        admin_url=os.environ.get("SWITCHBOARD_BENCH_PG_URL", DEFAULT_ADMIN_URL),
        db_name=os.environ.get("SWITCHBOARD_BENCH_DB", "switchboard_bench"),
        agencies=50 if quick else 1000,
        clients_per_agency=100,
        users_per_agency=10,
        staff_per_agency=4,
        audit_events_per_agency=40 if quick else 200,
        assigned_share=0.5,
        large_agency_clients=2_000 if quick else 10_000,
        workers=cores,
        wrk_threads=1,
        connections=32,
        warmup_seconds=3 if quick else 10,
        duration_seconds=5 if quick else 20,
        rounds=1 if quick else 3,
        request_pairs=2_000 if quick else 20_000,
        rls_iterations=300 if quick else 3_000,
        tokens_connections=16,
        tokens_requests=300 if quick else 700,
        tokens_rounds=1 if quick else 3,
        tokens_warmup=100 if quick else 150,
        tokens_sign_iterations=300 if quick else 500,
        tokens_validations=2_000 if quick else 10_000,
        output=ROOT / ("var/bench/benchmarks-quick.md" if quick else "docs/benchmarks.md"),
    )
    overrides: dict[str, object] = {
        k: v
        for k, v in {
            "workers": workers,
            "connections": connections,
            "wrk_threads": wrk_threads,
            "duration_seconds": duration,
            "rounds": rounds,
            "output": output,
        }.items()
        if v is not None
    }
    return replace(cfg, **overrides)  # type: ignore[arg-type]
