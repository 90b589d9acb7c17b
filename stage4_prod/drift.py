"""Drift monitoring: the last day of readings against the reference saved with the served model.

Per sensor, the PSI decides the status (the KS test informs only); the alarm rate is compared with
the reference's by a ratio rule (alarms come in bursts: a binomial test would cry wolf). A status
change is logged as ``dérive détectée`` for log watchers. ``calibrate`` measures the thresholds.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from common.decision import ANOMALY
from common.drift_stats import binned_psi, cdf_knots, ks_rows, psi, psi_bins, warm_up  # noqa: F401 (app.py, report.py)
from common.schema import SENSOR_NAMES
from common.simulator import simulate

logger = logging.getLogger(__name__)

WINDOW = 1440  # one day of one bench at one reading per minute
MIN_READINGS = 500  # fewer readings are too few to judge
PSI_WARN, PSI_ALERT = 0.5, 1.5
RATE_WARN, RATE_ALERT, MIN_ALARMS = 5.0, 10.0, 10  # times the expected alarm rate; alarms needed to judge
CHECK_EVERY = 100  # readings between two automatic checks (which log status changes)
OK, WARN, ALERT, TOO_FEW = "ok", "attention", "alerte", "insuffisant"
SEVERITY = {TOO_FEW: 0, OK: 0, WARN: 1, ALERT: 2}


def psi_status(value: float, warn: float = PSI_WARN, alert: float = PSI_ALERT) -> str:
    return ALERT if value >= alert else WARN if value >= warn else OK


class DriftMonitor:
    """A thread-safe ring of the last ``window`` readings and decisions, compared with ``model.reference_``;
    every ``check_every`` readings, the status changes are logged."""

    def __init__(
        self,
        reference: Mapping[str, Any],
        window: int = WINDOW,
        psi_warn: float = PSI_WARN,
        psi_alert: float = PSI_ALERT,
        check_every: int = CHECK_EVERY,
        model_version: str | None = None,
    ):
        self.reference, self.window, self.check_every = reference, window, check_every
        self.model_version, self.psi_warn, self.psi_alert = model_version, psi_warn, psi_alert
        self.min_readings = min(MIN_READINGS, window)
        inputs = reference["inputs"]
        self._knots = [cdf_knots(inputs[name]) for name in SENSOR_NAMES]
        self._bins = [psi_bins(inputs[name]) for name in SENSOR_NAMES]
        self._values = np.empty((window, len(SENSOR_NAMES)))
        self._alarms = np.zeros(window, dtype=bool)
        self._next = self._count = self._seen = self._since_check = 0
        self._statuses: dict[str, str] = {}
        self._lock = threading.Lock()

    def observe(self, readings: Any, decisions) -> None:
        """Add readings (a frame, or dicts) and their decisions (``"Anomalie"`` or True)."""
        if isinstance(readings, pd.DataFrame):
            values = readings[list(SENSOR_NAMES)].to_numpy(dtype="float64")
        else:
            values = np.array([[r[name] for name in SENSOR_NAMES] for r in readings], dtype="float64")
        alarms = np.array([d == ANOMALY if isinstance(d, str) else bool(d) for d in decisions], dtype=bool)
        received, values, alarms = len(values), values[-self.window :], alarms[-self.window :]
        with self._lock:
            slots = (self._next + np.arange(len(values))) % self.window
            self._values[slots], self._alarms[slots] = values, alarms
            self._next = (self._next + len(values)) % self.window
            self._count = min(self.window, self._count + len(values))
            self._seen += received
            self._since_check += received
            due = self._since_check >= self.check_every
            if due:
                self._since_check = 0
        if due:  # PSI and alarm rate only: the exact KS p-values cost milliseconds, left to report()
            values, alarms, _ = self._snapshot()
            self._log_changes(*self._evaluate(values, alarms, with_ks=False)[:2])

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        with self._lock:
            return self._values[: self._count].copy(), self._alarms[: self._count].copy(), self._seen

    def report(self, log: bool = True) -> dict[str, Any]:
        """Per-sensor PSI, KS and status, the alarm-rate check and the overall status (JSON-able)."""
        values, alarms, seen = self._snapshot()
        sensors, rate, status = self._evaluate(values, alarms, with_ks=True)
        if log:
            self._log_changes(sensors, rate)
        return {
            "model_version": self.model_version,
            "window": self.window,
            "readings_in_window": len(values),
            "readings_seen": seen,
            "thresholds": {"psi_warn": self.psi_warn, "psi_alert": self.psi_alert},
            "status": status,
            "sensors": sensors,
            "alarm_rate": rate,
        }

    def _evaluate(self, values: np.ndarray, alarms: np.ndarray, with_ks: bool) -> tuple[dict, dict, str]:
        if len(values) < self.min_readings:
            sensors = {name: {"psi": None, "ks": None, "ks_p_value": None, "status": TOO_FEW} for name in SENSOR_NAMES}
            return sensors, {"status": TOO_FEW}, TOO_FEW
        columns = np.ascontiguousarray(values.T)  # one row per sensor
        if with_ks:
            statistics, p_values = ks_rows(columns, self._knots)
        sensors = {}
        for i, name in enumerate(SENSOR_NAMES):
            value = binned_psi(columns[i], *self._bins[i])
            sensors[name] = {
                "psi": round(value, 4),
                "ks": round(float(statistics[i]), 4) if with_ks else None,
                "ks_p_value": float(p_values[i]) if with_ks else None,
                "status": psi_status(value, self.psi_warn, self.psi_alert),
            }
        rate = self.alarm_rate_check(int(alarms.sum()), len(values))
        statuses = [s["status"] for s in sensors.values()] + [rate["status"]]
        return sensors, rate, max(statuses, key=SEVERITY.__getitem__)

    def alarm_rate_check(self, alarms: int, n: int) -> dict[str, Any]:
        """The window's alarm rate against the reference one (judged from ``MIN_ALARMS`` alarms)."""
        expected = float(self.reference.get("alarm_rate") or 0.0)
        observed = alarms / n if n else 0.0
        status = OK
        if alarms >= MIN_ALARMS and expected > 0:
            status = ALERT if observed > RATE_ALERT * expected else WARN if observed > RATE_WARN * expected else OK
        ratio = observed / expected if expected > 0 else None
        return {"observed": observed, "expected": expected, "ratio": ratio, "alarms": alarms, "status": status}

    def _log_changes(self, sensors: dict[str, dict[str, Any]], rate: dict[str, Any]) -> None:
        statuses = {**{k: s["status"] for k, s in sensors.items()}, "taux d'alarmes": rate["status"]}
        with self._lock:
            changed = {k: (self._statuses.get(k, OK), v) for k, v in statuses.items() if self._statuses.get(k, OK) != v}
            self._statuses.update(statuses)
        for name, (old, new) in changed.items():
            if TOO_FEW in (old, new):
                continue
            measure = f"PSI {sensors[name]['psi']:.3f}" if name in sensors else f"taux {rate['observed']:.2%}"
            worse = SEVERITY[new] > SEVERITY[old]
            level, what = (logging.WARNING, "dérive détectée") if worse else (logging.INFO, "dérive en baisse")
            logger.log(
                level, "%s : %s passe de %s à %s (%s, modèle %s)", what, name, old, new, measure, self.model_version
            )


def window_report(reference: Mapping[str, Any], frame: pd.DataFrame, decisions, **thresholds) -> dict[str, Any]:
    """The report of one window (``frame``), without logging: what the calibration measures."""
    monitor = DriftMonitor(reference, window=len(frame), check_every=10**9, **thresholds)
    monitor.observe(frame, decisions)
    return monitor.report(log=False)


def false_alarm_rate(reference: Mapping[str, Any], model, n_windows: int = 200, **thresholds) -> dict[str, Any]:
    """On ``n_windows`` simulated normal windows: the shares that alert and warn, the largest PSI and alarm rate."""
    rng, reports = np.random.default_rng(10_000), []
    for i in range(n_windows):
        frame = simulate("normal", seed=10_000 + i // 2, hours=WINDOW / 60 + 24)
        start = int(rng.integers(0, len(frame) - WINDOW + 1))
        frame = frame.iloc[start : start + WINDOW]
        reports.append(window_report(reference, frame, model.predict(frame), **thresholds))
    return {
        "windows": n_windows,
        "alert_rate": sum(r["status"] == ALERT for r in reports) / n_windows,
        "warn_rate": sum(r["status"] in (WARN, ALERT) for r in reports) / n_windows,
        "max_psi": max(s["psi"] for r in reports for s in r["sensors"].values()),
        "max_alarm_rate": max(r["alarm_rate"]["observed"] for r in reports),
    }


def drift_windows(n_series: int = 20, window: int = WINDOW, seed: int = 0) -> list[tuple[str, pd.DataFrame]]:
    """(recalibrated sensor, last ``window`` readings) of simulated ``drift`` series whose onset precedes them."""
    hours, out = 2 * window / 60 + 48, []  # the onset falls in the second half
    for s in range(seed, seed + n_series):
        drifted, normal = simulate("drift", seed=s, hours=hours), simulate("normal", seed=s, hours=hours)
        sensor = next(name for name in SENSOR_NAMES if not np.array_equal(drifted[name], normal[name]))
        if np.argmax(drifted[sensor].to_numpy() != normal[sensor].to_numpy()) <= len(drifted) - window:
            out.append((sensor, drifted.iloc[-window:]))
    return out


def main(argv: list[str] | None = None) -> int:
    from common.registry import load

    parser = argparse.ArgumentParser(prog="python -m stage4_prod.drift", description="Surveillance de la dérive.")
    cmd = parser.add_subparsers(dest="command", required=True).add_parser(
        "calibrate", help="mesure le taux de fausses alertes sur des fenêtres normales simulées"
    )
    cmd.add_argument("--version", default="1.0.0", help="version du modèle dont la référence sert (défaut : 1.0.0)")
    cmd.add_argument("--windows", type=int, default=200)
    cmd.add_argument("--psi-warn", type=float, default=PSI_WARN)
    cmd.add_argument("--psi-alert", type=float, default=PSI_ALERT)
    args = parser.parse_args(argv)
    loaded = load(args.version)
    reference, thresholds = loaded.metadata["reference"], {"psi_warn": args.psi_warn, "psi_alert": args.psi_alert}
    result = false_alarm_rate(reference, loaded.model, args.windows, **thresholds)
    drifted = [
        (sensor, window_report(reference, frame, [False] * len(frame), **thresholds)["sensors"][sensor])
        for sensor, frame in drift_windows()
    ]
    print(
        f"{result['windows']} fenêtres normales de {WINDOW} mesures (modèle {args.version}) : "
        f"alertes {100 * result['alert_rate']:.1f} %, avertissements {100 * result['warn_rate']:.1f} %, "
        f"PSI maximal {result['max_psi']:.3f} (seuils : attention {args.psi_warn}, alerte {args.psi_alert}) ; "
        f"taux d'alarmes maximal {100 * result['max_alarm_rate']:.2f} % "
        f"(référence {100 * reference['alarm_rate']:.2f} %)."
    )
    print(
        f"{len(drifted)} séries avec un capteur recalibré (scénario drift, fenêtre entièrement après le recalibrage) : "
        f"{sum(d['status'] == ALERT for _, d in drifted)} alerte(s) sur le bon capteur, "
        f"PSI du capteur recalibré de {min(d['psi'] for _, d in drifted):.2f} à {max(d['psi'] for _, d in drifted):.2f}."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
