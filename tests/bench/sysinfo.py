"""The machine the numbers were measured on, and per-process CPU accounting from /proc."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces: split after the closing parenthesis
    head, _, rest = raw.rpartition(")")
    return [head.split("(", 1)[1], *rest.split()]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of `pids` that still exists."""
    out: dict[int, float] = {}
    for pid in pids:
        st = _stat(pid)
        if st is not None:  # utime, stime are fields 14 and 15 (1-based) of /proc/pid/stat
            out[pid] = (int(st[12]) + int(st[13])) / _TICK
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots by the processes alive at the second one (a process
    that started in between counts in full; one that exited in between is lost)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores, all processes) since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _all_stats() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                out[int(entry.name)] = st
    return out


def descendants(pid: int) -> list[int]:
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for p, st in stats.items():
        children.setdefault(int(st[2]), []).append(p)
    out: list[int] = []
    stack = [pid]
    while stack:
        for c in children.get(stack.pop(), []):
            out.append(c)
            stack.append(c)
    return out


def postgres_pids() -> list[int]:
    return [p for p, st in _all_stats().items() if st[0].startswith("postgres")]


def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def git_revision(root: Path) -> str:
    head = _cmd("git", "-C", str(root), "rev-parse", "--short", "HEAD")
    dirty = _cmd(
        "git",
        "-C",
        str(root),
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "services",
        "tenants",
        "infra",
    )
    return f"{head}{' + uncommitted changes in services/tenants/infra' if dirty else ''}"


def machine(pg_version: str) -> dict[str, str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = _cmd("free", "-h").splitlines()
    mem_line = next((ln for ln in mem if ln.startswith("Mem:")), "")
    total = mem_line.split()[1] if mem_line else "?"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": _cmd("nproc") or str(os.cpu_count()),
        "cpu_model": model or platform.processor() or "?",
        "memory": total,
        "kernel": platform.release(),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "postgres": pg_version,
        "python": platform.python_version(),
    }


def package_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "-"
    return out
