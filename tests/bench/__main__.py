"""`python -m tests.bench [--quick]`: see tests/bench/__init__.py."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from tests.bench.config import ROOT, make_config


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 50 agencies x 100 clients, short durations; writes "
        "var/bench/benchmarks-quick.md unless --output is given",
    )
    p.add_argument("--only", choices=("throughput", "rls", "tokens"), help="run one part only")
    p.add_argument("--workers", type=int, help="uvicorn workers per server (default: nproc)")
    p.add_argument("--connections", type=int, help="load-generator connections (default 32)")
    p.add_argument("--threads", type=int, help="wrk threads (default 1)")
    p.add_argument("--duration", type=int, help="seconds per measured round")
    p.add_argument("--rounds", type=int, help="measured rounds per server")
    p.add_argument("--output", type=Path, help="where to write the markdown report")
    p.add_argument("--drop", action="store_true", help="drop the bench database at the end")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    cfg = make_config(
        quick=args.quick,
        workers=args.workers,
        connections=args.connections,
        wrk_threads=args.threads,
        duration=args.duration,
        rounds=args.rounds,
        output=args.output,
    )

    def log(msg: str) -> None:
        print(msg, flush=True)

    started = time.perf_counter()
    phases: dict[str, float] = {}

    log(f"switchboard bench ({'quick' if cfg.quick else 'full'}): database {cfg.db_name}")
    t = time.perf_counter()
    from tests.bench import dataset

    log(
        f"- creating, migrating and loading {cfg.agencies} agencies x "
        f"{cfg.clients_per_agency} clients (+1 agency x {cfg.large_agency_clients})"
    )
    ds = dataset.build(cfg)
    phases["database + data set"] = time.perf_counter() - t
    log(
        f"  rows: {ds.rows}  (generate {ds.generate_seconds:.1f}s, COPY {ds.load_seconds:.1f}s, "
        f"vacuum {ds.vacuum_seconds:.1f}s)"
    )

    # the application modules read their settings now: after migrate() set the URL
    from tests.bench import report, rls, sysinfo, throughput, tokens

    machine = sysinfo.machine(asyncio.run(_pg_version(cfg.target_url)))
    machine["revision"] = sysinfo.git_revision(ROOT)
    versions = sysinfo.package_versions(
        "fastapi",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "sqlalchemy",
        "sqlmodel",
        "asyncpg",
        "pydantic",
        "authlib",
        "joserfc",
        "cryptography",
    )
    tp = None
    if args.only in (None, "throughput"):
        log(
            f"- throughput: app vs bare, {cfg.workers} workers each, {cfg.connections} "
            f"connections, {cfg.rounds} x {cfg.duration_seconds}s"
        )
        t = time.perf_counter()
        tp = throughput.run(cfg, ds.agencies, log)
        phases["throughput"] = time.perf_counter() - t
    results = []
    if args.only in (None, "rls"):
        log(f"- RLS overhead: {cfg.rls_iterations} iterations x 3 variants per query")
        t = time.perf_counter()
        results = asyncio.run(
            rls.run(cfg.target_url, ds.agencies, ds.large, cfg.rls_iterations, log)
        )
        phases["RLS latency"] = time.perf_counter() - t
    tk = None
    if args.only in (None, "tokens"):
        log(
            f"- token endpoint: {cfg.tokens_rounds} x {cfg.tokens_requests} requests per grant, "
            f"{cfg.tokens_connections} connections, {cfg.workers} workers"
        )
        t = time.perf_counter()
        tk = tokens.run(cfg, ds.agencies[0], log)
        phases["token endpoint"] = time.perf_counter() - t
    if args.drop:
        asyncio.run(dataset.drop_database(cfg.admin_url, cfg.db_name))
    phases["total"] = time.perf_counter() - started

    rep = report.Report(cfg, machine, versions, ds, tp, results, phases, tokens=tk)
    log(report.console(rep))
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text(report.markdown(rep, previous=cfg.output), encoding="utf-8")
    log(f"report written to {cfg.output}  (total {phases['total']:.0f}s)")
    failed = (
        rep.throughput_ok is False
        or bool(rep.rls_failures())
        or bool(rep.no_tenant_index())
        or bool(tk is not None and tk.errors())
        or bool(tk is not None and not tk.target_ok())
    )
    return 1 if failed else 0


async def _pg_version(url: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
