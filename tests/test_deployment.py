"""The deployment files work: gunicorn serves the app from env configuration; compose parses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import CI, free_port, make_test_env

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # gunicorn, the app and docker-compose in subprocesses


def wait_for(url: str, timeout: float = 20.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=2)
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a worker still booting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_gunicorn_starts_from_the_environment_and_is_ready(database_url, redis_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        **make_test_env(database_url, redis_url),
        "APP_ENV": "production",
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    if not redis_url:
        pytest.skip("needs a real Redis: production refuses to start without REDIS_URL")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "connect_service:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        response = wait_for(f"http://127.0.0.1:{port}/readyz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "redis": "ok"}
        for _ in range(6):
            status = requests.get(f"http://127.0.0.1:{port}/api/meta/status", timeout=5)
            assert status.status_code == 401 and status.json()["error_code"] == "not_authenticated"
        # Both gunicorn workers' counts add up in one /metrics answer.
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert 'social_connect_errors_total{error_code="not_authenticated"} 6.0' in metrics
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert "/readyz" in output  # the access log, which never carries a query string
    assert "?" not in "".join(line for line in output.splitlines() if '"GET ' in line)


def test_production_start_without_a_secret_fails_naming_it(database_url, redis_url):
    env = {
        **os.environ,
        **make_test_env(database_url, redis_url or "redis://127.0.0.1:6379/13"),
        "APP_ENV": "production",
        "TOKEN_ENCRYPTION_KEYS": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from connect_service import create_app; create_app()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "TOKEN_ENCRYPTION_KEYS is required but not set" in result.stderr


def test_docker_compose_file_is_valid():
    binary = shutil.which("docker-compose")
    if binary is None:
        if CI:
            pytest.fail("docker-compose is needed to validate docker-compose.yml (apt-get install docker-compose)")
        pytest.skip("docker-compose not installed")
    result = subprocess.run([binary, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_docker_compose_redis_requires_the_password_every_service_uses():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed")
    env = {**os.environ, "REDIS_PASSWORD": "s3cret-from-the-environment"}
    result = subprocess.run([binary, "config"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[lines.index("- --requirepass") + 1] == "- s3cret-from-the-environment"
    urls = [line for line in lines if line.startswith("REDIS_URL:")]
    assert urls == ["REDIS_URL: redis://:s3cret-from-the-environment@redis:6379/0"] * 3  # migrate, web, worker


def test_procfile_names_the_three_processes():
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert lines["release"] == "social-connect migrate"
    assert "connect_service:create_app()" in lines["web"]
    assert lines["worker"] == "python -m publish_worker"
