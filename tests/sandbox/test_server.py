"""Running the sandbox: a real threaded server, concurrency, production refusal."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from meta_sandbox import SandboxRefused, create_app
from meta_sandbox.server import mask

from .conftest import APP_TOKEN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_serve_in_thread_reports_the_real_port(live):
    assert not live.url.endswith(":0")
    resp = requests.get(live.url + "/_sandbox/scenarios", timeout=5)
    assert resp.status_code == 200


def test_concurrent_calls_are_all_counted(live):
    requests.post(live.url + "/_sandbox/reset", json={"scenario": "one_page"}, timeout=5)

    def call(_):
        return requests.get(
            live.url + "/v25.0/debug_token", params={"input_token": "x", "access_token": APP_TOKEN}, timeout=10
        ).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(call, range(200)))
    assert statuses == [200] * 200
    calls = requests.get(live.url + "/_sandbox/state", timeout=5).json()["calls"]
    assert calls["debug_token"] == 200


def test_create_app_refuses_production(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(SandboxRefused):
        create_app()
    with pytest.raises(SandboxRefused):  # the environment's production wins over a config's test
        create_app({"APP_ENV": "test"})


def test_create_app_refuses_an_unset_app_env(monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    with pytest.raises(SandboxRefused, match="APP_ENV"):
        create_app()
    with pytest.raises(SandboxRefused):
        create_app({"APP_ENV": "staging"})


@pytest.mark.parametrize("env", ["demo", "test"])
def test_create_app_runs_in_demo_and_test(monkeypatch, env):
    monkeypatch.delenv("APP_ENV", raising=False)
    assert create_app({"APP_ENV": env}).config["SANDBOX_SCENARIO"] == "one_page"
    monkeypatch.setenv("APP_ENV", env)
    assert create_app().config["SANDBOX_SCENARIO"] == "one_page"


@pytest.mark.slow  # starts python -m meta_sandbox
@pytest.mark.parametrize("app_env", ["production", None])
def test_module_refuses_production_and_unset(app_env):
    env = {k: v for k, v in os.environ.items() if k != "APP_ENV"}
    env.update(PYTHONPATH=ROOT, **({"APP_ENV": app_env} if app_env else {}))
    proc = subprocess.run(
        [sys.executable, "-m", "meta_sandbox", "--port", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    assert "refusing to start" in proc.stderr and "APP_ENV=demo or APP_ENV=test" in proc.stderr


def test_unknown_scenario_is_refused(monkeypatch):
    monkeypatch.setenv("APP_ENV", "test")
    with pytest.raises(ValueError):
        create_app({"SANDBOX_SCENARIO": "nope"})


def test_log_masking():
    line = "/v25.0/1/accounts?access_token=EAAabcdefghijklmnopqrstuvwxyz12&limit=25&client_secret=s3cret&code=AQxyz"
    masked = mask(line)
    assert "EAAabc" not in masked and "s3cret" not in masked and "AQxyz" not in masked
    assert "limit=25" in masked
