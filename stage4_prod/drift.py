"""Drift of the recent inputs against the training reference saved with the model.

For each of the eight sensors, a sliding window of the last readings is compared with
``reference["inputs"]`` (101 percentiles of the raw training values):

* PSI (population stability index) on ten bins cut at the training deciles, the outer
  two open-ended; an empty bin counts as ``EPSILON`` so that the logarithm stays finite.
* KS: the Kolmogorov-Smirnov statistic against the reference CDF rebuilt from the 101
  percentiles, with the numbers of ``scipy.stats.kstest``. Shown for information only:
  its p-value assumes independent readings, and consecutive readings of a pump are not.
* Alarm rate: the window's share of ``Anomalie`` against ``reference["alarm_rate"]``, a
  ratio rule (``RATE_WARN``, ``RATE_ALERT``, at least ``MIN_ALARMS``): alarms come in
  bursts, so a binomial test would cry wolf.

The thresholds (PSI 0.5 and 1.5 rather than the textbook 0.1 and 0.25, a window of a day)
come from ``calibrate`` on simulated normal and drifting days: docs/decisions.md gives
the figures and the command. Status changes are logged (``logger.warning``) with stable
French messages, so that a log watcher can grep for ``dérive détectée``.

    python -m stage4_prod.drift calibrate [--version 1.0.0] [--windows 200]
"""

from __future__ import annotations

import argparse
import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from common.decision import ANOMALY  # the decision that counts as an alarm
from common.schema import SENSOR_NAMES

logger = logging.getLogger(__name__)

WINDOW = 1440  # readings: one day of one bench at one reading per minute
MIN_READINGS = 500  # below this many readings the window is too short to judge
PSI_WARN = 0.5
PSI_ALERT = 1.5
EPSILON = 1e-4  # share given to an empty bin
RATE_WARN = 5.0  # times the expected alarm rate
RATE_ALERT = 10.0
MIN_ALARMS = 10
CHECK_EVERY = 100  # readings between two automatic evaluations (which log status changes)
OK, WARN, ALERT, TOO_FEW = "ok", "attention", "alerte", "insuffisant"
SEVERITY = {TOO_FEW: 0, OK: 0, WARN: 1, ALERT: 2}


def cdf_knots(percentiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The knots of ``reference_cdf``: the distinct percentile values and the CDF at each.

    A value repeated over several percentiles gets the largest of their shares (right-continuous).
    """
    q = np.asarray(percentiles, dtype="float64")
    p = np.linspace(0.0, 1.0, len(q))
    values, rank = np.unique(q, return_inverse=True)
    cum = np.zeros(len(values))
    np.maximum.at(cum, rank, p)  # p >= 0: the largest share of each value
    return values, cum


def reference_cdf(percentiles: Sequence[float]):
    """The CDF rebuilt from 101 percentiles (piecewise linear, ties a jump): vectorised, 0 below the min, 1 above the max."""
    values, cum = cdf_knots(percentiles)

    def cdf(x):
        return np.interp(x, values, cum, left=0.0, right=1.0)

    return cdf


def psi_bins(percentiles: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The inner edges of the PSI bins (the distinct deciles 10..90) and each bin's expected share (>= EPSILON)."""
    q = np.asarray(percentiles, dtype="float64")
    inner = np.unique(q[10:100:10])  # ten bins, the outer two open-ended
    expected = np.diff(np.concatenate([[0.0], reference_cdf(q)(inner), [1.0]]))
    return inner, np.clip(expected, EPSILON, None)


def psi(observed: np.ndarray, percentiles: Sequence[float]) -> float:
    """PSI of ``observed`` values against the reference percentiles, on decile bins."""
    return _psi(observed, *psi_bins(percentiles))


def _psi(observed: np.ndarray, inner: np.ndarray, expected: np.ndarray) -> float:
    counts = np.bincount(np.searchsorted(inner, observed, side="left"), minlength=len(inner) + 1)
    actual = np.clip(counts / max(len(observed), 1), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def warm_up() -> threading.Thread:
    """Import scipy's statistics in a background thread: ready for the first KS test, without delaying startup."""
    thread = threading.Thread(target=__import__, args=("scipy.stats",), name="scipy-warm-up", daemon=True)
    thread.start()
    return thread


def ks(observed: np.ndarray, percentiles: Sequence[float]) -> tuple[float, float]:
    """KS statistic and p-value of ``observed`` against the reference CDF (p-value: see the module doc)."""
    statistics, p_values = ks_rows(np.asarray(observed, dtype="float64").reshape(1, -1), [cdf_knots(percentiles)])
    return float(statistics[0]), float(p_values[0])


def ks_rows(samples: np.ndarray, knots: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided KS statistic and p-value of each row of ``samples`` (k, n) against the CDF of the same rank's ``knots``.

    The numbers of ``scipy.stats.kstest(row, reference_cdf(percentiles))`` (its exact ``kstwo``
    distribution), for every row in one call; a NaN in a row gives NaN, as in kstest.
    """
    from scipy import stats  # on first use (warm_up): importing it costs over a second of startup

    k, n = samples.shape
    if n == 0:
        return np.full(k, np.nan), np.full(k, np.nan)
    x = np.array(samples, dtype="float64", order="C")  # a copy, each row contiguous for the sort
    x.sort(axis=1)
    cdf = np.empty_like(x)
    for row, (values, cum) in enumerate(knots):
        cdf[row] = np.interp(x[row], values, cum, left=0.0, right=1.0)
    above = (np.arange(1.0, n + 1) / n - cdf).max(axis=1)  # D+
    below = (cdf - np.arange(0.0, n) / n).max(axis=1)  # D-
    statistics = np.where(above > below, above, below)
    return statistics, np.clip(np.asarray(stats.kstwo.sf(statistics, n), dtype="float64"), 0.0, 1.0)


def psi_status(value: float, warn: float = PSI_WARN, alert: float = PSI_ALERT) -> str:
    return ALERT if value >= alert else WARN if value >= warn else OK


class DriftMonitor:
    """Sliding window of recent readings and decisions, compared with the model's reference.

    ``reference`` is ``model.reference_`` (or the ``reference`` of a version's metadata).
    Thread-safe; memory is fixed (``window`` x 8 floats). ``report()`` is JSON-able.
    """

    def __init__(
        self,
        reference: Mapping[str, Any],
        window: int = WINDOW,
        psi_warn: float = PSI_WARN,
        psi_alert: float = PSI_ALERT,
        min_readings: int = MIN_READINGS,
        check_every: int = CHECK_EVERY,
        model_version: str | None = None,
    ):
        self.reference = reference
        self.window = window
        self.psi_warn = psi_warn
        self.psi_alert = psi_alert
        self.min_readings = min(min_readings, window)
        self.check_every = check_every
        self.model_version = model_version
        self._values = np.empty((window, len(SENSOR_NAMES)))
        self._alarms = np.zeros(window, dtype=bool)
        self._next = 0  # slot of the next reading
        self._count = 0  # readings in the window
        self._seen = 0  # readings since start
        self._since_check = 0
        self._statuses: dict[str, str] = {}
        self._lock = threading.Lock()

    @functools.cached_property
    def _tables(self) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
        """Per sensor, the reference CDF's knots and the PSI bins: built on the first evaluation, then reused."""
        inputs = self.reference["inputs"]
        return [cdf_knots(inputs[name]) for name in SENSOR_NAMES], [psi_bins(inputs[name]) for name in SENSOR_NAMES]

    def observe(self, readings: Any, decisions: Sequence[str] | Sequence[bool] | np.ndarray) -> None:
        """Add readings (a frame with the sensor columns, a list of dicts, or an (n, 8) array) and their decisions.

        ``decisions`` are ``"Anomalie"``/``"Normal"`` strings or booleans (True = alarm).
        Every ``check_every`` readings the window's statuses are evaluated and a change logged.
        """
        if isinstance(readings, pd.DataFrame):
            values = readings[list(SENSOR_NAMES)].to_numpy(dtype="float64")
        elif isinstance(readings, np.ndarray):
            values = readings.astype("float64").reshape(-1, len(SENSOR_NAMES))
        else:
            values = [[float(r[name]) for name in SENSOR_NAMES] for r in readings]
            if len(values) != 1:  # one reading (POST /predict) is stored as it is, without an array
                values = np.array(values, dtype="float64")
        alarms = [d == ANOMALY if isinstance(d, str) else bool(d) for d in decisions]
        if len(alarms) != len(values):
            raise ValueError("one decision per reading is needed")
        received = len(values)
        values, alarms = values[-self.window :], alarms[-self.window :]  # older ones would be overwritten anyway
        with self._lock:
            n = len(values)
            if n == 1:
                self._values[self._next], self._alarms[self._next] = values[0], alarms[0]
            else:
                slots = (self._next + np.arange(n)) % self.window
                self._values[slots] = values
                self._alarms[slots] = alarms
            self._next = (self._next + n) % self.window
            self._count = min(self.window, self._count + n)
            self._seen += received
            self._since_check += received
            due = self._since_check >= self.check_every
            if due:
                self._since_check = 0
        if due:
            self._check()

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        with self._lock:
            if self._count < self.window:
                return self._values[: self._count].copy(), self._alarms[: self._count].copy(), self._seen
            return self._values.copy(), self._alarms.copy(), self._seen

    def report(self, log: bool = True) -> dict[str, Any]:
        """Per-sensor PSI, KS and status, the alarm-rate check and the overall status; logs status changes."""
        values, alarms, seen = self._snapshot()
        n = len(values)
        sensors, rate, overall = self._evaluate(values, alarms, with_ks=True)
        report = {
            "model_version": self.model_version,
            "window": self.window,
            "readings_in_window": n,
            "readings_seen": seen,
            "thresholds": {"psi_warn": self.psi_warn, "psi_alert": self.psi_alert},
            "status": overall,
            "sensors": sensors,
            "alarm_rate": rate,
        }
        if log:
            self._log_changes(sensors, rate)
        return report

    def _check(self) -> None:
        """The evaluation every ``check_every`` readings: statuses and logs, from the PSI and the alarm rate only
        (the KS test, whose exact p-value is the costly part, is left to ``report()``)."""
        values, alarms, _ = self._snapshot()
        sensors, rate, _ = self._evaluate(values, alarms, with_ks=False)
        self._log_changes(sensors, rate)

    def _evaluate(
        self, values: np.ndarray, alarms: np.ndarray, with_ks: bool
    ) -> tuple[dict[str, dict[str, Any]], dict[str, Any], str]:
        """Per-sensor results (KS ones None without ``with_ks``), the alarm-rate check and the overall status."""
        n = len(values)
        if n < self.min_readings:
            sensors = {name: {"psi": None, "ks": None, "ks_p_value": None, "status": TOO_FEW} for name in SENSOR_NAMES}
            return sensors, {"status": TOO_FEW}, TOO_FEW
        knots, bins = self._tables
        columns = np.ascontiguousarray(values.T)  # one row per sensor
        if with_ks:
            statistics, p_values = ks_rows(columns, knots)
        sensors = {}
        for i, name in enumerate(SENSOR_NAMES):
            value = _psi(columns[i], *bins[i])
            sensors[name] = {
                "psi": round(value, 4),
                "ks": round(float(statistics[i]), 4) if with_ks else None,
                "ks_p_value": float(p_values[i]) if with_ks else None,
                "status": psi_status(value, self.psi_warn, self.psi_alert),
            }
        rate = self.alarm_rate_check(int(alarms.sum()), n)
        statuses = [s["status"] for s in sensors.values()] + [rate["status"]]
        return sensors, rate, max(statuses, key=SEVERITY.__getitem__)

    def alarm_rate_check(self, alarms: int, n: int) -> dict[str, Any]:
        """The window's alarm rate against the reference one, with the ratio rule of the module doc."""
        expected = float(self.reference.get("alarm_rate") or 0.0)
        observed = alarms / n if n else 0.0
        ratio = observed / expected if expected > 0 else None
        status = OK
        if alarms >= MIN_ALARMS and expected > 0:
            status = ALERT if observed > RATE_ALERT * expected else WARN if observed > RATE_WARN * expected else OK
        return {"observed": observed, "expected": expected, "ratio": ratio, "alarms": alarms, "status": status}

    def _log_changes(self, sensors: dict[str, dict[str, Any]], rate: dict[str, Any]) -> None:
        statuses = {**{k: s["status"] for k, s in sensors.items()}, "taux d'alarmes": rate["status"]}
        with self._lock:
            changed = {k: (self._statuses.get(k, OK), v) for k, v in statuses.items() if self._statuses.get(k, OK) != v}
            self._statuses.update(statuses)
        for name, (old, new) in changed.items():
            if TOO_FEW in (old, new):
                continue
            detail = sensors.get(name)
            measure = f"PSI {detail['psi']:.3f}" if detail else f"taux {rate['observed']:.2%}"
            worse = SEVERITY[new] > SEVERITY[old]
            level, what = (logging.WARNING, "dérive détectée") if worse else (logging.INFO, "dérive en baisse")
            logger.log(
                level, "%s : %s passe de %s à %s (%s, modèle %s)", what, name, old, new, measure, self.model_version
            )


def normal_windows(n_windows: int, window: int = WINDOW, seed: int = 10_000) -> list[pd.DataFrame]:
    """``n_windows`` windows of consecutive normal readings, two per simulated bench, at random offsets."""
    from common.simulator import simulate

    rng = np.random.default_rng(seed)
    hours = window / 60 + 24
    out = []
    for i in range(n_windows):
        frame = simulate("normal", seed=seed + i // 2, hours=hours)
        start = int(rng.integers(0, len(frame) - window + 1))
        out.append(frame.iloc[start : start + window])
    return out


def false_alarm_rate(
    reference: Mapping[str, Any], n_windows: int = 200, window: int = WINDOW, model=None, **thresholds
) -> dict:
    """Share of normal windows whose status is ``alerte`` (and ``attention``), and the largest PSI seen.

    With ``model`` (an AnomalyModel) the window's decisions are the model's, so the alarm-rate
    rule is measured too; without, every reading counts as normal.
    """
    alerts = warns = 0
    worst = worst_rate = 0.0
    for frame in normal_windows(n_windows, window):
        monitor = DriftMonitor(reference, window=window, check_every=10**9, **thresholds)
        monitor.observe(frame, model.predict(frame) if model is not None else [False] * len(frame))
        report = monitor.report(log=False)
        alerts += report["status"] == ALERT
        warns += report["status"] in (WARN, ALERT)
        worst = max(worst, max(s["psi"] for s in report["sensors"].values()))
        worst_rate = max(worst_rate, report["alarm_rate"]["observed"])
    return {
        "windows": n_windows,
        "alert_rate": alerts / n_windows,
        "warn_rate": warns / n_windows,
        "max_psi": worst,
        "max_alarm_rate": worst_rate,
    }


def drift_windows(n_series: int = 20, window: int = WINDOW, seed: int = 0) -> list[tuple[str, pd.DataFrame]]:
    """The last ``window`` readings of simulated ``drift`` series whose recalibration precedes them all.

    Returns (recalibrated sensor, window) pairs; the sensor is found by comparing with the
    same seed's normal series (identical before the onset, by construction of the simulator).
    """
    from common.simulator import simulate

    hours = 2 * window / 60 + 48  # the onset falls in the second half: the last ``window`` rows follow it
    out = []
    for s in range(seed, seed + n_series):
        drifted, normal = simulate("drift", seed=s, hours=hours), simulate("normal", seed=s, hours=hours)
        changed = [name for name in SENSOR_NAMES if not np.array_equal(drifted[name], normal[name])]
        onset = int(np.argmax(drifted[changed[0]].to_numpy() != normal[changed[0]].to_numpy()))
        if onset <= len(drifted) - window:
            out.append((changed[0], drifted.iloc[-window:]))
    return out


def drift_detection(reference: Mapping[str, Any], n_series: int = 20, window: int = WINDOW) -> list[dict[str, Any]]:
    """For each drift window: the recalibrated sensor, its PSI, and whether it (and only a real change) alerted."""
    results = []
    for sensor, frame in drift_windows(n_series, window):
        monitor = DriftMonitor(reference, window=window, check_every=10**9)
        monitor.observe(frame, [False] * len(frame))
        report = monitor.report(log=False)
        detail = report["sensors"][sensor]
        results.append({"sensor": sensor, "psi": detail["psi"], "detected": detail["status"] == ALERT})
    return results


def main(argv: list[str] | None = None) -> int:
    from common.registry import load

    parser = argparse.ArgumentParser(prog="python -m stage4_prod.drift", description="Surveillance de la dérive.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("calibrate", help="mesure le taux de fausses alertes sur des fenêtres normales simulées")
    cmd.add_argument("--version", default="1.0.0", help="version du modèle dont la référence sert (défaut : 1.0.0)")
    cmd.add_argument("--models-dir", default=None)
    cmd.add_argument("--windows", type=int, default=200)
    cmd.add_argument("--window", type=int, default=WINDOW)
    cmd.add_argument("--psi-warn", type=float, default=PSI_WARN)
    cmd.add_argument("--psi-alert", type=float, default=PSI_ALERT)
    args = parser.parse_args(argv)
    loaded = load(args.version, args.models_dir)
    thresholds = {"psi_warn": args.psi_warn, "psi_alert": args.psi_alert}
    result = false_alarm_rate(loaded.metadata["reference"], args.windows, args.window, model=loaded.model, **thresholds)
    drifted = drift_detection(loaded.metadata["reference"], window=args.window)
    print(
        f"{result['windows']} fenêtres normales de {args.window} mesures (modèle {args.version}) : "
        f"alertes {100 * result['alert_rate']:.1f} %, avertissements {100 * result['warn_rate']:.1f} %, "
        f"PSI maximal {result['max_psi']:.3f} (seuils : attention {args.psi_warn}, alerte {args.psi_alert}) ; taux d'alarmes maximal "
        f"{100 * result['max_alarm_rate']:.2f} % (référence {100 * loaded.metadata['reference']['alarm_rate']:.2f} %)."
    )
    print(
        f"{len(drifted)} séries avec un capteur recalibré (scénario drift, fenêtre entièrement après le recalibrage) : "
        f"{sum(d['detected'] for d in drifted)} alerte(s) sur le bon capteur, "
        f"PSI du capteur recalibré de {min(d['psi'] for d in drifted):.2f} à {max(d['psi'] for d in drifted):.2f}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
