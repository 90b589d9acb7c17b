"""The REST API (stage 2 on): what a remote colleague's program sends and gets back."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re

import pytest
from fastapi.testclient import TestClient

from common.schema import EXAMPLE_READING, SENSORS
from stage1_local import scoring as stage1_scoring
from tests.conftest import TEST_VERSION
from tests.contract.conftest import WITH_API, WITH_KEY, stage_client, stage_module

DISTRESS = {
    **EXAMPLE_READING,
    "accelerometer1_rms": 0.27,
    "volume_flow_rate_rms": 10.0,
    "pressure": 1.1,
    "temperature": 120.0,
}
HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(params=WITH_API)
def stage(request) -> str:
    return request.param


@pytest.fixture
def api_env(stage_env):
    return stage_env


@pytest.fixture
def client(stage, stage_env):
    with stage_client(stage) as client:
        yield client


def app_of(stage: str):
    return stage_module(stage, "app").app


def version_of(stage: str) -> str:
    return importlib.import_module(stage).__version__


def post_raw(client: TestClient, body: bytes | str, content_type: str | None = "application/json", **headers):
    if content_type:
        headers["Content-Type"] = content_type
    return client.post("/predict", content=body, headers=headers)


def assert_french_422(response, field: str, *words: str) -> str:
    """The 422 names ``field`` in its list and in the summary; returns that field's message."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert field in body["detail"] and body["detail"].startswith("requête refusée")
    messages = [e["message"] for e in body["errors"] if e["field"] == field]
    assert messages, body
    assert f"{field}" in messages[0]
    for word in words:
        assert word in messages[0], messages[0]
    return messages[0]


# ---- Endpoints --------------------------------------------------------------------------------------


def test_health_says_ready_with_the_model_version(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model_version": TEST_VERSION}


def test_version_says_what_runs(client, stage):
    assert client.get("/version").json() == {
        "app_version": version_of(stage),
        "model_version": TEST_VERSION,
        "git_commit": "inconnu",
        "build_date": "inconnue",
    }
    assert re.fullmatch(r"\d+\.\d+\.\d+", version_of(stage))


def test_version_reports_the_commit_and_build_date_given_at_build(stage, api_env, monkeypatch):
    monkeypatch.setenv("GIT_COMMIT", "abc1234")
    monkeypatch.setenv("BUILD_DATE", "2025-01-02T03:04:05Z")
    with stage_client(stage) as client:
        body = client.get("/version").json()
    assert (body["git_commit"], body["build_date"]) == ("abc1234", "2025-01-02T03:04:05Z")


def test_normal_reading_is_normal_with_threshold_version_and_request_id(client, loaded_model):
    response = client.post("/predict", json=EXAMPLE_READING)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"score", "decision", "threshold", "model_version", "equipment_id", "request_id"}
    assert body["decision"] == "Normal" and body["score"] <= body["threshold"]
    assert body["threshold"] == loaded_model.model.threshold_
    assert body["model_version"] == TEST_VERSION and body["equipment_id"] == "pompe-01"
    assert body["request_id"] == response.headers["X-Request-ID"]


def test_pump_in_distress_is_an_anomaly(client):
    body = client.post("/predict", json={**DISTRESS, "equipment_id": "pompe-07"}).json()
    assert body["decision"] == "Anomalie" and body["score"] > body["threshold"]
    assert body["equipment_id"] == "pompe-07"


@pytest.mark.parametrize("reading", [EXAMPLE_READING, DISTRESS])
def test_same_model_gives_the_same_score_as_stage_1(client, loaded_model, reading):
    expected = stage1_scoring.score_reading(loaded_model, reading)
    body = client.post("/predict", json=reading).json()
    assert body["score"] == expected["score"]
    assert body["decision"] == expected["decision"]


def test_integers_are_accepted_as_numbers(client):
    reading = {**EXAMPLE_READING, "voltage": 230, "temperature": 71}
    assert client.post("/predict", json=reading).status_code == 200


def test_endpoints_that_can_score_a_file_are_plain_def_and_the_json_ones_do_not_hop_to_a_thread(stage):
    api, deps, pages = (stage_module(stage, name) for name in ("api", "deps", "pages"))
    # Stage 4's form hands its audit commit to a writer thread instead (tests/stage4_prod/test_app.py).
    blocking = (pages.show_form, pages.score_upload, pages.download) + (
        () if stage in WITH_KEY else (pages.score_form,)
    )
    for endpoint in blocking:
        assert not inspect.iscoroutinefunction(endpoint)  # run in the thread pool: the event loop stays free
    for endpoint in (api.predict, api.version, deps.get_model, deps.require_json):
        assert inspect.iscoroutinefunction(endpoint)  # 0.1 ms of numpy: a thread hop would cost more than the work
    # GET /health: no blocking work in stage 2; from stage 3 on it writes a probe file (tests/stage3_preprod).


def test_without_a_model_health_and_predict_say_503_in_french(stage, api_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(tmp_path))
    with stage_client(stage) as client:
        health = client.get("/health")
        predicted = client.post("/predict", json=EXAMPLE_READING)
        version = client.get("/version")
    assert health.status_code == 503 and predicted.status_code == 503
    assert health.json()["detail"].startswith("aucun modèle chargé")
    assert health.json()["request_id"] == health.headers["X-Request-ID"]
    assert version.status_code == 200 and version.json()["model_version"] is None


# ---- Bad input: 422, in French, naming the field -----------------------------------------------------


def test_missing_field_is_named(client):
    reading = {k: v for k, v in EXAMPLE_READING.items() if k != "pressure"}
    assert_french_422(client.post("/predict", json=reading), "pressure", "Pression", "valeur manquante")


def test_unknown_field_is_refused(client):
    assert_french_422(client.post("/predict", json={**EXAMPLE_READING, "presure": 1.0}), "presure", "champ inconnu")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.5", ("« 0.5 » n'est pas un nombre", "sans guillemets")),
        ("NaN", ("« NaN » n'est pas un nombre",)),
        ("Infinity", ("« Infinity » n'est pas un nombre",)),
        (True, ("n'est pas un nombre",)),
        (None, ("valeur manquante",)),
        ([1.0], ("n'est pas un nombre",)),
    ],
)
def test_mistyped_value_is_refused(client, value, words):
    response = client.post("/predict", json={**EXAMPLE_READING, "current": value})
    assert_french_422(response, "current", "Courant moteur", *words)


@pytest.mark.parametrize(("token", "words"), [("NaN", "NaN"), ("Infinity", "infinie"), ("-Infinity", "infinie")])
def test_nan_and_infinity_json_tokens_are_refused(client, token, words):
    body = json.dumps(EXAMPLE_READING).replace('"voltage": 230.0', f'"voltage": {token}')
    assert token in body
    assert_french_422(post_raw(client, body), "voltage", words)


@pytest.mark.parametrize("sensor", SENSORS, ids=lambda s: s.name)
def test_ranges_come_from_common_schema(client, sensor):
    """The limits are the sensor's own: the bounds pass, a step outside fails, with its unit."""
    for bound in (sensor.low, sensor.high):
        assert client.post("/predict", json={**EXAMPLE_READING, sensor.name: bound}).status_code == 200
    for outside in (sensor.low - 0.5, sensor.high + 0.5):
        response = client.post("/predict", json={**EXAMPLE_READING, sensor.name: outside})
        assert_french_422(response, sensor.name, "hors de la plage plausible", sensor.unit)


def test_every_bad_field_is_reported_at_once(client):
    reading = {**EXAMPLE_READING, "pressure": 500, "voltage": "x", "extra": 1}
    del reading["current"]
    body = client.post("/predict", json=reading).json()
    assert {e["field"] for e in body["errors"]} == {"pressure", "voltage", "extra", "current"}


@pytest.mark.parametrize("equipment_id", ["x" * 65, "", 12])
def test_bad_equipment_id_is_refused(client, equipment_id):
    assert_french_422(client.post("/predict", json={**EXAMPLE_READING, "equipment_id": equipment_id}), "equipment_id")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"current": 1.2,', "JSON mal formé"),
        ("not json", "JSON mal formé"),
        ("[1, 2]", "un objet JSON est attendu"),
        ('"texte"', "un objet JSON est attendu"),
        ("", "corps de requête manquant"),
    ],
)
def test_malformed_body_is_a_french_422(client, body, words):
    assert_french_422(post_raw(client, body), "body", words)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
def test_wrong_content_type_is_415(client, content_type):
    response = post_raw(client, json.dumps(EXAMPLE_READING), content_type)
    assert response.status_code == 415
    assert "JSON" in response.json()["detail"] and response.json()["request_id"] == response.headers["X-Request-ID"]


def test_json_content_type_with_charset_is_accepted(client):
    assert post_raw(client, json.dumps(EXAMPLE_READING), "application/json; charset=utf-8").status_code == 200


# ---- Body size: 413 -------------------------------------------------------------------------------


@pytest.fixture
def small_limit_client(stage, api_env, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", "400")
    with stage_client(stage) as client:
        yield client


def test_body_over_the_limit_with_content_length_is_413(small_limit_client):
    padded = json.dumps({**EXAMPLE_READING, "equipment_id": "p" * 500})
    response = post_raw(small_limit_client, padded)
    assert response.status_code == 413
    assert response.json()["detail"] == "corps de requête trop volumineux : 400 octets au plus"
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_chunked_body_over_the_limit_without_content_length_is_413(small_limit_client):
    chunks = (b" " * 100 for _ in range(10))  # a generator: sent chunked, no Content-Length
    response = small_limit_client.post("/predict", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "trop volumineux" in response.json()["detail"]


def test_chunked_body_under_the_limit_is_scored(small_limit_client):
    data = json.dumps(EXAMPLE_READING).encode()
    assert len(data) < 400
    chunks = (data[i : i + 50] for i in range(0, len(data), 50))
    response = small_limit_client.post("/predict", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["decision"] == "Normal"


# ---- Request ids and logs ---------------------------------------------------------------------------


def test_sane_request_id_is_kept_and_returned(client):
    response = client.post("/predict", json=EXAMPLE_READING, headers={"X-Request-ID": "site-lyon_42.a:b"})
    assert response.headers["X-Request-ID"] == "site-lyon_42.a:b"
    assert response.json()["request_id"] == "site-lyon_42.a:b"


def test_request_id_is_made_when_missing(client):
    first, second = client.get("/health"), client.get("/health")
    assert HEX_ID.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize("bad", ["x" * 65, "a b", "<script>", "id;rm", "é"])
def test_insane_request_id_is_replaced(client, bad):
    response = client.get("/health", headers={"X-Request-ID": bad.encode()})
    assert HEX_ID.fullmatch(response.headers["X-Request-ID"])


LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 (?P<level>[A-Z]+) \[(?P<id>[^\]]+)\] (?P<stage>\w+)\.access: "
    r"method=(?P<method>[A-Z]+) path=(?P<path>\S+) status=(?P<status>\d{3}) latency_ms=(?P<ms>\d+\.\d) "
    r"model=(?P<model>\S+)(?: who=(?P<who>\S+))?$"  # stage 4 names the caller: the key's name and public id
)


def access_lines(text: str) -> list[re.Match]:
    return [m for line in text.splitlines() if (m := LOG_LINE.match(line))]


def test_one_log_line_per_request_on_stdout(client, stage, capsys):
    capsys.readouterr()
    client.post("/predict?secret=1", json=EXAMPLE_READING, headers={"X-Request-ID": "trace-1"})
    client.post("/predict", json={**EXAMPLE_READING, "pressure": 999})
    lines = access_lines(capsys.readouterr().out)
    assert len(lines) == 2
    ok, refused = (m.groupdict() for m in lines)
    who = ok.pop("who")
    assert who == (f"contrat:{client.key[3:19]}" if stage in WITH_KEY else None)  # never the key itself
    assert ok | {"ms": "x"} == {
        "stage": stage,
        "level": "INFO",
        "id": "trace-1",
        "method": "POST",
        "path": "/predict",
        "status": "200",
        "ms": "x",
        "model": TEST_VERSION,
    }
    assert refused["status"] == "422" and HEX_ID.fullmatch(refused["id"])


def test_unexpected_error_is_500_with_the_id_only_and_the_trace_in_the_log(client, stage, monkeypatch, capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(stage_module(stage, "scoring"), "score_reading", explode)
    capsys.readouterr()
    response = client.post("/predict", json=EXAMPLE_READING, headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {
        "detail": "erreur interne du service : elle est consignée dans son journal sous l'identifiant de la requête",
        "errors": [],
        "request_id": "boom-1",
    }
    assert response.headers["X-Request-ID"] == "boom-1"
    out = capsys.readouterr().out
    assert f"[boom-1] {stage}.errors: unexpected error on POST /predict" in out
    assert "Traceback" in out and "RuntimeError: secret internal detail" in out
    assert [m["status"] for m in access_lines(out)] == ["500"]
    assert access_lines(out)[0]["level"] == "ERROR"


def test_unknown_address_and_wrong_method_are_french_json(client):
    missing, wrong = client.get("/nulle-part"), client.get("/predict")
    assert (missing.status_code, missing.json()["detail"]) == (404, "page introuvable")
    assert (wrong.status_code, wrong.json()["detail"]) == (405, "méthode non autorisée sur cette adresse")


def test_browser_gets_html_errors_and_programs_get_json(client):
    page = client.get("/nulle-part", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "<html" in page.text and "page introuvable" in page.text
    assert client.get("/nulle-part").json()["detail"] == "page introuvable"


# ---- OpenAPI -------------------------------------------------------------------------------------


def reading_schema(schema: dict) -> dict:
    """The schema of the body of POST /predict (``Reading``; ``TimedReading`` from stage 3 on)."""
    ref = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_openapi_example_body_validates_and_predicts(client):
    schema = client.get("/openapi.json").json()
    example = reading_schema(schema)["examples"][0]
    response = client.post("/predict", json=example)
    assert response.status_code == 200 and response.json()["decision"] == "Normal"


def test_openapi_is_described_in_french(client, stage):
    schema = client.get("/openapi.json").json()
    assert schema["info"]["version"] == version_of(stage)
    assert "Détection d'anomalies" in schema["info"]["description"]
    assert schema["paths"]["/predict"]["post"]["summary"] == "Analyser une mesure"
    properties = reading_schema(schema)["properties"]
    for s in SENSORS:
        assert s.label in properties[s.name]["description"]
        assert (properties[s.name]["minimum"], properties[s.name]["maximum"]) == (s.low, s.high)
    assert schema["paths"]["/predict"]["post"]["responses"]["422"]["description"].startswith("Mesure refusée")
    assert "/" not in schema["paths"] and "/fichier" not in schema["paths"]  # the form is for people
    assert client.get("/docs").status_code == 200


def test_finite_scores_are_json_numbers(client):
    body = client.post("/predict", json=DISTRESS).json()
    assert isinstance(body["score"], float) and math.isfinite(body["score"])
