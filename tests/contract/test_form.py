"""The web page of stages 1 and 2: what a colleague sees when they type a reading or upload a file."""

from __future__ import annotations

import inspect
import io
import re
from html import escape, unescape

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from common.data import load_csv, write_csv
from common.schema import EXAMPLE_READING, SENSORS
from common.simulator import simulate
from tests.conftest import TEST_VERSION
from tests.contract.conftest import WITH_FORM, WITH_KEY, stage_client, stage_module

# A pump in trouble: bearing-side vibration x10, flow /3 against a pressure x20 (a closing valve),
# motor at 120 °C; every value is inside its plausible range.
DISTRESS = {
    **EXAMPLE_READING,
    "accelerometer1_rms": 0.27,
    "volume_flow_rate_rms": 10.0,
    "pressure": 1.1,
    "temperature": 120.0,
}


@pytest.fixture(params=WITH_FORM)
def stage(request) -> str:
    return request.param


@pytest.fixture
def client(stage, stage_env):
    with stage_client(stage) as client:
        yield client


@pytest.fixture(scope="module")
def valve_csv() -> bytes:
    """A SKAB-format file of a valve closing on the bench, as a colleague would upload it."""
    buffer = io.StringIO()
    write_csv(simulate("valve_closure", seed=123, hours=6), buffer)
    return buffer.getvalue().encode("utf-8")


def form(reading=EXAMPLE_READING, **changes: str) -> dict[str, str]:
    return {**{k: str(v) for k, v in reading.items()}, **changes}


def decision(html: str) -> str | None:
    found = re.search(r'id="decision">([^<]*)<', html)
    return found and found.group(1)


def errors(html: str) -> list[str]:
    """The messages of the page's error box (unescaped)."""
    box = re.search(r'class="box error" role="alert"><ul>(.*?)</ul>', html)
    return [unescape(m) for m in re.findall(r"<li>(.*?)</li>", box.group(1))] if box else []


def upload(client: TestClient, content: bytes, filename: str = "valve.csv"):
    return client.post("/fichier", files={"fichier": (filename, content, "text/csv")})


# ---- The form --------------------------------------------------------------------------------------


def test_form_shows_the_eight_sensors_labelled_in_french_and_prefilled(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="fr">' in html
    for s in SENSORS:
        assert f'<label for="{s.name}">{escape(s.label)} ({escape(s.unit)})</label>' in html
        assert f'name="{s.name}" type="number" step="any" value="{EXAMPLE_READING[s.name]:g}"' in html
    assert html.count('type="number" step="any"') == len(SENSORS)
    assert 'enctype="multipart/form-data"' in html and 'name="fichier"' in html
    assert "<script" not in html


def test_normal_reading_says_normal_with_score_threshold_and_model_version(client, stage, loaded_model):
    scoring = stage_module(stage, "scoring")
    response = client.post("/", data=form(equipment_id="pompe-07"))
    assert response.status_code == 200
    assert decision(response.text) == "Normal"
    expected = scoring.score_reading(loaded_model, EXAMPLE_READING)
    assert f"Score {expected['score']:.3f}" in response.text
    assert f"seuil d'alarme {loaded_model.model.threshold_:.3f}" in unescape(response.text)
    assert f"modèle {TEST_VERSION}" in response.text
    assert "équipement pompe-07" in response.text
    assert 'name="voltage" type="number" step="any" value="230"' in response.text  # typed values shown again


def test_reading_of_a_pump_in_distress_says_anomalie(client, stage, loaded_model):
    scoring = stage_module(stage, "scoring")
    assert scoring.score_reading(loaded_model, DISTRESS)["decision"] == scoring.ANOMALY, "premise: the model alarms"
    response = client.post("/", data=form(DISTRESS))
    assert response.status_code == 200
    assert decision(response.text) == "Anomalie"
    assert 'class="box anomalie"' in response.text


def test_french_decimal_comma_is_accepted(client):
    response = client.post("/", data=form(accelerometer1_rms="0,027", pressure=" 0,055 ", voltage="230,0"))
    assert response.status_code == 200
    assert decision(response.text) == "Normal"
    assert 'name="accelerometer1_rms" type="number" step="any" value="0.027"' in response.text
    assert 'name="pressure" type="number" step="any" value="0.055"' in response.text


def test_comma_values_are_scored_like_point_values(client):
    with_points = client.post("/", data=form(DISTRESS))
    with_commas = client.post("/", data={k: v.replace(".", ",") for k, v in form(DISTRESS).items()})
    score = re.compile(r"Score ([0-9.]+)")
    assert score.search(with_commas.text).group(1) == score.search(with_points.text).group(1)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("accelerometer1_rms", "abc", "« abc » n'est pas un nombre"),
        ("current", "", "valeur manquante"),
        ("pressure", "   ", "valeur manquante"),
        ("temperature", "nan", "valeur manquante (NaN)"),
        ("thermocouple", "inf", "valeur infinie refusée"),
        ("voltage", "-infinity", "valeur infinie refusée"),
        ("volume_flow_rate_rms", "1e400", "valeur infinie refusée"),
        ("accelerometer2_rms", "60", "60 g est hors de la plage plausible [0, 50] g"),
        ("temperature", "-41,5", "-41.5 °C est hors de la plage plausible [-40, 200] °C"),
    ],
)
def test_bad_value_gives_a_french_422_page_naming_the_field(client, name, value, reason):
    response = client.post("/", data=form(**{name: value}))
    assert response.status_code == 422
    label = next(s.label for s in SENSORS if s.name == name)
    assert errors(response.text) == [f"{label} ({name}) : {reason}"]
    assert f'id="{name}" name="{name}" type="number" step="any" value="{escape(value)}" aria-invalid="true"' in (
        response.text
    )
    assert response.text.count('aria-invalid="true"') == 1
    assert decision(response.text) is None
    assert "Traceback" not in response.text


def test_missing_field_is_named(client):
    data = form()
    del data["voltage"]
    response = client.post("/", data=data)
    assert response.status_code == 422
    assert errors(response.text) == ["Tension (voltage) : valeur manquante"]


def test_every_bad_field_is_reported_at_once(client):
    response = client.post("/", data=form(current="x", voltage="9000"))
    assert response.status_code == 422
    assert [m.split(" : ")[0] for m in errors(response.text)] == ["Courant moteur (current)", "Tension (voltage)"]


def test_too_long_equipment_id_is_refused(client):
    response = client.post("/", data=form(equipment_id="p" * 65))
    assert response.status_code == 422
    assert errors(response.text) == ["Identifiant de l'équipement (equipment_id) : 64 caractères au plus"]


def test_typed_text_is_escaped_in_the_page(client):
    response = client.post("/", data=form(equipment_id='<b>"pompe"</b>', current="<i>1</i>"))
    assert response.status_code == 422
    assert "<b>" not in response.text and "<i>" not in response.text
    assert "&lt;b&gt;&#34;pompe&#34;&lt;/b&gt;" in response.text  # Jinja2 autoescapes every value
    assert "« <i>1</i> » n'est pas un nombre" in errors(response.text)[0]


def test_scikit_learn_work_runs_in_plain_def_endpoints(stage):
    pages = stage_module(stage, "pages")
    # Stage 4's form hands its audit commit to a writer thread instead (tests/stage4_prod/test_app.py).
    blocking = (pages.score_upload, pages.show_form, pages.download) + (
        () if stage in WITH_KEY else (pages.score_form,)
    )
    for endpoint in blocking:
        assert not inspect.iscoroutinefunction(endpoint)


def test_model_is_loaded_once_at_startup(stage, stage_env, monkeypatch):
    if stage in WITH_KEY:
        pytest.skip("stage 4 follows the deployment pointer: tests/stage4_prod/test_deployment.py")
    scoring, calls = stage_module(stage, "scoring"), []

    def counting_load(settings):
        calls.append(settings.models_dir)
        return scoring.load(settings.model_version, settings.models_dir)

    monkeypatch.setattr(scoring, "load_model", counting_load)
    with stage_client(stage) as client:
        assert calls == [stage_env]
        for _ in range(3):
            assert client.post("/", data=form()).status_code == 200
    assert len(calls) == 1


# ---- Uploads ---------------------------------------------------------------------------------------


def test_upload_shows_summary_anomalies_and_offers_the_scored_file(client, stage, loaded_model, valve_csv):
    scoring = stage_module(stage, "scoring")
    response = upload(client, valve_csv)
    assert response.status_code == 200
    html = unescape(response.text)
    expected = scoring.score_file(loaded_model, valve_csv)
    n_alarms = int((expected["decision"] == scoring.ANOMALY).sum())
    assert n_alarms > 0
    assert f"360 mesures analysées avec le modèle {TEST_VERSION} : {n_alarms} anomalie(s)" in html
    assert "Première anomalie : " in html
    assert html.count("<tr><td>2026-01-05") == min(n_alarms, 50)
    first = expected[expected["decision"] == scoring.ANOMALY].iloc[0]
    row = f"<tr><td>{first['timestamp']}</td><td>{first['score']:.3f}</td><td>pompe-01</td>"
    assert row + f"<td>{first['accelerometer1_rms']:.4g}</td>" in html

    link = re.search(r'<a href="(/fichier/[^"]+)" download="valve_scores.csv">', response.text)
    assert link
    download = client.get(link.group(1))
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="valve_scores.csv"' in download.headers["content-disposition"]
    header = download.content.split(b"\r\n", 1)[0].decode()
    assert header.startswith("datetime;Accelerometer1RMS;Accelerometer2RMS;Current;")
    assert header.endswith(";score;decision")
    scored = load_csv(download.content)
    assert len(scored) == 360
    raw = pd.read_csv(io.BytesIO(download.content), sep=";")
    assert list(raw["decision"]) == list(expected["decision"])
    assert raw["score"].to_numpy() == pytest.approx(expected["score"].to_numpy())


def test_anomaly_table_is_capped(client, stage, valve_csv, monkeypatch):
    monkeypatch.setattr(stage_module(stage, "pages"), "MAX_ROWS_SHOWN", 3)
    response = upload(client, valve_csv)
    assert response.status_code == 200
    assert response.text.count("<tr><td>2026-01-05") == 3


def test_unknown_download_token_is_a_french_404(client):
    response = client.get("/fichier/inconnu")
    assert response.status_code == 404
    assert errors(response.text) == ["résultat introuvable ou expiré : renvoyez le fichier pour l'analyser à nouveau"]


def test_downloads_keep_only_the_latest_files(stage):
    downloads = stage_module(stage, "pages").Downloads(capacity=2)
    first, second, third = (downloads.add(f"{i}.csv", b"x") for i in range(3))
    assert downloads.get(first) is None
    assert downloads.get(second) == ("1.csv", b"x") and downloads.get(third) == ("2.csv", b"x")
    assert len({first, second, third}) == 3


def _set_cell(csv: bytes, line: int, column: int, value: bytes) -> bytes:
    """The file with one cell replaced (``line`` 0 is the header)."""
    lines = csv.split(b"\r\n")
    cells = lines[line].split(b";")
    cells[column] = value
    lines[line] = b";".join(cells)
    return b"\r\n".join(lines)


def _swap_rows(csv: bytes) -> bytes:
    lines = csv.split(b"\r\n")
    lines[2], lines[3] = lines[3], lines[2]
    return b"\r\n".join(lines)


BAD_FILES = {
    "vide": (lambda csv: b"", "fichier vide"),
    "en-tête seul": (lambda csv: csv.split(b"\r\n", 1)[0] + b"\r\n", "fichier vide"),
    "virgules": (lambda csv: csv.replace(b";", b","), "séparateur incorrect"),
    "colonne manquante": (lambda csv: _set_cell(csv, 0, 4, b"Pression"), "colonne manquante : « Pressure »"),
    "non numérique": (lambda csv: _set_cell(csv, 5, 3, b"douze"), "ligne 6, colonne « Current » : « douze »"),
    "non trié": (_swap_rows, "triées par date"),
    "pas UTF-8": (lambda csv: csv.decode().encode("utf-16"), "UTF-8"),
    "hors plage": (lambda csv: _set_cell(csv, 2, 1, b"99"), "ligne 3 : accelerometer1_rms : 99 g est hors de la plage"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_gives_a_french_422_page(client, valve_csv, case):
    make, reason = BAD_FILES[case]
    response = upload(client, make(valve_csv), filename="<script>x</script>.csv")
    assert response.status_code == 422
    [message] = errors(response.text)
    assert message.startswith("fichier « <script>x</script>.csv » refusé : ")
    assert reason in message
    assert "<script>" not in response.text
    assert "Traceback" not in response.text


def test_file_over_the_size_limit_gives_413(stage, stage_env, monkeypatch, valve_csv):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    with stage_client(stage) as client:
        response = upload(client, valve_csv[:5000])  # within the multipart margin of stage 2's body limit
        assert upload(client, valve_csv[:1000]).status_code == 422  # at the limit: read, then refused as CSV
    assert response.status_code == 413
    assert errors(response.text) == ["fichier « valve.csv » trop volumineux : 1000 octets au plus"]


def test_upload_without_a_file_gives_a_french_422(client):
    for kwargs in ({"data": {"autre": "x"}}, {"files": {"fichier": ("", b"", "application/octet-stream")}}):
        response = client.post("/fichier", **kwargs)
        assert response.status_code == 422
        assert errors(response.text) == [
            "aucun fichier reçu : choisissez un fichier CSV avant de cliquer sur « Analyser »"
        ]


def test_broken_multipart_gives_a_french_400(client):
    headers = {"content-type": "multipart/form-data; boundary=abc"}
    response = client.post("/fichier", content=b"pas du multipart", headers=headers)
    assert response.status_code == 400
    [message] = errors(response.text)
    assert message.startswith("requête mal formée")


def test_without_a_model_every_page_says_so_with_503(stage, stage_env, tmp_path, monkeypatch, valve_csv):
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "vide"))
    with stage_client(stage) as client:
        responses = [client.get("/"), client.post("/", data=form()), upload(client, valve_csv)]
    for response in responses:
        assert response.status_code == 503
        assert errors(response.text)[0] == "Aucun modèle : lancez make model, puis redémarrez ce service."
        assert "aucun modèle dans" in errors(response.text)[1]


def test_the_page_uses_one_stylesheet_served_as_a_static_file(client):
    html = client.get("/").text
    assert '<link rel="stylesheet" href="/static/style.css">' in html and "<style" not in html
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "input[aria-invalid=true]" in css.text


@pytest.mark.parametrize(("variable", "value"), [("PORT", "huit mille"), ("MAX_UPLOAD_BYTES", "20 Mo")])
def test_a_bad_setting_names_its_variable_in_french(stage, monkeypatch, variable, value):
    settings = stage_module(stage, "settings")
    monkeypatch.setenv(variable, value)
    with pytest.raises(settings.SettingsError) as error:
        settings.get_settings()
    assert (
        str(error.value) == f"variable d'environnement à corriger : {variable} : « {value} » n'est pas un nombre entier"
    )


def test_a_port_out_of_range_is_refused_naming_the_variable(stage, monkeypatch):
    settings = stage_module(stage, "settings")
    monkeypatch.setenv("PORT", "80000")
    with pytest.raises(settings.SettingsError, match="PORT : 80000 refusé : 65535 au plus"):
        settings.get_settings()
