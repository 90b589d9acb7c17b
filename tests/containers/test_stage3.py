"""Stage 3's image for real: build it, start it with Compose, wait until healthy, call it over 127.0.0.1.

Beyond stage 2's checks: the registry is mounted read-only (no model in the image), a CSV
upload, the WebSocket stream, and the inference log found on its volume.

Skipped (and reported so) when no Docker engine answers, failed instead under CI=true. On an engine without a bridge
network, the host-network override is added, exactly as ``make stage3-up`` does.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from common.data import write_csv
from common.schema import EXAMPLE_READING
from common.simulator import simulate
from stage3_preprod import __version__

ROOT = Path(__file__).resolve().parents[2]
STAGE = ROOT / "stage3_preprod"
MODEL_VERSION = "1.0.0"
PROJECT = "pompe-etape3-test"
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
    """The stage 3 container, healthy, on a free port of 127.0.0.1; always removed afterwards."""
    if not (ROOT / "models" / MODEL_VERSION / "metadata.json").exists():  # the mounted registry needs it
        subprocess.run([sys.executable, "-m", "stage3_preprod.train", "--version", MODEL_VERSION], cwd=ROOT, check=True)
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
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"], cwd=ROOT, env=env, capture_output=True, timeout=120
        )


def test_health_answers_with_the_mounted_model(service):
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
    assert "[ct-1] stage3_preprod.access: method=POST path=/predict status=200" in logs.stdout


def test_csv_upload_scores_rows_and_lists_rejects(service):
    buffer = io.StringIO()
    write_csv(simulate("valve_closure", seed=3, hours=2), buffer)
    lines = buffer.getvalue().split("\r\n")
    lines[2] = lines[2].replace(lines[2].split(";")[1], "abc", 1)
    files = {"fichier": ("vanne.csv", "\r\n".join(lines).encode(), "text/csv")}
    body = httpx.post(f"{service['url']}/predict/csv", files=files, timeout=30).json()
    assert body["scored"] == 119 and body["rejected"] == 1 and body["anomalies"] > 0
    assert body["rejects"][0]["line"] == 3 and body["model_version"] == MODEL_VERSION


def test_stream_answers_each_message_and_survives_a_bad_one(service):
    url = service["url"].replace("http", "ws", 1) + "/stream"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({**EXAMPLE_READING, "equipment_id": "ct-ws", "timestamp": "2026-01-05T10:00:00"}))
        assert json.loads(ws.recv(timeout=10))["decision"] == "Normal"
        ws.send("pas du json")
        assert "JSON mal formé" in json.loads(ws.recv(timeout=10))["detail"]
        ws.send(json.dumps({**EXAMPLE_READING, "equipment_id": "ct-ws", "timestamp": "2026-01-05T10:01:00"}))
        assert json.loads(ws.recv(timeout=10))["model_version"] == MODEL_VERSION


def test_models_and_metrics_answer(service):
    models = httpx.get(f"{service['url']}/models", timeout=10).json()
    assert models["served"] == MODEL_VERSION
    assert "requests" in httpx.get(f"{service['url']}/metrics/json", timeout=10).json()
    # Prometheus text, both workers counted together: every scrape, whichever worker answers, agrees.
    totals = set()
    for _ in range(6):
        text = httpx.get(f"{service['url']}/metrics", timeout=10).text
        totals |= {line for line in text.splitlines() if line.startswith("pompe_predictions_total{")}
    assert len(totals) == 1 and float(totals.pop().rsplit(" ", 1)[1]) > 0


def test_inference_log_is_on_its_volume(service):
    httpx.post(f"{service['url']}/predict", json=EXAMPLE_READING, headers={"X-Request-ID": "ct-log"}, timeout=10)
    shown = subprocess.run(
        [*service["compose"], "exec", "-T", "api", "sh", "-c", "cat /app/logs/inferences-*.csv"],
        cwd=ROOT,
        env=service["env"],
        capture_output=True,
        text=True,
    )
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("time;request_id;source;equipment_id;model_version;")
    assert any(";ct-log;api;pompe-01;1.0.0;" in line for line in lines)
    assert any(";stream;ct-ws;" in line for line in lines) and any(";api_csv;" in line for line in lines)
