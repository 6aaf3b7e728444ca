"""What the benchmarks read of this machine: a free local port, and CPU time from /proc (Linux)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (``fields[11]`` is utime)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = _stat(pid)
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """utime + stime of a process (and, if asked, of its children it has reaped)."""
    fields = _stat(pid)
    return sum(int(v) for v in fields[11 : 15 if reaped_children else 13]) / TICK


def children(pid: int) -> list[int]:
    """The living child processes of ``pid`` (gunicorn's workers of its arbiter, say)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its living descendants (gunicorn's arbiter and worker)."""
    total = cpu_seconds(pid, reaped_children=True)
    for child in children(pid):
        try:
            total += tree_cpu_seconds(child)
        except FileNotFoundError:
            pass  # it ended meanwhile
    return total


def _machine_fields() -> list[int]:
    """/proc/stat's first line: user nice system idle iowait irq softirq steal …, in ticks."""
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (every core, every process) from /proc/stat:
    user, nice, system, irq and softirq (not idle, iowait or the hypervisor's steal)."""
    fields = _machine_fields()
    idle = fields[3] + fields[4]
    return (sum(fields[:7]) - idle) / TICK


def steal_seconds() -> float:
    """CPU seconds the hypervisor gave to other guests while this one wanted them."""
    return _machine_fields()[7] / TICK


def loop_seconds(additions: int = 10_000_000, tries: int = 3) -> float:
    """How fast this machine runs Python right now: the best of ``tries`` plain loops of
    ``additions`` additions. Machines "of the same kind" have run the same code up to four
    times slower from one session to another, and 1.5 times slower within an hour, and a
    benchmark's figures with it."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for n in range(additions):
            total += n
        best = min(best, time.perf_counter() - started)
    return best
