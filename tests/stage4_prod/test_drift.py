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

from common.model import AnomalyModel
from common.schema import SENSOR_NAMES
from common.simulator import simulate
from stage4_prod import drift

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


def test_reference_cdf_is_a_cdf_even_with_ties():
    q = [0.0] * 30 + list(np.linspace(0, 1, 71))
    cdf = drift.reference_cdf(q)
    x = np.linspace(-1, 2, 301)
    y = cdf(x)
    assert y[0] == 0 and y[-1] == 1 and np.all(np.diff(y) >= 0)
    assert cdf(0.0) == pytest.approx(0.30)  # the tie is a jump


def test_psi_is_small_on_the_reference_itself_and_large_on_a_shift(reference):
    q = np.asarray(reference["inputs"]["pressure"])
    sample = np.interp(np.random.default_rng(0).random(5000), np.linspace(0, 1, 101), q)
    assert drift.psi(sample, q) < 0.02
    assert drift.psi(sample + 0.08, q) > drift.PSI_ALERT
    assert np.isfinite(drift.psi(np.full(100, 1e6), q))  # every reading in one outer bin: epsilon keeps it finite
    statistic, p_value = drift.ks(sample, q)
    assert statistic < 0.03 and p_value > 0.01


def listcomp_cdf(percentiles):
    """The reference CDF as first written (one mask per distinct value): what ``reference_cdf`` must equal."""
    q = np.asarray(percentiles, dtype="float64")
    p = np.linspace(0.0, 1.0, len(q))
    values = np.unique(q)
    cum = np.array([p[q == v].max() for v in values])
    return lambda x: np.interp(x, values, cum, left=0.0, right=1.0)


def scipy_ks(observed, percentiles) -> tuple[float, float]:
    from scipy import stats

    result = stats.kstest(observed, listcomp_cdf(percentiles))
    return float(result.statistic), float(result.pvalue)


def windows_for_ks() -> dict[str, np.ndarray]:
    """Samples that take every branch of scipy's exact KS distribution: sizes 1 to 1,440, small and large gaps."""
    rng = np.random.default_rng(7)
    uniform = lambda n: rng.random(n)  # noqa: E731  (on the reference's scale: percentiles 0..1 below)
    return {
        "n=1": np.array([0.3]),
        "n=2": np.array([0.9, 0.1]),
        "n=5": uniform(5),
        "n=30": uniform(30),
        "n=100 shifted": uniform(100) * 0.9 + 0.1,
        "n=140": uniform(140),
        "n=500": uniform(500),
        "n=1440": uniform(1440),
        "n=1440 slightly shifted": uniform(1440) + 0.04,
        "n=1440 shifted": uniform(1440) + 0.3,
        "n=1440 normal": rng.normal(0.5, 0.15, 1440),
        "ties": np.round(uniform(1440), 1),
        "constant": np.full(1440, 0.5),
        "all above": np.full(700, 7.0),
        "all below": np.full(700, -7.0),
        "nan": np.array([0.2, np.nan, 0.5]),
        "empty": np.array([]),
    }


@pytest.mark.filterwarnings("ignore:One or more sample arguments is too small")  # scipy, on the empty sample
@pytest.mark.parametrize("percentiles", ["linear", "ties"])
def test_ks_gives_scipy_kstest_numbers(percentiles):
    """The numpy KS test against scipy's kstest (method auto) with the CDF as first written: same to 1e-12."""
    q = np.linspace(0, 1, 101) if percentiles == "linear" else np.concatenate([np.zeros(30), np.linspace(0, 1, 71)])
    for name, sample in windows_for_ks().items():
        expected = scipy_ks(sample, q)
        assert drift.ks(sample, q) == pytest.approx(expected, rel=1e-12, abs=0, nan_ok=True), name


def test_reference_cdf_and_psi_bins_are_those_first_written(reference):
    q = [0.0] * 30 + list(np.linspace(0, 1, 71)) + [1.0] * 5 + [2.0] * 3  # ties at both ends, 109 points
    x = np.linspace(-1, 3, 4001)
    assert np.array_equal(drift.reference_cdf(q)(x), listcomp_cdf(q)(x))
    for name in SENSOR_NAMES:
        q = np.asarray(reference["inputs"][name])
        inner, expected = drift.psi_bins(q)
        first = np.diff(np.concatenate([[0.0], listcomp_cdf(q)(np.unique(q[10:100:10])), [1.0]]))
        assert np.array_equal(inner, np.unique(q[10:100:10])) and np.array_equal(expected, np.clip(first, 1e-4, None))


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
        expected, actual = np.clip(expected, drift.EPSILON, None), np.clip(actual, drift.EPSILON, None)
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
    monitor = drift.DriftMonitor(reference, window=100, min_readings=10)
    values = np.arange(250 * 8, dtype=float).reshape(250, 8)
    monitor.observe(values[:150], [False] * 150)
    monitor.observe(values[150:], [True] * 100)
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
        "import sys, stage4_prod.app, stage4_prod.drift as d; "
        "assert 'scipy.stats' not in sys.modules, 'imported at startup'; "
        "d.warm_up().join(60); assert 'scipy.stats' in sys.modules; "
        "import numpy as np; print(d.ks(np.linspace(0, 1, 50), np.linspace(0, 1, 101))[0])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 0 <= float(done.stdout) < 0.1
