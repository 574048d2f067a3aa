"""Fallback load generator, used only when `wrk` is unavailable.

`python -m tests.bench.loadgen URL REQUESTS_FILE --connections N --duration S` keeps N
HTTP/1.1 keep-alive connections busy for S seconds, each request a random line of the
requests file (`<path>\t<authorization>`), and prints the same `BENCH_JSON {...}` line as the
wrk script. One process, one event loop: it saturates far earlier than wrk does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from urllib.parse import urlsplit


def _load(path: str, host: str) -> list[bytes]:
    out: list[bytes] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            target, _, auth = line.rstrip("\n").partition("\t")
            if target:
                head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}"
                out.append(f"{head}\r\n\r\n".encode())
    return out


async def _worker(
    host: str,
    port: int,
    reqs: list[bytes],
    deadline: float,
    latencies: list[float],
    errors: dict[str, int],
    nbytes: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random()
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            writer.write(rng.choice(reqs))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            nbytes[0] += len(head) + len(body)
            if status >= 400:
                errors["status"] += 1
    except (OSError, asyncio.IncompleteReadError):
        errors["read"] += 1
    finally:
        writer.close()


async def run(url: str, requests_file: str, connections: int, duration: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reqs = _load(requests_file, f"{host}:{port}")
    latencies: list[float] = []
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    nbytes = [0]
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(
            _worker(host, port, reqs, deadline, latencies, errors, nbytes)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> int:
        return (
            int(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e6)
            if latencies
            else 0
        )

    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "bytes": nbytes[0],
        "errors": errors,
        "latency_us": {
            "mean": sum(latencies) / len(latencies) * 1e6 if latencies else 0.0,
            "p50": pct(0.50),
            "p90": pct(0.90),
            "p99": pct(0.99),
            "max": int(latencies[-1] * 1e6) if latencies else 0,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("requests_file")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.requests_file, args.connections, args.duration))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
