"""``social-connect demo`` (what ``make demo`` runs): starts, connects, stops on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.e2e.driver import Seller
from tests.test_deployment import free_port, wait_for


def test_demo_command_runs_the_whole_flow_and_stops_cleanly(tmp_path):
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(APP_ENV="demo", DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}")
    command = shutil.which("social-connect", path=str(Path(sys.executable).parent)) or "social-connect"
    proc = subprocess.Popen(
        [command, "demo", "--port", str(port), "--sandbox-port", str(sandbox_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/healthz", timeout=60).status_code == 200
        seller = Seller(SimpleNamespace(url=f"http://127.0.0.1:{port}"))
        body = seller.consent().json()
        assert body["connected"] is True
        assert seller.status()["page_name"] == "Toko Sari"
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output
    assert "stopped" in output
