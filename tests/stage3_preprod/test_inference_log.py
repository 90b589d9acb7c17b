"""The inference log: one well-formed line per prediction, whatever the number of threads and processes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from common.schema import EXAMPLE_READING
from stage3_preprod import inference_log, logs_summary, report
from stage3_preprod.inference_log import COLUMNS, read_logs
from stage3_preprod.tour import port_to_use
from tests.conftest import TEST_VERSION

CLIENTS, REQUESTS = 20, 50


def scored(n: int, version: str = "1.0.0", decision: str = "Normal") -> pd.DataFrame:
    frame = pd.DataFrame([EXAMPLE_READING] * n).assign(equipment_id="pompe-01")
    return frame.assign(score=0.5, decision=decision, model_version=version)


def test_one_file_per_utc_day_and_the_header_once(tmp_path):
    inference_log.record(tmp_path, "api", "r1", scored(2), 1.0, datetime(2026, 1, 5, 23, 59, tzinfo=UTC))
    inference_log.record(tmp_path, "api", "r2", scored(1), 1.0, datetime(2026, 1, 5, 23, 59, 30, tzinfo=UTC))
    inference_log.record(tmp_path, "api", "r3", scored(1), 1.0, datetime(2026, 1, 6, 0, 0, 1, tzinfo=UTC))
    first = (tmp_path / "inferences-2026-01-05.csv").read_text().splitlines()
    assert first[0] == ";".join(COLUMNS) and len(first) == 4
    assert len((tmp_path / "inferences-2026-01-06.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize("equipment", ["pompe-01", 'atelier "nord"; pompe 2'])
def test_one_reading_gives_the_line_its_one_row_frame_gives(tmp_path, equipment):
    when = datetime(2026, 1, 5, 12, 0, 0, 123000, tzinfo=UTC)
    reading = {**EXAMPLE_READING, "equipment_id": equipment, "pressure": 1 / 3}
    result = {"score": 0.1 + 0.2, "decision": "Anomalie", "model_version": "1.2.0"}
    inference_log.record_reading(tmp_path / "one", "api", "r1", reading, result, 2.5, when)
    frame = pd.DataFrame([reading]).assign(**result)
    inference_log.record(tmp_path / "frame", "api", "r1", frame, 2.5, when)
    name = "inferences-2026-01-05.csv"
    assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "frame" / name).read_bytes()
    assert len(read_logs(tmp_path / "one")) == 1


@pytest.mark.slow
def test_concurrent_clients_against_two_workers_give_exactly_one_line_each(model_env, tmp_path):
    """And /metrics, in Prometheus's multiprocess mode, counts the requests of both workers together."""
    port = port_to_use(0)
    log_dir, shared = tmp_path / "logs", tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "LOG_DIR": str(log_dir), "LOG_LEVEL": "WARNING", "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    command = [sys.executable, "-m", "common.serve", "stage3_preprod.app:app", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "service not started"
            time.sleep(0.2)

        def client(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                for j in range(REQUESTS):
                    response = http.post("/predict", json=EXAMPLE_READING, headers={"X-Request-ID": f"c{i}-r{j}"})
                    assert response.status_code == 200

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(client, range(CLIENTS)))
        total = CLIENTS * REQUESTS
        for _ in range(6):  # whichever worker answers, it reports the counts of both
            scraped = httpx.get(f"{url}/metrics", timeout=10).text
            assert f'pompe_predictions_total{{model_version="{TEST_VERSION}"}} {float(total)}' in scraped
            assert f'pompe_requests_total{{route="POST /predict",status="200"}} {float(total)}' in scraped
        assert len(list(shared.glob("counter_*.db"))) == 2  # one file per worker
    finally:
        process.terminate()
        process.wait(timeout=20)
    (path,) = log_dir.glob("inferences-*.csv")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    assert rows[0] == list(COLUMNS) and rows.count(list(COLUMNS)) == 1
    lines = rows[1:]
    assert len(lines) == CLIENTS * REQUESTS
    assert all(len(line) == len(COLUMNS) for line in lines)
    assert sorted(line[1] for line in lines) == sorted(f"c{i}-r{j}" for i in range(CLIENTS) for j in range(REQUESTS))


def test_logs_summary_and_report_per_model_version(tmp_path, models_dir, monkeypatch, capsys):
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    inference_log.record(tmp_path, "api", "r1", scored(3), 2.0)
    inference_log.record(tmp_path, "stream", "r2", scored(1, decision="Anomalie"), 4.0)
    inference_log.record(tmp_path, "api", "r3", scored(4, version="1.1.0", decision="Anomalie"), 8.0)
    table = logs_summary.by_version(read_logs(tmp_path))
    assert table.loc["1.0.0", "predictions"] == 4 and table.loc["1.0.0", "anomaly_rate"] == 0.25
    assert table.loc["1.1.0", "anomaly_rate"] == 1.0 and table.loc["1.1.0", "latency_p50"] == 8.0
    assert logs_summary.main(["--logs", str(tmp_path)]) == 0
    assert "25.00 %" in capsys.readouterr().out
    output = tmp_path / "rapport.html"
    assert report.main(["--logs", str(tmp_path), "--output", str(output)]) == 0
    html = output.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3 and "http" not in html.replace("http-equiv", "")
    assert "Taux" in html or "taux" in html


def test_empty_log_is_said_in_french(tmp_path, capsys):
    assert logs_summary.main(["--logs", str(tmp_path)]) == 0
    assert "Journal des inférences vide" in capsys.readouterr().out


def test_lines_are_what_csv_writer_writes_on_tricky_values(tmp_path):
    when = datetime(2026, 1, 5, 12, 0, 0, 123000, tzinfo=UTC)
    tricky = [1e-7, 1e16, -0.0, 0.1 + 0.2, float(2**53 + 1), 1 / 3, 5e-324, 1.7976931348623157e308, 123456789.0]
    frame = pd.DataFrame([dict(zip(EXAMPLE_READING, tricky[i : i + 8], strict=True)) for i in range(2)])
    frame = frame.assign(equipment_id=["pompe-01", 'atelier "nord"; pompe 2'], score=tricky[-2:])
    frame = frame.assign(decision=["Normal", "Anomalie"], model_version="1.0.0")
    inference_log.record(tmp_path, "api_batch", "r;1", frame, 2.5, when)
    expected = io.StringIO()
    writer = csv.writer(expected, delimiter=";", lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in frame.itertuples(index=False):
        sensors = [float(getattr(row, name)) for name in EXAMPLE_READING]
        stamp = "2026-01-05T12:00:00.123+00:00"
        writer.writerow(
            [stamp, "r;1", "api_batch", row.equipment_id, "1.0.0", *sensors, row.score, row.decision, "2.500"]
        )
    assert (tmp_path / "inferences-2026-01-05.csv").read_text() == expected.getvalue()
