"""``social-connect demo`` (what ``make demo`` runs): starts, connects, stops on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import requests

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
        show_a_carousel_a_reel_and_a_story(seller, f"http://127.0.0.1:{sandbox_port}")
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output
    assert "stopped" in output


def show_a_carousel_a_reel_and_a_story(seller: Seller, sandbox: str) -> None:
    """What the README's demo walk-through does on the page, through the same API: the
    sandbox's sample media, pre-checked for real, published by the demo's worker."""
    media = f"{sandbox}/_sandbox/media"
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    bodies = [
        {
            "caption": "Carousel batik",
            "targets": ["instagram"],
            "media": [
                {"url": f"{media}/square.jpg", "type": "image", "alt_text": "Kemeja batik biru"},
                {"url": f"{media}/portrait.jpg", "type": "image"},
                {"url": f"{media}/landscape.jpg", "type": "image"},
                {"url": f"{media}/clip.mp4", "type": "video"},
            ],
            "first_comment": "#batik #promo",
        },
        {"format": "reel", "caption": "Reel batik", "media": [{"url": f"{media}/clip.mp4", "type": "video"}]},
        {"format": "story", "media": [{"url": f"{media}/story.jpg", "type": "image"}]},
    ]
    job_ids = []
    for body in bodies:
        response = seller.api("POST", "/api/meta/schedule", json={"publish_at": soon, **body})
        assert response.status_code == 200, response.text
        job_ids.append(response.json()["job_id"])
    deadline = time.monotonic() + 60
    while {seller.api("GET", f"/api/meta/schedule/{j}").json()["status"] for j in job_ids} != {"published"}:
        assert time.monotonic() < deadline, [seller.api("GET", f"/api/meta/schedule/{j}").json() for j in job_ids]
        time.sleep(0.3)
    sent = requests.get(f"{sandbox}/_sandbox/published.json", timeout=5).json()
    assert sorted(item["kind"] for item in sent["facebook"]) == ["photo_story", "reel"]
    assert sorted((item["media_type"], item["media_product_type"]) for item in sent["instagram"]) == [
        ("CAROUSEL_ALBUM", "FEED"),
        ("IMAGE", "STORY"),
        ("VIDEO", "REELS"),
    ]
