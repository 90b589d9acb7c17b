"""Drift monitoring: a recalibrated sensor raises the alert, normal operation raises none."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.drift_stats import EPSILON
from common.model import AnomalyModel
from common.schema import SENSOR_NAMES
from common.simulator import simulate
from stage4_prod import drift
from tests.common.test_drift_stats import listcomp_cdf, scipy_ks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> AnomalyModel:
    """Trained like the default model: five simulated benches, three days each (seeds unused below)."""
    frame = pd.concat(
        [simulate("normal", seed=s, hours=72, equipment_id=f"pompe-{s}") for s in range(5)], ignore_index=True
    )
    return AnomalyModel().fit(frame)


@pytest.fixture(scope="module")
def reference(model) -> dict:
    return model.reference_


def test_report_gives_the_numbers_of_scipy_and_of_the_psi_formula(model, reference):
    """Each sensor's KS and p-value are scipy's kstest ones, its PSI the formula of the module doc."""
    frame = simulate("drift", seed=0, hours=48).iloc[-1440:]
    monitor = drift.DriftMonitor(reference)
    monitor.observe(frame, model.predict(frame))
    report = monitor.report(log=False)
    for name in SENSOR_NAMES:
        values, q = frame[name].to_numpy(), np.asarray(reference["inputs"][name])
        statistic, p_value = scipy_ks(values, q)
        inner = np.unique(q[10:100:10])
        expected = np.diff(np.concatenate([[0.0], listcomp_cdf(q)(inner), [1.0]]))
        actual = np.bincount(np.searchsorted(inner, values), minlength=len(inner) + 1) / len(values)
        expected, actual = np.clip(expected, EPSILON, None), np.clip(actual, EPSILON, None)
        psi = float(np.sum((actual - expected) * np.log(actual / expected)))
        assert report["sensors"][name] == {
            "psi": round(psi, 4),
            "ks": round(statistic, 4),
            "ks_p_value": pytest.approx(p_value, rel=1e-12, abs=0),
            "status": drift.psi_status(psi),
        }, name


def test_readings_one_by_one_fill_the_window_as_a_frame_does(reference):
    frame = simulate("normal", seed=11, hours=10).iloc[:550]
    decisions = ["Anomalie" if i % 50 == 0 else "Normal" for i in range(len(frame))]
    by_frame, one_by_one = drift.DriftMonitor(reference, window=500), drift.DriftMonitor(reference, window=500)
    by_frame.observe(frame, decisions)
    for reading, decision in zip(frame.to_dict("records"), decisions, strict=True):
        one_by_one.observe([reading], [decision])
    (values, alarms, seen), (expected_values, expected_alarms, expected_seen) = (
        one_by_one._snapshot(),
        by_frame._snapshot(),
    )
    assert seen == expected_seen == 550 and len(values) == 500 and alarms.sum() == expected_alarms.sum() == 10
    assert np.array_equal(np.sort(values, axis=0), np.sort(expected_values, axis=0))  # in another order in the ring
    assert one_by_one.report(log=False) == by_frame.report(log=False)


def test_the_automatic_checks_log_status_changes_without_the_ks_test(reference, caplog, monkeypatch):
    """The check that one request in ``check_every`` runs: PSI and alarm-rate statuses only (KS p-values cost ms)."""

    def no_ks(*args):
        raise AssertionError("KS test on the request path")

    monkeypatch.setattr(drift, "ks_rows", no_ks)
    caplog.set_level(logging.INFO, logger="stage4_prod.drift")
    sensor, frame = drift.drift_windows(n_series=1)[0]
    before = simulate("normal", seed=321, hours=24)
    monitor = drift.DriftMonitor(reference, model_version="1.0.0")
    monitor.observe(before, [False] * len(before))  # a full window: the next changes are logged
    for reading in frame.to_dict("records"):
        monitor.observe([reading], ["Normal"])
    assert any(
        line.startswith(f"dérive détectée : {sensor} passe de ") and " à alerte (PSI " in line
        for line in caplog.messages
    ), caplog.text


def test_too_few_readings_say_so(reference):
    monitor = drift.DriftMonitor(reference, window=1440)
    monitor.observe(simulate("normal", seed=500, hours=5), [False] * 300)
    report = monitor.report()
    assert report["status"] == drift.TOO_FEW and report["readings_in_window"] == 300
    assert report["sensors"]["pressure"]["psi"] is None


def test_window_slides(reference):
    monitor = drift.DriftMonitor(reference, window=100)
    values = np.arange(250 * 8, dtype=float).reshape(250, 8)
    frame = pd.DataFrame(values, columns=list(SENSOR_NAMES))
    monitor.observe(frame.iloc[:150], [False] * 150)
    monitor.observe(frame.iloc[150:], [True] * 100)
    kept, alarms, seen = monitor._snapshot()
    assert seen == 250 and len(kept) == 100 and alarms.all()
    assert sorted(kept[:, 0]) == list(values[150:, 0])


def test_drift_scenario_raises_the_alert_on_the_recalibrated_sensor_only(reference, caplog):
    caplog.set_level(logging.INFO, logger="stage4_prod.drift")
    cases = drift.drift_windows(n_series=8)
    assert {sensor for sensor, _ in cases} == {"thermocouple", "pressure"}
    for sensor, frame in cases:
        monitor = drift.DriftMonitor(reference, model_version="1.0.0")
        monitor.observe(frame, [False] * len(frame))  # the automatic evaluations log the change
        report = monitor.report()
        assert report["status"] == drift.ALERT
        assert report["sensors"][sensor]["status"] == drift.ALERT, sensor
        assert [n for n, s in report["sensors"].items() if s["status"] == drift.ALERT] == [sensor]
        assert f"dérive détectée : {sensor} passe de ok à alerte" in caplog.text


def test_drift_is_detected_in_a_live_stream_soon_after_the_recalibration(reference):
    sensor, frame = drift.drift_windows(n_series=1, window=1440)[0]
    normal = simulate("normal", seed=0, hours=frame.shape[0] / 60 * 3)
    onset = int(np.argmax(frame[sensor].to_numpy() != normal[sensor].to_numpy()[-len(frame) :]))
    before = simulate("normal", seed=321, hours=24)
    monitor = drift.DriftMonitor(reference)
    monitor.observe(before, [False] * len(before))
    assert monitor.report(log=False)["status"] != drift.ALERT
    first_alert = None
    for start in range(0, len(frame), 60):  # an hour of readings at a time
        chunk = frame.iloc[start : start + 60]
        monitor.observe(chunk, [False] * len(chunk))
        if monitor.report(log=False)["sensors"][sensor]["status"] == drift.ALERT:
            first_alert = start + len(chunk)
            break
    assert first_alert is not None and first_alert - onset < 1440


def test_normal_operation_raises_no_alert_over_200_windows(model, reference):
    result = drift.false_alarm_rate(reference, n_windows=200, model=model)
    print(
        f"\nfalse alerts on normal data: {100 * result['alert_rate']:.1f} % of {result['windows']} windows "
        f"(warnings {100 * result['warn_rate']:.1f} %, max PSI {result['max_psi']:.3f}, "
        f"max alarm rate {100 * result['max_alarm_rate']:.2f} %)"
    )
    assert result["alert_rate"] == 0.0
    assert result["max_psi"] < drift.PSI_ALERT
    assert result["warn_rate"] < 0.2


def test_alarm_rate_rule(reference):
    monitor = drift.DriftMonitor(reference)
    expected = reference["alarm_rate"]
    n = 1440
    assert monitor.alarm_rate_check(int(2 * expected * n) + 1, n)["status"] == drift.OK
    assert monitor.alarm_rate_check(int(7 * expected * n), n)["status"] == drift.WARN
    assert monitor.alarm_rate_check(int(20 * expected * n), n)["status"] == drift.ALERT
    assert monitor.alarm_rate_check(drift.MIN_ALARMS - 1, 100)["status"] == drift.OK  # too few alarms to judge


def test_a_fault_raises_the_alarm_rate_alert(model, reference):
    frame = simulate("cavitation", seed=77, hours=48).iloc[-1440:]
    monitor = drift.DriftMonitor(reference)
    monitor.observe(frame, model.predict(frame))
    report = monitor.report()
    assert report["alarm_rate"]["status"] == drift.ALERT and report["status"] == drift.ALERT


def test_observe_is_thread_safe(reference):
    monitor = drift.DriftMonitor(reference, window=100_000, check_every=10**9)
    rows = [dict(zip(SENSOR_NAMES, np.ones(8), strict=True))] * 10

    def feed() -> None:
        for _ in range(200):
            monitor.observe(rows, ["Anomalie"] * 10)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, alarms, seen = monitor._snapshot()
    assert seen == 8000 and len(alarms) == 8000 and alarms.all()


def test_report_is_json(reference):
    import json

    monitor = drift.DriftMonitor(reference, window=600)
    frame = simulate("normal", seed=9, hours=12)
    monitor.observe(frame, ["Normal"] * len(frame))
    assert json.loads(json.dumps(monitor.report()))["status"] in (drift.OK, drift.WARN, drift.ALERT)


def test_the_service_imports_scipy_only_in_the_background_after_startup():
    """Importing scipy's statistics takes over a second: not on the way to the first /health."""
    code = (
        "import sys, stage4_prod.app, common.drift_stats as d; "
        "assert 'scipy.stats' not in sys.modules, 'imported at startup'; "
        "d.warm_up().join(60); assert 'scipy.stats' in sys.modules; "
        "import numpy as np; print(d.ks(np.linspace(0, 1, 50), np.linspace(0, 1, 101))[0])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 0 <= float(done.stdout) < 0.1
