"""Stage 2's image for real: build it, start it with Compose, wait until healthy, call it over 127.0.0.1.

Skipped (and reported so) when no Docker engine answers, failed instead under CI=true. On an engine without a bridge
network, the host-network override is added, exactly as ``make stage2-up`` does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from common.schema import EXAMPLE_READING
from stage2_shared import __version__

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stage2_shared"
MODEL_VERSION = "1.0.0"
PROJECT = "pompe-etape2-test"
COMMIT = "test1234"
BUILD_DATE = "2025-06-01T12:00:00Z"


pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
]


def compose_command() -> list[str]:
    command = ["docker", "compose", "-p", PROJECT, "-f", str(STAGE / "docker-compose.yml")]
    if subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True).returncode != 0:
        command += ["-f", str(STAGE / "docker-compose.host.yml")]
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def service():
    """The stage 2 container, healthy, on a free port of 127.0.0.1; always removed afterwards."""
    if not (ROOT / "models" / MODEL_VERSION / "metadata.json").exists():  # the image bakes this version in
        subprocess.run([sys.executable, "-m", "stage2_shared.train", "--version", MODEL_VERSION], cwd=ROOT, check=True)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "APP_VERSION": __version__,
        "GIT_COMMIT": COMMIT,
        "BUILD_DATE": BUILD_DATE,
        "MODEL_VERSION": MODEL_VERSION,
    }
    compose = compose_command()
    try:
        up = subprocess.run(
            [*compose, "up", "-d", "--build", "--wait", "--wait-timeout", "180"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        yield {"url": f"http://127.0.0.1:{port}", "compose": compose, "env": env}
    finally:
        subprocess.run([*compose, "down", "--remove-orphans"], cwd=ROOT, env=env, capture_output=True, timeout=120)


def test_health_answers_with_the_baked_model(service):
    response = httpx.get(f"{service['url']}/health", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model_version": MODEL_VERSION}


def test_version_reports_what_was_built(service):
    body = httpx.get(f"{service['url']}/version", timeout=10).json()
    assert body == {
        "app_version": __version__,
        "model_version": MODEL_VERSION,
        "git_commit": COMMIT,
        "build_date": BUILD_DATE,
    }


def test_predict_scores_and_refuses_in_french(service):
    ok = httpx.post(f"{service['url']}/predict", json=EXAMPLE_READING, headers={"X-Request-ID": "ct-1"}, timeout=10)
    assert ok.status_code == 200
    body = ok.json()
    assert body["decision"] in ("Normal", "Anomalie") and body["model_version"] == MODEL_VERSION
    assert body["decision"] == "Normal" and body["score"] <= body["threshold"]
    assert body["request_id"] == "ct-1" == ok.headers["X-Request-ID"]
    refused = httpx.post(f"{service['url']}/predict", json={**EXAMPLE_READING, "pressure": 500}, timeout=10)
    assert refused.status_code == 422 and "pressure" in refused.json()["detail"]


def test_container_is_healthy_non_root_and_labelled(service):
    ids = subprocess.run(
        [*service["compose"], "ps", "-q", "api"], cwd=ROOT, env=service["env"], capture_output=True, text=True
    )
    container = ids.stdout.strip()
    state = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True).stdout)[0]
    assert state["State"]["Health"]["Status"] == "healthy"
    assert state["Config"]["User"] not in ("", "0", "root")
    labels = state["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == COMMIT
    assert labels["org.opencontainers.image.created"] == BUILD_DATE
    logs = subprocess.run(
        [*service["compose"], "logs", "api"], cwd=ROOT, env=service["env"], capture_output=True, text=True
    )
    assert "[ct-1] stage2_shared.access: method=POST path=/predict status=200" in logs.stdout
