"""Who may call what: every route with every role, no key, an unknown key and a revoked key."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from common.schema import EXAMPLE_READING
from stage4_prod import auth
from stage4_prod.app import app

ALL = set(auth.ROLES)
UNKNOWN = "pk_0123456789abcdef." + "A" * 43  # well formed, never created
CSV = "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS\n"
CSV += "2026-01-05 10:00:00;0.027;0.034;1.4;0.9;70.5;24.9;230.1;32.0\n"


def request_args(name: str) -> dict:
    """What each route is sent: a valid request for a role that may call it."""
    return {
        "predict": {"json": EXAMPLE_READING},
        "batch": {"json": [EXAMPLE_READING]},
        "csv": {"files": {"fichier": ("m.csv", io.BytesIO(CSV.encode()), "text/csv")}},
        "feedback": {"json": {"verdict": "missed", "equipment_id": "pompe-99", "fault_at": "2026-01-05T10:00:00Z"}},
        "create_key": {"json": {"name": "nouvelle", "role": "reader"}},
    }.get(name, {})


# name, method, path, roles allowed, status of an allowed role
ROUTES = [
    ("health", "GET", "/health", None, 200),
    ("version", "GET", "/version", None, 200),
    ("form", "GET", "/", None, 200),
    ("models", "GET", "/models", ALL, 200),
    ("metrics", "GET", "/metrics", ALL, 200),
    ("monitoring", "GET", "/monitoring", ALL, 200),
    ("predict", "POST", "/predict", {"operator"}, 200),
    ("batch", "POST", "/predict/batch", {"operator"}, 200),
    ("csv", "POST", "/predict/csv", {"operator"}, 200),
    ("feedback", "POST", "/feedback", {"operator"}, 404),  # valid request, but no prediction for that pump
    ("audit", "GET", "/audit", {"auditor"}, 200),
    ("deploy", "POST", "/admin/models/9.9.9/deploy", {"admin"}, 404),  # unknown version
    ("rollback", "POST", "/admin/rollback", {"admin"}, 409),  # nothing to go back to
    ("list_keys", "GET", "/admin/keys", {"admin"}, 200),
    ("create_key", "POST", "/admin/keys", {"admin"}, 201),
    ("revoke_key", "DELETE", "/admin/keys/0123456789abcdef", {"admin"}, 404),
]
CALLERS = [*auth.ROLES, "none", "unknown", "revoked"]


def headers_for(keys: dict[str, str], caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    return {auth.HEADER: UNKNOWN if caller == "unknown" else keys[caller]}


@pytest.mark.parametrize(("name", "method", "path", "allowed", "ok"), ROUTES, ids=[r[0] for r in ROUTES])
def test_every_route_with_every_caller(client, keys, name, method, path, allowed, ok):
    for caller in CALLERS:
        response = client.request(method, path, headers=headers_for(keys, caller), **request_args(name))
        if allowed is None:
            expected = ok
        elif caller in ("none", "unknown", "revoked"):
            expected = 401
        else:
            expected = ok if caller in allowed else 403
        assert response.status_code == expected, (caller, response.text)
        if expected in (401, 403):
            body = response.json()
            assert body["detail"] and body["request_id"] == response.headers["x-request-id"]
            assert "clé" in body["detail"] or "rôle" in body["detail"]
        if expected == 401:
            assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'


def test_the_stream_checks_the_key_at_the_handshake(client, keys):
    for caller, status in (("none", 401), ("unknown", 401), ("revoked", 401), ("reader", 403), ("admin", 403)):
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/stream", headers=headers_for(keys, caller)),
        ):
            pass
        assert refused.value.status_code == status, caller
        assert "clé" in refused.value.json()["detail"] or "rôle" in refused.value.json()["detail"]
    with client.websocket_connect("/stream", headers={auth.HEADER: keys["operator"]}) as ws:
        ws.send_json(EXAMPLE_READING)
        assert ws.receive_json()["decision"] in ("Normal", "Anomalie")
    with client.websocket_connect(
        f"/stream?api_key={keys['operator']}"
    ) as ws:  # the fallback for clients without headers
        ws.send_json(EXAMPLE_READING)
        assert ws.receive_json()["model_version"] == "1.0.0"


def test_the_form_asks_for_an_operator_key(client, keys):
    fields = {k: str(v) for k, v in EXAMPLE_READING.items()}
    assert 'name="api_key" type="password"' in client.get("/").text
    refused = client.post("/", data={**fields, "api_key": ""})
    assert refused.status_code == 401 and "clé d&#x27;API absente" in refused.text
    assert client.post("/", data={**fields, "api_key": keys["auditor"]}).status_code == 403
    scored = client.post("/", data={**fields, "api_key": keys["operator"]})
    assert scored.status_code == 200 and 'id="decision"' in scored.text
    assert keys["operator"] not in scored.text  # the page never writes the key back
    upload = {"fichier": ("m.csv", io.BytesIO(CSV.encode()), "text/csv")}
    assert client.post("/fichier", files=upload, data={"api_key": keys["reader"]}).status_code == 403


def test_a_key_over_its_rate_gets_429_and_the_others_do_not(state_db, keys, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_PER_S", "0.5")
    monkeypatch.setenv("RATE_LIMIT_BURST", "3")
    with TestClient(app) as client:
        statuses = [client.get("/metrics", headers={auth.HEADER: keys["reader"]}).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/metrics", headers={auth.HEADER: keys["reader"]})
        assert int(limited.headers["retry-after"]) >= 1 and "trop de requêtes" in limited.json()["detail"]
        assert client.get("/metrics", headers={auth.HEADER: keys["auditor"]}).status_code == 200


def test_keys_are_managed_by_an_admin_and_a_revoked_key_stops_at_once(client, keys):
    admin = {auth.HEADER: keys["admin"]}
    created = client.post("/admin/keys", json={"name": "site-sud", "role": "operator"}, headers=admin).json()
    new = {auth.HEADER: created["key"]}
    assert client.post("/predict", json=EXAMPLE_READING, headers=new).status_code == 200
    listed = client.get("/admin/keys", headers=admin).json()
    assert created["key_id"] in {k["key_id"] for k in listed} and created["key"] not in str(listed)
    assert client.delete(f"/admin/keys/{created['key_id']}", headers=admin).status_code == 200
    assert client.post("/predict", json=EXAMPLE_READING, headers=new).status_code == 401
    bad_role = client.post("/admin/keys", json={"name": "x", "role": "root"}, headers=admin)
    assert bad_role.status_code == 422 and "rôle « root » inconnu" in bad_role.json()["detail"]
