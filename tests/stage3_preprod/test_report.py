"""The HTML report: time axes that span the log, a minute or a week, and latency per call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from common import plots
from common.simulator import simulate
from stage3_preprod import inference_log, report

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def readings(n: int, seed: int) -> pd.DataFrame:
    """``n`` simulated readings, scored as the service logs them."""
    frame = simulate("normal", seed=seed, hours=n / 60 + 1).iloc[:n]
    return frame.assign(score=0.5, decision="Normal", model_version="1.0.0")


def one_minute(directory) -> None:
    """30 single readings (2 s apart, 1 to 3 ms each) then a batch job of three chunks of 600
    readings (800, 900, 1,000 ms each)."""
    singles = readings(30, 700)
    for i in range(30):
        source = "api" if i % 2 else "stream"
        latency = 1.0 + i % 3
        inference_log.record(directory, source, f"r{i}", singles.iloc[[i]], latency, START + timedelta(seconds=2 * i))
    batch = readings(1800, 701)
    for chunk, latency in enumerate((800.0, 900.0, 1000.0)):
        rows = batch.iloc[600 * chunk : 600 * (chunk + 1)]
        when = START + timedelta(seconds=59, milliseconds=200 * chunk)
        inference_log.record(directory, "batch_cli", "lot-1", rows, latency, when)


def x_range(ax) -> tuple[datetime, datetime]:
    low, high = ax.get_xlim()
    return mdates.num2date(low), mdates.num2date(high)


def tick_labels(figure, ax) -> list[str]:
    figure.canvas.draw()
    return [t.get_text() for t in ax.get_xticklabels() if t.get_text()]


def test_one_minute_of_logs_is_read_per_second_on_an_axis_of_one_minute(tmp_path):
    one_minute(tmp_path)
    logs = inference_log.read_logs(tmp_path)
    end = START + timedelta(seconds=59, milliseconds=400)
    step = report.bucket(logs["time"])
    assert step == "1s"
    for figure in (report.anomaly_rate_figure(logs, step), report.latency_figure(report.calls(logs), step)):
        ax = figure.axes[-1]
        low, high = x_range(ax)
        assert START - timedelta(seconds=3) <= low <= START and end <= high <= end + timedelta(seconds=3)
        labels = tick_labels(figure, ax)
        assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
        assert all(":" in label and "." not in label for label in labels), labels


def test_a_batch_scored_in_one_second_is_shown_as_one_interval(tmp_path):
    inference_log.record(
        tmp_path, "batch_cli", "lot-1", readings(1000, 702), 300.0, START + timedelta(milliseconds=300)
    )
    logs = inference_log.read_logs(tmp_path)
    figure = report.anomaly_rate_figure(logs, report.bucket(logs["time"]))
    ax = figure.axes[0]
    low, high = x_range(ax)
    assert START - timedelta(seconds=3) <= low and high <= START + timedelta(seconds=4)
    assert "un seul intervalle : 2026-01-05 10:00:00" in ax.get_xlabel()
    labels = tick_labels(figure, ax)
    assert len(labels) >= 3 and len(set(labels)) == len(labels) and all("." not in label for label in labels), labels


def test_one_week_of_logs_is_read_per_six_hours_on_an_axis_of_one_week(tmp_path):
    stream = readings(7 * 144, 703)  # a reading every 10 minutes for a week, and a batch each evening
    for i in range(len(stream)):
        inference_log.record(tmp_path, "stream", f"s{i}", stream.iloc[[i]], 2.0, START + timedelta(minutes=10 * i))
    for day in range(7):
        inference_log.record(
            tmp_path, "batch_cli", f"lot-{day}", readings(100, day), 700.0, START + timedelta(days=day, hours=17)
        )
    logs = inference_log.read_logs(tmp_path)
    end = logs["time"].max()
    step = report.bucket(logs["time"])
    assert step == "6h" and end - START > timedelta(days=6, hours=23)
    for figure in (report.anomaly_rate_figure(logs, step), report.latency_figure(report.calls(logs), step)):
        ax = figure.axes[-1]
        low, high = x_range(ax)
        assert START - timedelta(days=1) <= low <= START and end <= high <= end + timedelta(days=1)
        labels = tick_labels(figure, ax)
        assert len(labels) >= 3 and all("/" in label for label in labels), labels  # days, as 06/01


def test_latency_is_per_call_and_single_readings_apart_from_batches(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    one_minute(tmp_path)
    calls = report.calls(inference_log.read_logs(tmp_path))
    table = report.latency_table(calls).loc["1.0.0"]
    assert table.loc[plots.SINGLE, "calls"] == 30 and table.loc[plots.SINGLE, "readings"] == 30
    assert table.loc[plots.BATCH, "calls"] == 3 and table.loc[plots.BATCH, "readings"] == 1800
    assert table.loc[plots.SINGLE, "latency_p50"] == 2.0 and table.loc[plots.SINGLE, "latency_p95"] == 3.0
    assert table.loc[plots.BATCH, "latency_p50"] == 900.0  # per chunk, not per line (each chunk weighs 1)
    single_ax, batch_ax = report.latency_figure(calls, "1s").axes  # p50 then p95 in each panel
    assert [np.nanmax(line.get_ydata()) for line in single_ax.get_lines()] == [3.0, 3.0]
    assert [np.nanmax(line.get_ydata()) for line in batch_ax.get_lines()] == [900.0, 990.0]  # the 3 chunks, 1 s
    output = tmp_path / "rapport.html"
    assert report.main(["--logs", str(tmp_path), "--output", str(output)]) == 0
    html = output.read_text(encoding="utf-8")
    assert "<td>1.0.0</td><td>lot</td><td>3</td><td>1800</td><td>900.00</td>" in html
    assert "<td>1.0.0</td><td>mesure seule</td><td>30</td><td>30</td><td>2.00</td>" in html
