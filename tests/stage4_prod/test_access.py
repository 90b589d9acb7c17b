"""Access beyond the matrix of every route x every caller (tests/hardening/test_access_matrix.py):
the stream's query-string key, the form's key field, the rate limit, key management."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from common.schema import EXAMPLE_READING
from stage4_prod import auth
from stage4_prod.app import app

UNKNOWN = "pk_0123456789abcdef." + "A" * 43  # well formed, never created
CSV = "datetime;Accelerometer1RMS;Accelerometer2RMS;Current;Pressure;Temperature;Thermocouple;Voltage;Volume Flow RateRMS\n"
CSV += "2026-01-05 10:00:00;0.027;0.034;1.4;0.9;70.5;24.9;230.1;32.0\n"


def test_the_stream_accepts_the_key_in_the_query_string(client, keys):
    """The fallback for clients that cannot send a header on the handshake (the header is checked by the matrix)."""
    with client.websocket_connect(f"/stream?api_key={keys['operator']}") as ws:
        ws.send_json(EXAMPLE_READING)
        assert ws.receive_json()["model_version"] == "1.0.0"
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(f"/stream?api_key={UNKNOWN}"):
        pass
    assert refused.value.status_code == 401


def test_the_form_asks_for_an_operator_key(client, keys):
    fields = {k: str(v) for k, v in EXAMPLE_READING.items()}
    assert 'name="api_key" type="password"' in client.get("/").text
    refused = client.post("/", data={**fields, "api_key": ""})
    assert refused.status_code == 401 and "clé d&#39;API absente" in refused.text
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
