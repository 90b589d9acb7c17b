"""Stage 4's blue/green deploy for real: load through the proxy while a deploy and a rollback run.

The image is built once (tag 9.9.1, blue) and tagged again (9.9.2) for the deploy to green, so
the test costs one build. An operator key is created inside the running container, then four
clients call POST /predict through the proxy (127.0.0.1:8004) during ``deploy`` and ``rollback``
driven by the same command as ``make deploy`` and ``make rollback``: no request may fail.

Skipped (and reported so) when no Docker engine answers, failed instead under CI=true. On an engine without a bridge network,
the host-network override is added, exactly as ``make stage4-up`` does; there the proxy and the
colours use their fixed ports (8004, 8014, 8024), which must be free (``make stage4-down``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from common.schema import EXAMPLE_READING
from stage4_prod.bluegreen import compose_command, read_history

ROOT = Path(__file__).resolve().parents[2]
MODEL_VERSION = "1.0.0"
PROJECT = "pompe-etape4-test"
IMAGE = "pompe-anomalies-etape4-test"
FIRST, SECOND = "9.9.1", "9.9.2"
PROXY = "http://127.0.0.1:8004"
CLIENTS = 4
PAUSE_S = 0.3  # 4 clients at ~3 requests/s each: under the key's rate limit (20/s), so a 429 is a failure


pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
    pytest.mark.timeout(600),  # the first test builds both images: minutes on a machine with an empty cache
]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def bluegreen(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "stage4_prod.bluegreen", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


class Load:
    """CLIENTS threads calling POST /predict through the proxy until stopped; every outcome kept."""

    def __init__(self, key: str):
        self.key, self.outcomes, self.lock = key, [], threading.Lock()
        self.running = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self) -> None:
        with httpx.Client(base_url=PROXY, timeout=10, headers={"X-API-Key": self.key}) as client:
            while self.running.is_set():
                try:
                    response = client.post("/predict", json=EXAMPLE_READING)
                    outcome = (response.status_code, response.json().get("model_version"))
                except (httpx.HTTPError, ValueError) as exc:
                    outcome = (type(exc).__name__, None)
                with self.lock:
                    self.outcomes.append(outcome)
                time.sleep(PAUSE_S)

    def __enter__(self) -> Load:
        self.running.set()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running.clear()
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Blue serving 9.9.1 behind the proxy, with an operator key; everything removed afterwards."""
    busy = [port for port in (8004, 8014, 8024) if not port_free(port)]
    assert not busy, f"ports occupés {busy} : arrêtez d'abord l'étape 4 (make stage4-down)"
    if not (ROOT / "models" / MODEL_VERSION / "metadata.json").exists():  # the mounted registry needs it
        subprocess.run([sys.executable, "-m", "stage1_local.train", "--version", MODEL_VERSION], cwd=ROOT, check=True)
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "IMAGE": IMAGE,
        "BLUEGREEN_HISTORY": str(tmp_path_factory.mktemp("bluegreen") / "history.csv"),
        "MODEL_VERSION": MODEL_VERSION,
    }
    compose = compose_command()
    try:
        bluegreen(env, "up", "--tag", FIRST)
        subprocess.run(["docker", "tag", f"{IMAGE}:{FIRST}", f"{IMAGE}:{SECOND}"], check=True)
        created = subprocess.run(
            [*compose, "exec", "-T", "blue", "python", "-m", "stage4_prod.keys", "create", "--name", "ct", "--role",
             "operator"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        auditor = subprocess.run(
            [*compose, "exec", "-T", "blue", "python", "-m", "stage4_prod.keys", "create", "--name", "ct-audit",
             "--role", "auditor"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        key, auditor_key = created.stdout.strip(), auditor.stdout.strip()
        assert key.startswith("pk_") and auditor_key.startswith("pk_"), created.stderr + auditor.stderr
        yield {"env": env, "compose": compose, "key": key, "auditor": auditor_key}
    finally:
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        subprocess.run(["docker", "rmi", f"{IMAGE}:{FIRST}", f"{IMAGE}:{SECOND}"], capture_output=True, timeout=60)


def container(stack, service: str) -> dict:
    ids = subprocess.run(
        [*stack["compose"], "ps", "-aq", service], cwd=ROOT, env=stack["env"], capture_output=True, text=True
    )
    shown = subprocess.run(["docker", "inspect", ids.stdout.strip()], capture_output=True, text=True)
    return json.loads(shown.stdout)[0]


def test_the_proxy_is_the_door_and_keys_are_required(stack):
    assert httpx.get(f"{PROXY}/health", timeout=10).json() == {"status": "ok", "model_version": MODEL_VERSION}
    assert httpx.post(f"{PROXY}/predict", json=EXAMPLE_READING, timeout=10).status_code == 401
    for service in ("blue", "proxy"):
        state = container(stack, service)
        assert state["State"]["Health"]["Status"] == "healthy"
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert state["Config"]["User"] not in ("", "0", "root")


def audit_rows(stack, source: str) -> list[dict]:
    answer = httpx.get(
        f"{PROXY}/audit", params={"kind": "prediction", "limit": 1000}, headers={"X-API-Key": stack["auditor"]}
    )
    assert answer.status_code == 200, answer.text
    return [row for row in answer.json()["rows"] if row["source"] == source]


def test_behind_the_proxy_the_audit_records_the_client_nginx_saw(stack):
    # The client calls from 127.0.0.2 (still this machine's loopback): nginx sees 127.0.0.2, the API sees nginx.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, base_url=PROXY, timeout=10) as client:
        answer = client.post("/predict", json=EXAMPLE_READING, headers={"X-API-Key": stack["key"]})
    assert answer.status_code == 200, answer.text
    row = next(r for r in audit_rows(stack, "api") if r["request_id"] == answer.json()["request_id"])
    assert row["client"] == "127.0.0.2"


def test_a_stream_through_the_proxy_carries_nginxs_request_id_and_client_into_the_audit(stack):
    from websockets.sync.client import connect

    sock = socket.create_connection(("127.0.0.1", 8004), source_address=("127.0.0.2", 0))
    with connect("ws://127.0.0.1:8004/stream", sock=sock, additional_headers={"X-API-Key": stack["key"]}) as ws:
        ws.send(json.dumps(EXAMPLE_READING))
        answer = json.loads(ws.recv(timeout=10))
    for _ in range(20):  # nginx writes a WebSocket's log line when the connection has closed
        logs = subprocess.run(
            [*stack["compose"], "logs", "--no-log-prefix", "proxy"], cwd=ROOT, env=stack["env"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        handshakes = re.findall(r"\[(\w+)\] 127\.0\.0\.2 \"GET /stream\" 101", logs.stdout)
        if handshakes:
            break
        time.sleep(0.5)
    assert handshakes, logs.stdout[-2000:]
    assert answer["request_id"] == f"{handshakes[-1]}-1"  # nginx's id for the handshake, then the reading's rank
    row = next(r for r in audit_rows(stack, "stream") if r["request_id"] == answer["request_id"])
    assert row["client"] == "127.0.0.2"


def test_deploy_and_rollback_under_load_lose_no_request(stack):
    with Load(stack["key"]) as load:
        time.sleep(2)
        deployed = bluegreen(stack["env"], "deploy", "--tag", SECOND, "--no-build")
        assert container(stack, "green")["Config"]["Image"] == f"{IMAGE}:{SECOND}"
        assert container(stack, "blue")["State"]["Running"] is False  # stopped, kept for the rollback
        time.sleep(2)
        rolled_back = bluegreen(stack["env"], "rollback")
        time.sleep(2)
    counts = Counter(load.outcomes)
    failed = {outcome: n for outcome, n in counts.items() if outcome != (200, MODEL_VERSION)}
    print(f"{len(load.outcomes)} requêtes pendant un déploiement et un retour arrière ; échecs : {failed}")
    print(deployed.stdout + rolled_back.stdout)
    assert len(load.outcomes) > 100 and not failed
    assert [(e.action, e.colour, e.tag) for e in read_history(Path(stack["env"]["BLUEGREEN_HISTORY"]))] == [
        ("up", "blue", FIRST),
        ("deploy", "green", SECOND),
        ("rollback", "blue", FIRST),
    ]
    assert container(stack, "blue")["State"]["Running"] is True
    assert container(stack, "green")["State"]["Running"] is False
