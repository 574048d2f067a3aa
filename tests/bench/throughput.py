"""HTTP throughput: the real application against the bare ASGI baseline.

Both run under uvicorn with identical flags and worker counts, side by side (an idle server
costs nothing), and the same load generator (wrk + requests.lua) drives them in alternating
rounds so that drift in the machine's background load hits both alike.
"""

from __future__ import annotations

import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from tests.bench.config import ROOT, BenchConfig
from tests.bench.dataset import AgencyData
from tests.bench.sysinfo import (
    cpu_delta,
    cpu_seconds,
    descendants,
    machine_busy_seconds,
    postgres_pids,
)

HERE = Path(__file__).resolve().parent
LUA = HERE / "requests.lua"
APP_TARGET = "services.app:create_app"
BARE_TARGET = "tests.bench.bare:app"


@dataclass
class Server:
    name: str
    target: str
    port: int
    factory: bool
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class RunResult:
    server: str
    round: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    cpu: dict[str, float]  # cores used on average during the run, per process group


@dataclass
class ThroughputResult:
    tool: str
    tool_version: str
    command: str
    server_command: str
    workers: int
    threads: int
    connections: int
    warmup_seconds: int
    duration_seconds: int
    rounds: int
    runs: list[RunResult] = field(default_factory=list)
    verified_pairs: int = 0
    cross_tenant_status: int = 0

    def median_rps(self, server: str) -> float:
        return median(r.rps for r in self.runs if r.server == server)

    def median_of(self, server: str, attr: str) -> float:
        return median(float(getattr(r, attr)) for r in self.runs if r.server == server)

    def median_cpu(self, server: str, group: str) -> float:
        return median(r.cpu.get(group, 0.0) for r in self.runs if r.server == server)

    @property
    def ratio(self) -> float:
        return self.median_rps("app") / self.median_rps("bare")


# ---- load generator ------------------------------------------------------------------------


def ensure_wrk() -> str | None:
    """The wrk binary, installing the Debian package when missing and allowed."""
    found = shutil.which("wrk")
    if found or os.environ.get("SWITCHBOARD_BENCH_NO_INSTALL"):
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found: apt-get install -y wrk", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "install", "-y", "-q", "wrk"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "wrk"],
        ):
            subprocess.run(
                cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
            )
            if shutil.which("wrk"):
                break
    return shutil.which("wrk")


def _wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    return (
        (out.stdout or out.stderr).splitlines()[0].split(" [")[0]
        if (out.stdout or out.stderr)
        else "wrk"
    )


def write_requests_file(agencies: list[AgencyData], n: int, path: Path) -> None:
    from services.kit import ids

    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(n):
            ag = rng.choice(agencies)
            cid = rng.choice(ag.client_ids)
            fh.write(f"/api/v1/clients/{ids.encode('cli', cid)}\tBearer {ag.api_key}\n")


def _load_cmd(
    wrk: str | None, url: str, requests_file: Path, cfg: BenchConfig, seconds: int
) -> list[str]:
    if wrk:
        return [
            wrk,
            "-t",
            str(cfg.wrk_threads),
            "-c",
            str(cfg.connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            url,
            "--",
            str(requests_file),
        ]
    return [
        sys.executable,
        "-m",
        "tests.bench.loadgen",
        url,
        str(requests_file),
        "--connections",
        str(cfg.connections),
        "--duration",
        str(seconds),
    ]


def _run_load(cmd: list[str]) -> tuple[dict[str, Any], float]:
    """Run the load generator; return its BENCH_JSON summary and its own CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON ")), cpu
    raise RuntimeError(f"load generator failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")


# ---- servers -------------------------------------------------------------------------------


def server_command(server: Server, workers: int) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        server.target,
        "--host",
        "127.0.0.1",
        "--port",
        str(server.port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "2048",
    ]
    return [*cmd, "--factory"] if server.factory else cmd


def server_env(database_url: str, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(
        {
            "SWITCHBOARD_DATABASE_URL": database_url,
            "SWITCHBOARD_ENV": "production",
            # The bench connects with the admin URL it created the database with: allowed
            # explicitly (production refuses a privileged login, docs/operations.md).
            "SWITCHBOARD_ALLOW_PRIVILEGED_DB_LOGIN": "true",
            "SWITCHBOARD_SECRET_KEY": secrets.token_urlsafe(48),
            "SWITCHBOARD_LOG_LEVEL": "WARNING",
            "SWITCHBOARD_VAR_DIR": str(var_dir),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc is not None
        if server.proc.poll() is not None:
            log = server.log.read_text() if server.log else ""
            raise RuntimeError(f"{server.name} server exited ({server.proc.returncode}):\n{log}")
        try:
            if _get(server.url + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} server did not become ready in {timeout:.0f}s")


@contextmanager
def running(
    servers: list[Server], workers: int, env: dict[str, str], logdir: Path
) -> Iterator[None]:
    try:
        for s in servers:
            s.log = logdir / f"{s.name}.log"
            s.proc = subprocess.Popen(
                server_command(s, workers),
                cwd=ROOT,
                env=env,
                stdout=s.log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for s in servers:
            _wait_ready(s)
        yield
    finally:
        for s in servers:
            if s.proc is not None and s.proc.poll() is None:
                os.killpg(s.proc.pid, signal.SIGTERM)
        for s in servers:
            if s.proc is not None:
                try:
                    s.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(s.proc.pid, signal.SIGKILL)
                    s.proc.wait()


def verify(
    servers: dict[str, Server], agencies: list[AgencyData], samples: int = 20
) -> tuple[int, int]:
    """Both servers return 200 and the same JSON for the same requests; another agency's key
    gets 404 from the application. Returns (pairs checked, cross-tenant status)."""
    from services.kit import ids

    rng = random.Random(11)
    for _ in range(samples):
        ag = rng.choice(agencies)
        path = f"/api/v1/clients/{ids.encode('cli', rng.choice(ag.client_ids))}"
        auth = f"Bearer {ag.api_key}"
        got = {name: _get(s.url + path, auth) for name, s in servers.items()}
        for name, (status, body) in got.items():
            if status != 200:
                raise RuntimeError(f"{name} answered {status} to {path}: {body[:300]!r}")
        if json.loads(got["app"][1]) != json.loads(got["bare"][1]):
            raise RuntimeError(
                f"the bodies differ for {path}:\napp:  {got['app'][1]!r}\nbare: {got['bare'][1]!r}"
            )
    a, b = agencies[0], agencies[1]
    status, _ = _get(
        servers["app"].url + f"/api/v1/clients/{ids.encode('cli', b.client_ids[0])}",
        f"Bearer {a.api_key}",
    )
    if status != 404:
        raise RuntimeError(f"cross-tenant read answered {status}, expected 404")
    return samples, status


def _cpu_groups(server: Server) -> dict[str, list[int]]:
    assert server.proc is not None
    return {"server": [server.proc.pid, *descendants(server.proc.pid)], "postgres": postgres_pids()}


def _measure(server: Server, cmd: list[str], rnd: int) -> RunResult:
    groups = _cpu_groups(server)
    before = {g: cpu_seconds(pids) for g, pids in groups.items()}
    busy0 = machine_busy_seconds()
    t0 = time.perf_counter()
    summary, load_cpu = _run_load(cmd)
    wall = time.perf_counter() - t0
    busy = (machine_busy_seconds() - busy0) / wall
    after = {g: cpu_seconds(pids) for g, pids in _cpu_groups(server).items()}
    cpu = {g: max(0.0, cpu_delta(before[g], after[g]) / wall) for g in groups}
    cpu["loadgen"] = load_cpu / wall
    cpu["other"] = max(0.0, busy - sum(cpu.values()))
    seconds = summary["duration_us"] / 1e6
    return RunResult(
        server=server.name,
        round=rnd,
        requests=summary["requests"],
        seconds=seconds,
        rps=summary["requests"] / seconds,
        p50_ms=summary["latency_us"]["p50"] / 1000,
        p99_ms=summary["latency_us"]["p99"] / 1000,
        errors=summary["errors"],
        cpu=cpu,
    )


def run(cfg: BenchConfig, agencies: list[AgencyData], log: Any = print) -> ThroughputResult:
    wrk = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    requests_file = tmp / "requests.tsv"
    write_requests_file(agencies, cfg.request_pairs, requests_file)
    servers = {
        "app": Server("app", APP_TARGET, _free_port(), factory=True),
        "bare": Server("bare", BARE_TARGET, _free_port(), factory=False),
    }
    env = server_env(cfg.target_url, tmp)
    sample_cmd = _load_cmd(
        wrk, "http://127.0.0.1:PORT", Path("requests.tsv"), cfg, cfg.duration_seconds
    )
    result = ThroughputResult(
        tool="wrk" if wrk else "tests.bench.loadgen (Python fallback)",
        tool_version=_wrk_version(wrk) if wrk else "",
        command=" ".join(Path(c).name if c in (wrk, str(LUA)) else c for c in sample_cmd),
        server_command=" ".join(server_command(servers["app"], cfg.workers)[1:]).replace(
            str(servers["app"].port), "PORT"
        ),
        workers=cfg.workers,
        threads=cfg.wrk_threads,
        connections=cfg.connections,
        warmup_seconds=cfg.warmup_seconds,
        duration_seconds=cfg.duration_seconds,
        rounds=cfg.rounds,
    )
    with running(list(servers.values()), cfg.workers, env, tmp):
        result.verified_pairs, result.cross_tenant_status = verify(servers, agencies)
        for s in servers.values():
            log(f"  warm-up {s.name} ({cfg.warmup_seconds}s)")
            _run_load(_load_cmd(wrk, s.url, requests_file, cfg, cfg.warmup_seconds))
        for rnd in range(cfg.rounds):
            order = ["app", "bare"] if rnd % 2 == 0 else ["bare", "app"]
            for name in order:
                s = servers[name]
                r = _measure(
                    s, _load_cmd(wrk, s.url, requests_file, cfg, cfg.duration_seconds), rnd + 1
                )
                result.runs.append(r)
                errs = sum(r.errors.values())
                log(
                    f"  round {rnd + 1} {name:4s}: {r.rps:8.1f} req/s  p50 {r.p50_ms:6.2f} ms  "
                    f"p99 {r.p99_ms:6.2f} ms  errors {errs}  cpu "
                    + " ".join(f"{g}={v:.2f}" for g, v in r.cpu.items())
                )
                if errs:
                    raise RuntimeError(f"{name}: {r.errors} errors during the run; see {s.log}")
    return result
