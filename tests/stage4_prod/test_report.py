"""The HTML report adds the drift of the inputs (PSI per window) to stage 3's plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
