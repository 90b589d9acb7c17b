"""API keys: hashed storage, 401 / 403 / 429, revocation, constant-time comparison, keys never logged."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stage4_prod import audit, auth


@pytest.fixture
def db(tmp_path):
    return tmp_path / "state.sqlite"


@pytest.fixture
def keys(db):
    return {role: auth.create_key(db, f"cle-{role}", role, by="test") for role in auth.ROLES}


def make_app(db, rate_per_s=100.0, burst=100) -> FastAPI:
    app = FastAPI()
    app.state.auth = auth.Authenticator(db, rate_per_s=rate_per_s, burst=burst)

    @app.post("/predict")
    def predict(who: auth.Operator) -> dict:
        return {"name": who.name, "role": who.role}

    @app.get("/audit")
    def read_audit(who: auth.Auditor) -> dict:
        return {"name": who.name}

    @app.post("/admin/rollback")
    def rollback(who: auth.RollbackAdmin) -> dict:
        return {"name": who.name}

    return app


def test_key_format_and_only_its_hash_is_stored(db, keys):
    key = keys["operator"]
    assert auth.KEY_PATTERN.fullmatch(key)
    content = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))  # the file and its WAL, if any
    secret = key.split(".", 1)[1]
    assert secret.encode() not in content and key.encode() not in content
    assert auth.hash_key(key).encode() in content
    listed = auth.list_keys(db)
    assert {k["role"] for k in listed} == set(auth.ROLES)
    assert all("key_hash" not in k and key not in str(k) for k in listed)


def test_authenticate_accepts_only_the_exact_active_key(db, keys):
    key = keys["operator"]
    principal = auth.authenticate(db, key)
    assert principal == auth.Principal("cle-operator", "operator", key[3:19])
    wrong_secret = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert auth.authenticate(db, wrong_secret) is None
    unknown_id = "pk_0000000000000000." + key.split(".", 1)[1]
    assert auth.authenticate(db, unknown_id) is None
    for malformed in (None, "", "pk_", key + "x", key.upper(), " " + key):
        assert auth.authenticate(db, malformed) is None
    auth.revoke_key(db, key[3:19], by="test")
    assert auth.authenticate(db, key) is None
    assert auth.authenticate(db, keys["reader"]).role == "reader"  # the others still work


def test_hashes_are_compared_in_constant_time(db, keys, monkeypatch):
    calls = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert auth.authenticate(db, keys["admin"]) is not None
    assert auth.authenticate(db, "pk_0123456789abcdef." + "x" * 43) is None  # unknown id: compared all the same
    assert len(calls) == 2 and calls[0][0] == auth.hash_key(keys["admin"])


def test_permission_table():
    allowed = {role: {a for a in auth.ACTIONS if auth.Principal("n", role, "i").can(a)} for role in auth.ROLES}
    assert allowed == {
        "reader": {"monitoring"},
        "operator": {"monitoring", "predict", "feedback"},
        "auditor": {"monitoring", "audit"},
        "admin": {"monitoring", "deploy", "rollback", "keys"},
    }
    assert not auth.Principal("n", "inconnu", "i").can("monitoring")


def test_401_403_and_success_through_fastapi(db, keys):
    client = TestClient(make_app(db))
    missing = client.post("/predict")
    assert missing.status_code == 401
    assert missing.json()["detail"] == auth.UNKNOWN_KEY
    assert missing.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
    wrong = client.post("/predict", headers={"X-API-Key": keys["operator"][:-2] + "zz"})
    assert wrong.status_code == 401
    forbidden = client.post("/predict", headers={"X-API-Key": keys["reader"]})
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"].startswith("rôle « reader » non autorisé pour demander des prédictions")
    assert client.post("/predict", headers={"X-API-Key": keys["operator"]}).json() == {
        "name": "cle-operator",
        "role": "operator",
    }
    assert client.get("/audit", headers={"X-API-Key": keys["auditor"]}).status_code == 200
    assert client.get("/audit", headers={"X-API-Key": keys["operator"]}).status_code == 403
    assert client.post("/admin/rollback", headers={"X-API-Key": keys["admin"]}).status_code == 200
    auth.revoke_key(db, keys["operator"][3:19])
    assert client.post("/predict", headers={"X-API-Key": keys["operator"]}).status_code == 401


def test_rate_limit_answers_429_with_retry_after(db, keys):
    client = TestClient(make_app(db, rate_per_s=0.5, burst=3))
    headers = {"X-API-Key": keys["operator"]}
    statuses = [client.post("/predict", headers=headers).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.post("/predict", headers=headers)
    assert refused.headers["Retry-After"] == "2"
    assert "trop de requêtes" in refused.json()["detail"]
    other = client.get("/audit", headers={"X-API-Key": keys["auditor"]})  # another key has its own bucket
    assert other.status_code == 200


def test_token_bucket_refills_at_its_rate():
    now = [100.0]
    limiter = auth.RateLimiter(rate_per_s=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("k") == 0.0
    now[0] += 100
    assert [limiter.acquire("k") for _ in range(3)][:2] == [0.0, 0.0]  # never more than the burst
    assert auth.RateLimiter(rate_per_s=0).acquire("k") == 0.0  # 0 switches the limit off


def test_a_key_never_appears_in_logs_or_errors(db, keys, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    key = keys["operator"]
    client = TestClient(make_app(db, rate_per_s=0.1, burst=1))
    bodies = []
    for headers in ({"X-API-Key": key}, {"X-API-Key": key}, {"X-API-Key": key[:-1] + "Q"}, {"X-API-Key": key + "x"}):
        bodies.append(client.post("/predict", headers=headers).text)
    bodies.append(client.post("/predict", headers={"X-API-Key": keys["reader"]}).text)
    auth.revoke_key(db, key[3:19])
    bodies.append(client.post("/predict", headers={"X-API-Key": key}).text)
    secrets_ = [k.split(".", 1)[1] for k in keys.values()]
    captured = caplog.text + "".join(bodies) + "".join(capsys.readouterr())
    trail = audit.to_csv(audit.query(db, limit=1000))
    for secret in secrets_:
        assert secret not in captured and secret[:12] not in captured and secret not in trail
    assert key[3:19] in caplog.text  # the public id is what the log names


def test_create_key_refusals(db):
    with pytest.raises(auth.KeyRefused, match="rôle « root » inconnu"):
        auth.create_key(db, "x", "root")
    with pytest.raises(auth.KeyRefused, match="nom invalide"):
        auth.create_key(db, "  ", "reader")
    with pytest.raises(auth.KeyRefused, match="aucune clé"):
        auth.revoke_key(db, "0123456789abcdef")
    key = auth.create_key(db, "x", "reader")
    auth.revoke_key(db, key[3:19])
    with pytest.raises(auth.KeyRefused, match="déjà révoquée"):
        auth.revoke_key(db, key[3:19])


def test_key_changes_are_audited(db, keys):
    auth.revoke_key(db, keys["reader"][3:19], by="admin-1")
    rows = audit.query(db, limit=100)
    assert [r["kind"] for r in rows] == ["key_create"] * 4 + ["key_revoke"]
    assert rows[-1]["actor"] == "admin-1" and rows[-1]["details"]["key_id"] == keys["reader"][3:19]
    assert audit.verify(db).ok
