"""The decision rule, in every stage and every path: "Anomalie" exactly when the score is above
the threshold stored with the model (metadata.json), over readings on both sides of it.

A stage that moved its threshold (times 1.2, say) or compared with ``>=`` would fail here:
the readings include scores just above the stored threshold and below 1.2 times it.
"""

from __future__ import annotations

import io
import json
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest

from common.data import write_csv
from common.schema import EXAMPLE_READING
from common.simulator import simulate
from tests.conftest import TEST_VERSION
from tests.contract.conftest import WITH_BATCH, WITH_FORM, stage_client, stage_module

N_READINGS = 60  # seeded: the example reading, shaken harder and harder (2 % to 32 % noise per sensor)


@pytest.fixture(scope="module")
def stored_threshold(models_dir) -> float:
    return json.loads((models_dir / TEST_VERSION / "metadata.json").read_text())["threshold"]


@pytest.fixture(scope="module")
def readings(loaded_model, stored_threshold) -> list[tuple[dict[str, float], float]]:
    """(reading, its score by the model itself), on both sides of the threshold and close above it."""
    rng, made = np.random.default_rng(7), []
    for i in range(N_READINGS):
        sigma = 0.02 + 0.3 * i / N_READINGS
        reading = {n: round(abs(v * (1 + rng.normal(0, sigma))), 6) for n, v in EXAMPLE_READING.items()}
        made.append((reading, loaded_model.model.score_reading(reading)))
    scores = np.array([s for _, s in made])
    assert (scores <= stored_threshold).sum() >= 5 and (scores > stored_threshold).sum() >= 5, "premise: both sides"
    assert ((scores > stored_threshold) & (scores <= 1.2 * stored_threshold)).any(), "premise: just above"
    return made


def expected(score: float, threshold: float) -> str:
    return "Anomalie" if score > threshold else "Normal"


@pytest.fixture(scope="module")
def scenario_csv() -> bytes:
    """A file whose rows fall on both sides of the threshold (a valve closing on the bench)."""
    buffer = io.StringIO()
    write_csv(simulate("valve_closure", seed=123, hours=6), buffer)
    return buffer.getvalue().encode("utf-8")


def assert_rule_holds_on_scored_file(content: bytes, stored_threshold: float) -> None:
    scored = pd.read_csv(io.BytesIO(content), sep=";")
    above = scored["score"] > stored_threshold
    assert above.any() and (~above).any(), "premise: both sides"
    assert ((scored["score"] > stored_threshold) & (scored["score"] <= 1.2 * stored_threshold)).any()
    assert (scored["decision"] == np.where(above, "Anomalie", "Normal")).all()


def test_the_form_applies_the_stored_threshold(form_stage, readings, stored_threshold):
    _, client = form_stage
    for reading, score in readings:
        html = unescape(client.post("/", data={k: repr(v) for k, v in reading.items()}).text)
        assert re.search(r'id="decision">([^<]*)<', html).group(1) == expected(score, stored_threshold), reading
        assert f"Score {score:.3f} (seuil d'alarme {stored_threshold:.3f}" in html


def test_a_file_sent_from_the_form_applies_the_stored_threshold(form_stage, scenario_csv, stored_threshold):
    _, client = form_stage
    page = client.post("/fichier", files={"fichier": ("vanne.csv", scenario_csv, "text/csv")}).text
    link = re.search(r'<a href="(/fichier/[^"]+)"', page).group(1)
    assert_rule_holds_on_scored_file(client.get(link).content, stored_threshold)


@pytest.mark.parametrize("stage", WITH_FORM)
def test_the_command_line_applies_the_stored_threshold(stage, stage_env, readings, stored_threshold, capsys):
    predict = stage_module(stage, "predict")
    for reading, score in readings[::2]:
        args = [arg for name, v in reading.items() for arg in ("--" + name.replace("_", "-"), repr(v))]
        assert predict.main(args) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"Décision : {expected(score, stored_threshold)} (score {score:.3f}, "), out


@pytest.mark.parametrize("stage", WITH_FORM)
def test_a_file_scored_on_the_command_line_applies_the_stored_threshold(
    stage, stage_env, scenario_csv, stored_threshold, tmp_path, capsys
):
    source = tmp_path / "vanne.csv"
    source.write_bytes(scenario_csv)
    assert stage_module(stage, "predict").main([str(source)]) == 0
    assert_rule_holds_on_scored_file((tmp_path / "vanne_scores.csv").read_bytes(), stored_threshold)


def test_the_api_applies_the_stored_threshold(api_stage, readings, stored_threshold):
    _, client = api_stage
    for reading, score in readings:
        body = client.post("/predict", json=reading).json()
        assert body["score"] == score and body["threshold"] == stored_threshold
        assert body["decision"] == expected(score, stored_threshold), body


# ---- Stage 3 on: a batch, a CSV file sent to the API, the stream ---------------------------------------


@pytest.fixture(params=WITH_BATCH)
def batch_client(request, stage_env):
    with stage_client(request.param) as client:
        yield client


def alone(readings: list[tuple[dict[str, float], float]]) -> list[dict]:
    """Each reading under its own equipment: scored with no history, so with the score the model gives it alone."""
    return [{**reading, "equipment_id": f"pompe-{i:03d}"} for i, (reading, _) in enumerate(readings)]


def test_a_batch_applies_the_stored_threshold(batch_client, readings, stored_threshold):
    body = batch_client.post("/predict/batch", json=alone(readings)).json()
    assert body["threshold"] == stored_threshold and body["scored"] == len(readings)
    for item, (_, score) in zip(body["results"], readings, strict=True):
        assert item["score"] == pytest.approx(score, rel=1e-12)
        assert item["decision"] == expected(item["score"], stored_threshold), item
    assert body["anomalies"] == sum(score > stored_threshold for _, score in readings)


def test_a_csv_file_sent_to_the_api_applies_the_stored_threshold(batch_client, scenario_csv, stored_threshold):
    body = batch_client.post("/predict/csv", files={"fichier": ("vanne.csv", scenario_csv, "text/csv")}).json()
    scores = np.array([row["score"] for row in body["results"]])
    assert body["threshold"] == stored_threshold
    assert (scores > stored_threshold).any() and (scores <= stored_threshold).any(), "premise: both sides"
    assert ((scores > stored_threshold) & (scores <= 1.2 * stored_threshold)).any(), "premise: just above"
    assert [row["decision"] for row in body["results"]] == [expected(s, stored_threshold) for s in scores]


def test_the_stream_applies_the_stored_threshold(batch_client, readings, stored_threshold):
    with batch_client.websocket_connect("/stream") as ws:
        for message, (_, score) in zip(alone(readings), readings, strict=True):
            ws.send_text(json.dumps(message))
            answer = ws.receive_json()
            assert answer["score"] == pytest.approx(score, rel=1e-12) and answer["threshold"] == stored_threshold
            assert answer["decision"] == expected(answer["score"], stored_threshold), answer
