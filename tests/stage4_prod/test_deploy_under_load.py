"""Deploy and rollback while clients hammer /predict on two uvicorn workers: no failed request, no mixed answer."""

from __future__ import annotations

import os
import shutil
import socket
import time

import httpx
import pytest
from websockets.sync.client import connect

from common.model import AnomalyModel
from common.registry import save
from stage4_prod import audit, auth, deployment, tour


@pytest.fixture
def service(models_dir, training_frame, tmp_path, monkeypatch):
    """The stage 4 service on 127.0.0.1 (2 workers), a registry with 1.0.0 (served) and 1.1.0, and its keys."""
    registry = tmp_path / "registry"
    shutil.copytree(models_dir / "1.0.0", registry / "1.0.0")
    save(AnomalyModel(random_state=1).fit(training_frame), "1.1.0", training_frame, path=registry)
    db = tmp_path / "state.sqlite"
    deployment.initialize(db, "1.0.0", by="test")
    keys = {role: auth.create_key(db, role, role, by="test") for role in ("operator", "admin")}
    keys["load"] = auth.create_key(db, "charge", "operator", by="test")
    env = {
        **os.environ,
        "STATE_DB": str(db),
        "MODELS_DIR": str(registry),
        "LOG_DIR": str(tmp_path / "logs"),
        "RATE_LIMIT_PER_S": "10000",
        "RATE_LIMIT_BURST": "10000",
    }
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tour.running_service(port, tmp_path / "service.log", env) as url:
        yield url, keys, db, tmp_path / "service.log"


@pytest.mark.slow
def test_deploy_and_rollback_under_concurrent_load(service):
    url, keys, db, log_path = service
    admin = {auth.HEADER: keys["admin"]}
    with (
        tour.Load(url, keys["load"]) as load,
        httpx.Client(base_url=url, timeout=30) as http,
        httpx.Client(base_url=url, timeout=10, headers={auth.HEADER: keys["operator"]}) as probe,
    ):
        time.sleep(0.5)
        assert http.post("/admin/models/1.1.0/deploy", headers=admin).status_code == 200
        assert tour.wait_for_version(probe, "1.1.0") < 1.0
        time.sleep(0.5)
        start = time.perf_counter()
        back = http.post("/admin/rollback", headers=admin)
        assert back.status_code == 200 and back.json()["version"] == "1.0.0"
        switched = time.perf_counter() - start + tour.wait_for_version(probe, "1.0.0")
        time.sleep(0.5)
    assert load.failed == 0, (load.statuses, load.errors)
    assert sum(load.statuses.values()) > 50
    assert set(load.versions) == {"1.0.0", "1.1.0"}  # each answer is the old or the new version, nothing else
    assert switched < 1.0, f"rollback took {switched:.2f} s"
    assert audit.verify(db).ok
    audited = audit.query(db, user="charge", kind="prediction", limit=audit.MAX_QUERY_ROWS)
    assert len(audited) == load.statuses[200]  # every answered prediction has its row
    actions = [r["kind"] for r in audit.query(db, limit=audit.MAX_QUERY_ROWS) if r["kind"] != "prediction"]
    assert actions.count("deploy") == 2 and actions.count("rollback") == 1


@pytest.mark.slow
def test_a_stream_key_in_the_url_is_cut_out_of_the_service_log(service):
    url, keys, _, log_path = service
    secret = keys["operator"].split(".", 1)[1]
    with connect(f"{url.replace('http', 'ws', 1)}/stream?api_key={keys['operator']}") as ws:
        ws.send('{"pression": 1}')
        ws.recv()
    time.sleep(0.3)
    logged = log_path.read_text()
    assert "/stream?api_key=pk_" in logged and secret not in logged  # uvicorn logs the URL; the secret is cut
