"""The worker process's garbage collector: startup's objects left out of its passes, passes
less often, cycles still freed."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from publish_worker import runner
from publish_worker.collector import YOUNG_THRESHOLD
from shared.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent

# In a process of its own: freezing and thresholds are process-wide.
SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, weakref
    from publish_worker.collector import settle_after_startup

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    startup_garbage = cycle()
    settle_after_startup()
    report = {"startup_garbage_freed": startup_garbage() is None, "frozen": gc.get_freeze_count()}
    later = cycle()
    kept = [[] for _ in range(int(sys.argv[1]))]
    report["freed_after_few"] = later() is None
    kept += [[] for _ in range(int(sys.argv[2]))]
    report["freed_after_many"] = later() is None
    print(json.dumps(report))
    """
)


def run_script(few: int, many: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(few), str(many)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_settled_process_frees_cycles_less_often_and_skips_startup_objects() -> None:
    report = run_script(few=5_000, many=YOUNG_THRESHOLD)
    assert report["startup_garbage_freed"] is True  # collected before the rest is frozen
    assert report["frozen"] > 1_000  # the imported modules' objects, left out of every pass
    assert report["freed_after_few"] is False  # CPython's default would have passed 7 times by now
    assert report["freed_after_many"] is True  # still collected, without anyone calling gc.collect()


def test_the_worker_settles_its_collector_before_the_first_job_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class Services:
        def close(self) -> None:
            seen["closed"] = True

    def start_threads(ctx: Any, concurrency: int, stop: Any, logging_level: str = "WARNING") -> list[Any]:
        seen["threshold"] = gc.get_threshold()[0]
        seen["frozen"] = gc.get_freeze_count()
        stop.set()
        return []

    monkeypatch.setattr(runner, "worker_services", lambda settings: Services())
    monkeypatch.setattr(runner, "install_context", lambda ctx: None)
    monkeypatch.setattr(runner, "start_threads", start_threads)
    settings = replace(load_settings({"APP_ENV": "test"}), metrics_port=0)
    threshold = gc.get_threshold()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        runner.run_forever(settings)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert seen == {"threshold": YOUNG_THRESHOLD, "frozen": seen["frozen"], "closed": True}
    assert seen["frozen"] > 1_000
