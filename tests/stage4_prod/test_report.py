"""The HTML report: drift of the inputs (PSI per window), time axes that span the log, latency per call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from common import plots
from common.simulator import simulate
from stage4_prod import drift, inference_log, report


def log_series(directory, frame, loaded, start: datetime) -> None:
    scored = frame.assign(score=0.5, decision="Normal", model_version=loaded.version)
    for i in range(0, len(scored), 120):  # one logged call per 120 readings, two minutes apart
        inference_log.record(
            directory, "stream", f"r{i}", scored.iloc[i : i + 120], 1.0, start + timedelta(minutes=2 * i)
        )


def test_drift_windows_stand_out_and_the_report_shows_four_plots(tmp_path, models_dir, loaded_model, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    start = datetime(2026, 1, 5, tzinfo=UTC)
    log_series(tmp_path, simulate("normal", seed=500, hours=24), loaded_model, start)
    shifted, same = simulate("drift", seed=501, hours=96), simulate("normal", seed=501, hours=96)
    sensor = (shifted[["thermocouple", "pressure"]] - same[["thermocouple", "pressure"]]).abs().sum().idxmax()
    drifted = shifted[shifted["fault"] == "drift"].iloc[-drift.WINDOW :]
    assert len(drifted) >= drift.MIN_READINGS
    log_series(tmp_path, drifted, loaded_model, start + timedelta(days=3))
    version, table = report.drift_series(inference_log.read_logs(tmp_path), models_dir)
    assert version == loaded_model.version and len(table) == 2
    assert table[sensor].iloc[0] < drift.PSI_ALERT <= table[sensor].iloc[1]
    output = tmp_path / "rapport.html"
    assert report.main(["--logs", str(tmp_path), "--output", str(output)]) == 0
    html = output.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 4 and 'alt="dérive des entrées"' in html


def test_short_log_says_drift_cannot_be_judged(tmp_path, models_dir, loaded_model, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    log_series(tmp_path, simulate("normal", seed=502, hours=2), loaded_model, datetime(2026, 1, 5, tzinfo=UTC))
    assert report.drift_series(inference_log.read_logs(tmp_path), models_dir) is None
    output = tmp_path / "rapport.html"
    assert report.main(["--logs", str(tmp_path), "--output", str(output)]) == 0
    html = output.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3 and "journal trop court" in html


# ---- Time axes and latency, on day one and after a week -------------------------------------------

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def readings(n: int, seed: int, version: str) -> pd.DataFrame:
    """``n`` simulated readings, scored as the service logs them."""
    frame = simulate("normal", seed=seed, hours=n / 60 + 1).iloc[:n]
    return frame.assign(score=0.5, decision="Normal", model_version=version)


def one_minute(directory, version: str) -> None:
    """The guided tour's minute: 30 single readings (2 s apart, 1 to 3 ms each) then a batch job of
    three chunks of 600 readings (800, 900, 1,000 ms each)."""
    singles = readings(30, 600, version)
    for i in range(30):
        source = "api" if i % 2 else "stream"
        latency = 1.0 + i % 3
        inference_log.record(directory, source, f"r{i}", singles.iloc[[i]], latency, START + timedelta(seconds=2 * i))
    batch = readings(1800, 601, version)
    for chunk, latency in enumerate((800.0, 900.0, 1000.0)):
        rows = batch.iloc[600 * chunk : 600 * (chunk + 1)]
        when = START + timedelta(seconds=59, milliseconds=200 * chunk)
        inference_log.record(directory, "batch_cli", "lot-1", rows, latency, when)


def one_week(directory, version: str) -> None:
    """A week of service: a stream reading every 10 minutes (2 ms), a nightly batch of 500 readings (700 ms)."""
    stream = readings(7 * 144, 602, version)
    for i in range(len(stream)):
        inference_log.record(directory, "stream", f"s{i}", stream.iloc[[i]], 2.0, START + timedelta(minutes=10 * i))
    nightly = readings(7 * 500, 603, version)
    for day in range(7):
        when = START + timedelta(days=day, hours=17)
        inference_log.record(
            directory, "batch_cli", f"lot-{day}", nightly.iloc[500 * day : 500 * (day + 1)], 700.0, when
        )


def x_range(ax) -> tuple[datetime, datetime]:
    low, high = ax.get_xlim()
    return mdates.num2date(low), mdates.num2date(high)


def tick_labels(figure, ax) -> list[str]:
    figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(seconds=59), "1s"),
        (timedelta(minutes=5), "10s"),
        (timedelta(minutes=90), "1min"),
        (timedelta(hours=12), "10min"),
        (timedelta(days=1), "1h"),
        (timedelta(days=7), "6h"),
        (timedelta(days=29), "1D"),
        (timedelta(days=365), "7D"),
    ],
)
def test_the_time_step_follows_the_span_of_the_log(span, step):
    assert report.bucket(pd.Series([pd.Timestamp(START), pd.Timestamp(START + span)])) == step


def test_one_minute_of_logs_is_read_per_second_on_an_axis_of_one_minute(tmp_path, models_dir, loaded_model):
    one_minute(tmp_path, loaded_model.version)
    logs = inference_log.read_logs(tmp_path)
    end = START + timedelta(seconds=59, milliseconds=400)
    step = report.bucket(logs["time"])
    assert step == "1s"
    figures = {
        "taux": report.anomaly_rate_figure(logs, step),
        "latence": report.latency_figure(report.calls(logs), step),
        "dérive": report.drift_figure(logs, models_dir, step),
    }
    for name, figure in figures.items():
        ax = figure.axes[-1]
        low, high = x_range(ax)
        assert START - timedelta(seconds=3) <= low <= START and end <= high <= end + timedelta(seconds=3), name
        labels = tick_labels(figure, ax)
        assert len(labels) >= 3 and len(set(labels)) == len(labels), (name, labels)
        assert all(":" in label and "." not in label for label in labels), (name, labels)
        assert "un seul intervalle" not in ax.get_xlabel()


def test_a_batch_scored_in_one_second_is_shown_as_one_interval(tmp_path, models_dir, loaded_model):
    batch = readings(3000, 604, loaded_model.version)
    for chunk in range(3):  # a batch job of three chunks within 600 ms, as make batch after the tour
        when = START + timedelta(milliseconds=100 + 200 * chunk)
        inference_log.record(tmp_path, "batch_cli", "lot-1", batch.iloc[1000 * chunk : 1000 * (chunk + 1)], 300.0, when)
    logs = inference_log.read_logs(tmp_path)
    step = report.bucket(logs["time"])
    figure = report.anomaly_rate_figure(logs, step)
    ax = figure.axes[0]
    low, high = x_range(ax)
    assert START - timedelta(seconds=3) <= low and high <= START + timedelta(seconds=4)
    assert "un seul intervalle : 2026-01-05 10:00:00" in ax.get_xlabel()
    labels = tick_labels(figure, ax)
    assert len(labels) >= 3 and len(set(labels)) == len(labels) and all("." not in label for label in labels), labels
    drift_ax = report.drift_figure(logs, models_dir, step).axes[0]
    assert list(drift_ax.get_xticks()) == [1, 2]  # windows numbered, since time cannot order them
    assert "même intervalle" in drift_ax.get_xlabel()


def test_one_week_of_logs_is_read_per_six_hours_on_an_axis_of_one_week(tmp_path, models_dir, loaded_model):
    one_week(tmp_path, loaded_model.version)
    logs = inference_log.read_logs(tmp_path)
    end = logs["time"].max()
    step = report.bucket(logs["time"])
    assert step == "6h" and end - START > timedelta(days=6, hours=23)
    for figure in (
        report.anomaly_rate_figure(logs, step),
        report.latency_figure(report.calls(logs), step),
        report.drift_figure(logs, models_dir, step),
    ):
        ax = figure.axes[-1]
        low, high = x_range(ax)
        assert START - timedelta(days=1) <= low <= START and end <= high <= end + timedelta(days=1)
        labels = tick_labels(figure, ax)
        assert len(labels) >= 3 and all("/" in label for label in labels), labels  # days, as 06/01


def test_latency_is_per_call_and_single_readings_apart_from_batches(tmp_path, loaded_model):
    one_minute(tmp_path, loaded_model.version)
    logs = inference_log.read_logs(tmp_path)
    calls = report.calls(logs)
    table = report.latency_table(calls).loc[loaded_model.version]
    assert table.loc[plots.SINGLE, "calls"] == 30 and table.loc[plots.SINGLE, "readings"] == 30
    assert table.loc[plots.BATCH, "calls"] == 3 and table.loc[plots.BATCH, "readings"] == 1800
    assert table.loc[plots.SINGLE, "latency_p50"] == 2.0 and table.loc[plots.SINGLE, "latency_p95"] == 3.0
    assert table.loc[plots.BATCH, "latency_p50"] == 900.0  # per chunk, not per line (each chunk weighs 1)
    single_ax, batch_ax = report.latency_figure(calls, "1s").axes  # p50 then p95 in each panel
    assert [np.nanmax(line.get_ydata()) for line in single_ax.get_lines()] == [3.0, 3.0]
    assert [np.nanmax(line.get_ydata()) for line in batch_ax.get_lines()] == [900.0, 990.0]  # the 3 chunks, 1 s


def test_the_page_shows_latency_per_single_reading_and_per_batch(tmp_path, models_dir, loaded_model, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    one_minute(tmp_path, loaded_model.version)
    output = tmp_path / "rapport.html"
    assert report.main(["--logs", str(tmp_path), "--output", str(output)]) == 0
    html = output.read_text(encoding="utf-8")
    assert f"<td>{loaded_model.version}</td><td>lot</td><td>3</td><td>1800</td><td>900.00</td>" in html
    assert f"<td>{loaded_model.version}</td><td>mesure seule</td><td>30</td><td>30</td><td>2.00</td>" in html
