"""Benchmarks on PostgreSQL: `make bench` (= `python -m tests.bench`).

One run creates a fresh database, migrates it, bulk-loads a synthetic tenant population,
then measures

* HTTP throughput of `GET /api/v1/clients/{id}` through the real application against a bare
  ASGI endpoint (`tests.bench.bare`) that runs the same primary-key query, and
* the latency cost of row-level security on the hot queries,

and writes the results to docs/benchmarks.md. Not part of `make test` (pytest skips this
directory).
"""
